"""Stores named by URL: `memory://`, `sqlite:///PATH`, `redis://HOST:PORT/DB`."""

from __future__ import annotations

from urllib.parse import urlsplit

from gearjobs.jobs import GearjobsError
from gearjobs.store._base import Store
from gearjobs.store._memory import MemoryStore

__all__ = ("store_from_url",)


def store_from_url(url: str) -> Store:
    """The store a URL names; a clear GearjobsError for anything else."""
    parts = urlsplit(url)
    if parts.scheme == "memory":
        return MemoryStore()
    if parts.scheme == "sqlite":
        # sqlite:///relative.db and sqlite:////absolute/path.db, as SQLAlchemy spells them.
        path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else ""
        if not path:
            raise GearjobsError(f"store {url!r}: give a file, as in sqlite:///gearjobs.db")
        from gearjobs.store._sqlite import SQLiteStore

        return SQLiteStore(path)
    raise GearjobsError(
        f"store {url!r}: expected memory://, sqlite:///PATH or redis://HOST:PORT/DB"
    )
