"""RequestIdentifier: the id that makes a request idempotent."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re

from gearjobs.jobs._codes import ResponseFailure
from gearjobs.jobs._errors import SimpleError

__all__ = ("InvalidIdempotencyKey", "InvalidRequestIdentifier", "RequestIdentifier")

_MESSAGE = "Request ID must be 22 base64 characters or 32 hexadecimal characters."
_HEX = re.compile(r"[0-9a-fA-F]{32}")
_B64_22 = re.compile(r"[A-Za-z0-9_-]{22}")
_B64_24 = re.compile(r"[A-Za-z0-9_-]{22}==")
_URLSAFE = bytes.maketrans(b"+/", b"-_")
_VISIBLE_ASCII = frozenset(range(0x21, 0x7F))


class InvalidRequestIdentifier(SimpleError):
    """A request id that is not 32 hex, 22 or 24 URL-safe base64 characters."""

    def __init__(self) -> None:
        super().__init__(ResponseFailure.INVALID_REQUEST, _MESSAGE)


class InvalidIdempotencyKey(SimpleError):
    """An Idempotency-Key that is not 1 to 255 visible ASCII characters."""

    def __init__(self) -> None:
        super().__init__(
            ResponseFailure.INVALID_REQUEST,
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )


class RequestIdentifier:
    """16 bytes that name one request; equal ids are the same job (per user).

    `str()` gives 22 URL-safe base64 characters without padding; `exact()` the 24 with it.
    """

    __slots__ = ("_hash", "_raw", "_text")

    def __init__(self, raw: bytes) -> None:
        if len(raw) != 16:
            raise InvalidRequestIdentifier()
        self._raw = raw = bytes(raw)
        self._hash = hash(raw)
        # What base64.urlsafe_b64encode does, without its two Python-level calls.
        self._text = binascii.b2a_base64(raw, newline=False).translate(_URLSAFE)[:22].decode()

    @classmethod
    def new(cls) -> RequestIdentifier:
        """A fresh random identifier."""
        return cls(os.urandom(16))

    @classmethod
    def parse(cls, text: str) -> RequestIdentifier:
        """Parse 32 hexadecimal, 22 or 24 (padded) URL-safe base64 characters.

        Anything else raises InvalidRequestIdentifier with the reference's message.
        """
        try:
            if len(text) == 32 and _HEX.fullmatch(text):
                return cls(bytes.fromhex(text))
            if _B64_22.fullmatch(text):
                text += "=="
            elif not _B64_24.fullmatch(text):
                raise InvalidRequestIdentifier()
            raw = base64.urlsafe_b64decode(text)
        except (binascii.Error, ValueError, TypeError) as exc:
            raise InvalidRequestIdentifier() from exc
        # 22 characters hold 132 bits: like the reference's decoder, the 4 bits past the 16
        # bytes are ignored, so "…AB" names the same id as "…AA" (str() gives the latter).
        return cls(raw)

    @classmethod
    def for_idempotency_key(cls, key: str) -> RequestIdentifier:
        """The id that an Idempotency-Key names: the first 16 bytes of the SHA-256 of
        `idempotency-key`, a NUL byte and the key. Raises InvalidIdempotencyKey unless the
        key is 1 to 255 visible ASCII characters."""
        try:
            raw = key.encode("ascii")
        except UnicodeEncodeError:
            raise InvalidIdempotencyKey() from None
        if not 1 <= len(raw) <= 255 or not set(raw) <= _VISIBLE_ASCII:
            raise InvalidIdempotencyKey()
        return cls(hashlib.sha256(b"idempotency-key\0" + raw).digest()[:16])

    @property
    def bytes(self) -> bytes:
        """The 16 raw bytes."""
        return self._raw

    def exact(self) -> str:
        """The 24-character form, with base64 padding."""
        return self._text + "=="

    def hex(self) -> str:
        """The 32-character hexadecimal form."""
        return self._raw.hex()

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"RequestIdentifier({self._text!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RequestIdentifier):
            return NotImplemented
        return self._raw == other._raw

    def __hash__(self) -> int:
        return self._hash
