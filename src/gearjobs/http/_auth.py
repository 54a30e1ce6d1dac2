"""Users and tokens: the token file, and who a request belongs to."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from gearjobs.jobs import GearjobsError

__all__ = ("TokenFileError", "Tokens")


class TokenFileError(GearjobsError):
    """The token file cannot be read or has a malformed line."""


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


class Tokens:
    """Bearer tokens and the users they name.

    Tokens are kept as SHA-256 digests; a presented token is hashed and compared with
    `hmac.compare_digest`, so the time taken does not depend on how much of a token matched.
    """

    def __init__(self, users_by_token: dict[str, str], *, path: Path | None = None) -> None:
        self.path = path
        self._users = {_digest(t): u for t, u in users_by_token.items()}

    @classmethod
    def load(cls, path: str | Path) -> Tokens:
        """Read a token file: `TOKEN USER` a line; blank lines and `#` comments are skipped."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TokenFileError(f"cannot read the token file {path}: {exc}") from exc
        users: dict[str, str] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            fields = stripped.split()
            if len(fields) != 2:
                raise TokenFileError(
                    f"{path}:{number}: expected 'TOKEN USER' (two fields), found {len(fields)}"
                )
            token, user = fields
            if not token.isascii() or not token.isprintable():
                raise TokenFileError(f"{path}:{number}: a token must be printable ASCII")
            if token in users:
                raise TokenFileError(f"{path}:{number}: this token is listed twice")
            users[token] = user
        if not users:  # a server that refuses every request is a mistake, not a setting
            raise TokenFileError(f"the token file {path} lists no token ('TOKEN USER' a line)")
        return cls(users, path=path)

    def reload(self) -> None:
        """Read the token file again; on any error keep the tokens in use and raise."""
        if self.path is None:
            raise TokenFileError("these tokens were not read from a file")
        fresh = Tokens.load(self.path)
        self._users = fresh._users

    def __len__(self) -> int:
        return len(self._users)

    def user_for(self, token: str) -> str | None:
        """The user a token names, or None."""
        digest = _digest(token)
        found = None
        for known, user in self._users.items():
            if hmac.compare_digest(known, digest):
                found = user
        return found
