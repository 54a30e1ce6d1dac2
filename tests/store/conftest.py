import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gearjobs.store import MemoryStore, RedisStore, SQLiteStore, Store

from ..redis_server import RedisServer

STORES = ["memory", "sqlite", "redis"]


def make_store(kind: str, tmp_path: Path, redis_server: RedisServer | None = None) -> Store:
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return SQLiteStore(tmp_path / "jobs.db")
    if kind == "redis" and redis_server is not None:
        # A key prefix of its own per test: tests share one redis-server.
        return RedisStore(redis_server.url, prefix=f"t{uuid.uuid4().hex[:12]}", lease=1.0)
    raise ValueError(kind)


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    server = request.getfixturevalue("redis_server") if request.param == "redis" else None
    made = make_store(request.param, tmp_path, server)
    await made.open()
    try:
        yield made
    finally:
        await made.close()
