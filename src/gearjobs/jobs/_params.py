"""Params: a job's JSON parameters, read with checks that name the parameter on error."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from gearjobs.jobs._codes import ResponseFailure
from gearjobs.jobs._errors import StructuredJobError

__all__ = ("InvalidParameter", "Params")

_MISSING: Any = object()


class InvalidParameter(StructuredJobError):
    """A parameter that is missing, of the wrong type or out of range (INVALID_REQUEST)."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(
            ResponseFailure.INVALID_REQUEST,
            f"parameter {name!r} {problem}",
            {"parameter": name},
        )
        self.name = name


class Params(Mapping[str, Any]):
    """Read-only parameters of a job request, with typed, checked getters."""

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self._values = dict(values or {})

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Params({self._values!r})"

    def as_dict(self) -> dict[str, Any]:
        """A copy of the parameters."""
        return dict(self._values)

    def _get(self, name: str, default: Any) -> Any:
        """The value given for `name`, else `default`. A null given is a value, and the
        getters refuse it ("must be a number, not null"): it is not the default, which a
        client gets by leaving the parameter out."""
        if name in self._values:
            return self._values[name]
        if default is _MISSING:
            raise InvalidParameter(name, "is required")
        return default

    def number(
        self,
        name: str,
        default: float = _MISSING,
        *,
        min: float | None = None,
        max: float | None = None,
    ) -> float:
        """A finite number (int or float) within [min, max]."""
        value = self._get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidParameter(name, f"must be a number, not {_kind(value)}")
        if not math.isfinite(value):
            raise InvalidParameter(name, "must be a finite number")
        _check_range(name, value, min, max)
        return float(value)

    def integer(
        self,
        name: str,
        default: int = _MISSING,
        *,
        min: int | None = None,
        max: int | None = None,
    ) -> int:
        """A whole number within [min, max]."""
        value = self._get(name, default)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidParameter(name, f"must be an integer, not {_kind(value)}")
        _check_range(name, value, min, max)
        return value

    def string(self, name: str, default: str = _MISSING, *, max_length: int = 10_000) -> str:
        """A string of at most `max_length` characters."""
        value = self._get(name, default)
        if not isinstance(value, str):
            raise InvalidParameter(name, f"must be a string, not {_kind(value)}")
        if len(value) > max_length:
            raise InvalidParameter(name, f"must be at most {max_length} characters")
        return value

    def boolean(self, name: str, default: bool = _MISSING) -> bool:
        """true or false."""
        value = self._get(name, default)
        if not isinstance(value, bool):
            raise InvalidParameter(name, f"must be true or false, not {_kind(value)}")
        return value

    def only(self, *names: str) -> None:
        """Refuse parameters other than `names`."""
        for name in self._values:
            if name not in names:
                raise InvalidParameter(name, f"is not a parameter of this job ({', '.join(names)})")


def _check_range(name: str, value: float, low: float | None, high: float | None) -> None:
    if low is not None and value < low:
        raise InvalidParameter(name, f"must be at least {low}")
    if high is not None and value > high:
        raise InvalidParameter(name, f"must be at most {high}")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        type(value), "a list" if isinstance(value, list) else "an object"
    )
