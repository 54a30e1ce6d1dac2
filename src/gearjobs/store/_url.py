"""Stores named by URL: `memory://`, `sqlite:///PATH`, `redis://HOST:PORT/DB`."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from gearjobs.jobs import GearjobsError
from gearjobs.store._base import Store
from gearjobs.store._memory import MemoryStore

__all__ = ("redacted", "store_from_url")


def redacted(url: str) -> str:
    """`url` as messages and logs show it: a password in it is `***`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    name = user.partition(":")[0]
    return parts._replace(netloc=f"{name}:***@{host}").geturl()


def store_from_url(url: str, *, retention: float = 24 * 3600.0) -> Store:
    """The store a URL names; a clear GearjobsError for anything else.

    A Redis URL may carry `?lease=SECONDS` (default 10), `&prefix=NAME` for its keys and
    `&reply_timeout=SECONDS` (default 5: how long script calls wait for a silent Redis).
    """
    parts = urlsplit(url)
    shown = redacted(url)
    if parts.scheme in ("redis", "rediss"):
        from gearjobs.store._redis import RedisStore

        query = parse_qs(parts.query, keep_blank_values=True)
        unknown = sorted(set(query) - {"lease", "prefix", "reply_timeout"})
        if unknown:  # a typo (`leese`, `prefx`) would otherwise go unseen
            raise GearjobsError(
                f"store {shown!r}: unknown parameter {unknown[0]!r} "
                "(a Redis URL takes lease, prefix and reply_timeout)"
            )
        repeated = sorted(name for name, values in query.items() if len(values) > 1)
        if repeated:
            raise GearjobsError(f"store {shown!r}: {repeated[0]} is given more than once")
        if query.get("prefix") == [""]:
            raise GearjobsError(f"store {shown!r}: prefix must not be empty")
        try:
            lease = float(query.get("lease", ["10"])[0])
        except ValueError:
            raise GearjobsError(f"store {shown!r}: lease must be a number of seconds") from None
        if not 0.1 <= lease <= 3600:
            raise GearjobsError(f"store {shown!r}: lease must be from 0.1 to 3600 seconds")
        try:
            reply_timeout = float(query.get("reply_timeout", ["5"])[0])
        except ValueError:
            raise GearjobsError(
                f"store {shown!r}: reply_timeout must be a number of seconds"
            ) from None
        if not 0.1 <= reply_timeout <= 3600:
            raise GearjobsError(f"store {shown!r}: reply_timeout must be from 0.1 to 3600 seconds")
        prefix = query.get("prefix", ["gearjobs"])[0]
        base = parts._replace(query="").geturl()
        return RedisStore(
            base, lease=lease, retention=retention, prefix=prefix, reply_timeout=reply_timeout
        )
    if parts.scheme == "memory":
        return MemoryStore()
    if parts.scheme == "sqlite":
        # sqlite:///relative.db and sqlite:////absolute/path.db, as SQLAlchemy spells them.
        path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else ""
        if not path:
            raise GearjobsError(f"store {shown!r}: give a file, as in sqlite:///gearjobs.db")
        from gearjobs.store._sqlite import SQLiteStore

        return SQLiteStore(path)
    raise GearjobsError(
        f"store {shown!r}: expected memory://, sqlite:///PATH or redis://HOST:PORT/DB"
    )
