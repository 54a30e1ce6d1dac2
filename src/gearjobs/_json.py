"""Encoding JSON on the hot paths: orjson, with the standard library for what orjson refuses.

orjson encodes a small answer about fifteen times faster than `json`. Its output is compact
UTF-8, as `json.dumps(value, ensure_ascii=False, separators=(",", ":"))` gives, with these
differences in meaning:

- a non-finite float (NaN, an infinity) becomes `null`, as in JavaScript's `JSON.stringify`
  (the standard library writes `NaN`, which no JSON parser reads);
- `uuid.UUID` and `enum.Enum` values are encoded (as their string and their value).

What orjson refuses (integers beyond 64 bits, keys that are not strings, lone surrogates, dates,
dataclasses, sets, ...) goes to the standard library, which encodes it as before or raises
`TypeError`/`ValueError` as before (and refuses a non-finite float among such values).
Decoding stays with the standard library: orjson reads an integer beyond 64 bits as a float.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ("dumps",)

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_FALLBACK = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def dumps(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON. Raises TypeError or ValueError if it is not JSON."""
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _FALLBACK.encode(value).encode("utf-8")
