import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gearjobs.dispatcher import Dispatcher
from gearjobs.store import MemoryStore, RedisStore, SQLiteStore, Store


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def dispatcher(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Dispatcher]:
    store: Store
    if request.param == "memory":
        store = MemoryStore()
    elif request.param == "sqlite":
        store = SQLiteStore(tmp_path / "d.db")
    else:
        url = request.getfixturevalue("redis_server").url
        store = RedisStore(url, prefix=f"d{uuid.uuid4().hex[:12]}")
    await store.open()
    try:
        async with Dispatcher(store=store, concurrent=4) as d:
            yield d
    finally:
        await store.close()
