"""Shared fixtures: a real redis-server for the session, and each store under test."""

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gearjobs.store import MemoryStore, RedisStore, SQLiteStore, Store

from .redis_server import RedisServer

STORES = ["memory", "sqlite", "redis"]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


def make_store(kind: str, tmp_path: Path, redis_server: RedisServer | None = None) -> Store:
    """A fresh store of one kind; Redis stores get a key prefix of their own per test."""
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return SQLiteStore(tmp_path / "jobs.db")
    if kind == "redis" and redis_server is not None:
        return RedisStore(redis_server.url, prefix=f"t{uuid.uuid4().hex[:12]}", lease=1.0)
    raise ValueError(kind)


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Each test that takes it runs against the memory, SQLite and Redis stores."""
    server = request.getfixturevalue("redis_server") if request.param == "redis" else None
    made = make_store(request.param, tmp_path, server)
    await made.open()
    try:
        yield made
    finally:
        await made.close()
