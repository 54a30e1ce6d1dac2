"""Request bodies: the encodings JSON allows, and the fingerprint that ties an id to its body."""

import hashlib
import json

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gearjobs.http._app import _encoding, _fingerprint
from gearjobs.jobs import RequestIdentifier


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32-be"])
async def test_a_body_in_any_encoding_json_allows_is_read(
    client: httpx.AsyncClient, encoding: str
) -> None:
    body = json.dumps({"word": "héllo"}, ensure_ascii=False).encode(encoding)
    r = await client.post("/jobs/echo", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json() == {"echo": {"word": "héllo"}}


@given(st.binary(max_size=8))
def test_the_utf8_shortcut_says_what_json_detect_encoding_says(prefix: bytes) -> None:
    for body in (prefix, b"{" + prefix):
        assert _encoding(body) == json.detect_encoding(body)


def test_the_fingerprint_keeps_its_bytes_so_ids_from_older_versions_still_match() -> None:
    canonical = 'POST /jobs/echo\n{"a":"é","b":[1,2.5,null],"c":{"y":"\\n","z":true}}'
    expected = hashlib.sha256(canonical.encode()).hexdigest()
    params = {"c": {"z": True, "y": "\n"}, "b": [1, 2.5, None], "a": "é"}
    assert _fingerprint("POST /jobs/echo", params) == expected


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), _JSON))
def test_the_fingerprint_is_sha256_of_the_route_and_json_dumps_canonical_form(
    params: dict[str, object],
) -> None:
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    expected = hashlib.sha256(f"POST /jobs/x\n{canonical}".encode("utf-8", "surrogatepass"))
    assert _fingerprint("POST /jobs/x", params) == expected.hexdigest()


async def test_the_same_id_with_reordered_keys_is_the_same_request(
    client: httpx.AsyncClient,
) -> None:
    ident = str(RequestIdentifier.new())
    first = await client.post(
        "/jobs/echo", content=b'{"a": 1, "b": 2}', headers={"X-Request-Id": ident}
    )
    again = await client.post(
        "/jobs/echo", content=b'{"b":2,"a":1}', headers={"X-Request-Id": ident}
    )
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
