"""gearjobs._json: orjson's speed, the standard library's meaning where orjson would differ."""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gearjobs._json import dumps, dumps_line

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too: the standard library takes those
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_what_it_writes_reads_back_as_the_same_value(value: Any) -> None:
    assert json.loads(dumps(value)) == value
    line = dumps_line(value)
    assert line.endswith(b"\n") and len(line.decode().splitlines()) == 1
    assert json.loads(line) == value


def test_compact_utf8_like_the_standard_library_with_those_options() -> None:
    value = {"echo": {"n": 1, "s": "é ✓", "l": [1.5, None, True]}}
    assert dumps(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def test_integers_beyond_64_bits_are_kept_exactly() -> None:
    assert dumps({"big": 2**70}) == b'{"big":1180591620717411303424}'


def test_keys_that_are_not_strings_are_written_as_the_standard_library_does() -> None:
    assert dumps({1: "a"}) == b'{"1":"a"}'


def test_a_non_finite_float_becomes_null() -> None:
    assert dumps([math.nan, math.inf]) == b"[null,null]"


@pytest.mark.parametrize(
    "value",
    [
        {"when": datetime.date(2026, 11, 28)},
        {"s": {1, 2}},
        {"b": b"bytes"},
        dataclasses.make_dataclass("D", [("x", int)])(1),
    ],
    ids=["date", "set", "bytes", "dataclass"],
)
def test_what_the_standard_library_refuses_is_refused(value: Any) -> None:
    with pytest.raises(TypeError):
        dumps(value)


def test_a_lone_surrogate_is_written_as_its_escape() -> None:
    # A file name decoded with surrogateescape, say: UTF-8 cannot hold it, its escape can.
    name = b"caf\xe9.txt".decode("utf-8", "surrogateescape")
    assert dumps({"file": name}) == b'{"file":"caf\\udce9.txt"}'
    assert json.loads(dumps({"file": name})) == {"file": name}


def test_a_line_escapes_what_line_readers_take_for_line_ends() -> None:
    value = {"t": "a\u2028b\x85c\u2029d"}
    line = dumps_line(value)
    assert line == b'{"t":"a\\u2028b\\u0085c\\u2029d"}\n'
    assert json.loads(line) == value
