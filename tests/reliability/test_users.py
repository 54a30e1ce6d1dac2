"""Users and tokens against a real server: 401s, isolation, and the token file re-read on SIGHUP."""

import signal
import time
from pathlib import Path

import httpx

from gearjobs.http import Tokens
from gearjobs.jobs import RequestIdentifier

from ..servers import ServerProcess


def wait_for_status(url: str, headers: dict[str, str], status: int) -> int:
    """Poll until the server answers `status` (a signal is handled between requests)."""
    code = 0
    for _ in range(100):
        code = httpx.post(url, json={}, headers=headers).status_code
        if code == status:
            break
        time.sleep(0.05)
    return code


def test_the_token_file_is_read_again_on_sighup(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("alice-secret alice\n")
    with ServerProcess(
        "--examples", "--store", "memory://", "--tokens", str(tokens), cwd=tmp_path
    ) as s:
        assert s.process is not None
        url = f"{s.url}/jobs/echo"
        carol = {"Authorization": "Bearer carol-secret"}
        alice = {"Authorization": "Bearer alice-secret"}
        assert httpx.post(url, json={}, headers=carol).status_code == 401
        tokens.write_text("carol-secret carol\n")
        s.process.send_signal(signal.SIGHUP)
        assert wait_for_status(url, carol, 200) == 200
        assert httpx.post(url, json={}, headers=alice).status_code == 401
        tokens.write_text("broken line with three fields\n")
        s.process.send_signal(signal.SIGHUP)
        for _ in range(100):  # the server's log says when it handled the signal
            if "not reloaded" in s.output():
                break
            time.sleep(0.05)
        assert "not reloaded" in s.output()
        assert httpx.post(url, json={}, headers=carol).status_code == 200


def test_another_users_id_is_404_or_their_own_job(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("a-secret alice\nb-secret bob\n")
    with ServerProcess(
        "--examples", "--store", "memory://", "--tokens", str(tokens), cwd=tmp_path
    ) as s:
        alice = {"Authorization": "Bearer a-secret"}
        bob = {"Authorization": "Bearer b-secret"}
        ident = str(RequestIdentifier.new())
        mine = httpx.post(
            f"{s.url}/jobs/echo", json={"secret": 1}, headers={**alice, "X-Request-Id": ident}
        )
        assert mine.status_code == 200
        for path in (f"/jobs/{ident}", f"/jobs/{ident}/output"):
            r = httpx.get(f"{s.url}{path}", headers=bob)
            assert r.status_code == 404
            assert "secret" not in r.text
        theirs = httpx.post(
            f"{s.url}/jobs/echo", json={"other": 2}, headers={**bob, "X-Request-Id": ident}
        )
        assert theirs.json() == {"echo": {"other": 2}}, "bob runs his own job, not alice's"


def test_tokens_are_compared_by_digest_in_constant_time() -> None:
    table = Tokens({"secret-1": "alice", "secret-2": "bob"})
    assert table.user_for("secret-1") == "alice"
    assert table.user_for("secret-2") == "bob"
    assert table.user_for("secret-3") is None
    assert table.user_for("") is None
    assert "secret-1" not in repr(vars(table))
