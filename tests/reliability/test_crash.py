"""kill -9 of a server on SQLite while jobs are queued, running and streaming, then a restart."""

import contextlib
import sqlite3
import threading
from pathlib import Path

import httpx

from gearjobs.jobs import RequestIdentifier

from ..servers import ServerProcess

TEXT = {"Accept": "text/plain;stream=true"}
NDJSON = {"Accept": "application/x-ndjson"}


def _stream_until_killed(url: str, ident: str, seen: threading.Event) -> None:
    try:
        with httpx.stream(
            "POST",
            f"{url}/jobs/sleep",
            json={"seconds": 120, "lines": 120},
            headers={"X-Request-Id": ident, **TEXT},
            timeout=60,
        ) as answer:
            for _ in answer.iter_bytes():
                seen.set()
    except httpx.HTTPError:
        pass  # the server was killed under this client


def test_kill_9_keeps_finished_answers_and_loses_only_unfinished_jobs(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    args = ("--examples", "--store", f"sqlite:///{db}", "--concurrent", "1")
    finished: dict[str, tuple[str, object, dict[str, str], int, bytes]] = {}
    with ServerProcess(*args, cwd=tmp_path) as first:
        port = first.port
        for name, params, headers in [
            ("tally", {"key": "crash"}, {}),
            ("count", {"to": 500, "delay": 0}, NDJSON),
            ("sleep", {"seconds": 0, "lines": 50}, TEXT),
            ("fail", {"code": "not-found", "message": "gone"}, {}),
        ]:
            ident = str(RequestIdentifier.new())
            r = httpx.post(
                f"{first.url}/jobs/{name}", json=params, headers={"X-Request-Id": ident, **headers}
            )
            finished[ident] = (name, params, headers, r.status_code, r.content)
        streaming = str(RequestIdentifier.new())
        seen = threading.Event()
        thread = threading.Thread(target=_stream_until_killed, args=(first.url, streaming, seen))
        thread.start()
        assert seen.wait(30), "the slow queue's only worker is streaming"
        queued = [str(RequestIdentifier.new()) for _ in range(3)]
        for ident in queued:
            # The answer would come once the job starts: this client gives up waiting for it,
            # which leaves the job queued.
            with contextlib.suppress(httpx.ReadTimeout):
                httpx.post(
                    f"{first.url}/jobs/sleep",
                    json={"seconds": 1, "lines": 1},
                    headers={"X-Request-Id": ident},
                    timeout=httpx.Timeout(5, read=0.5),
                )
            assert httpx.get(f"{first.url}/jobs/{ident}").json()["state"] == "queued"
        # A listing is served after every write the store was asked for before it: the claims
        # of the queued jobs are in the file now.
        assert httpx.get(f"{first.url}/jobs").status_code == 200
        first.kill()
        thread.join(30)

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    with ServerProcess(*args, cwd=tmp_path, port=port) as second:
        for ident, (name, params, headers, status, content) in finished.items():
            again = httpx.post(
                f"{second.url}/jobs/{name}", json=params, headers={"X-Request-Id": ident, **headers}
            )
            assert (again.status_code, again.content) == (status, content), name
        for ident in [streaming, *queued]:
            assert httpx.get(f"{second.url}/jobs/{ident}").json()["state"] == "lost"
            output = httpx.get(f"{second.url}/jobs/{ident}/output")
            assert (output.status_code, output.headers["Retry-After"]) == (503, "1")
            assert output.json()["code"] == "unavailable"
        retry = httpx.post(
            f"{second.url}/jobs/sleep",
            json={"seconds": 1, "lines": 1},
            headers={"X-Request-Id": queued[0], **TEXT},
            timeout=30,
        )
        assert (retry.status_code, retry.text) == (202, "tick 1\n")
        record = httpx.get(f"{second.url}/jobs/{queued[0]}").json()
        assert (record["run"], record["state"]) == (2, "succeeded")
        tally = httpx.post(f"{second.url}/jobs/tally", json={"key": "crash", "peek": True})
        assert tally.json()["value"] == 0, "a new process: the replayed tally did not run again"
