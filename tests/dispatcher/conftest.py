from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gearjobs.dispatcher import Dispatcher
from gearjobs.store import MemoryStore, SQLiteStore, Store


@pytest.fixture(params=["memory", "sqlite"])
async def dispatcher(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Dispatcher]:
    store: Store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "d.db")
    await store.open()
    try:
        async with Dispatcher(store=store, concurrent=4) as d:
            yield d
    finally:
        await store.close()
