from collections.abc import AsyncIterator

import pytest

from gearjobs.store import MemoryStore, Store

STORES = ["memory"]


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    made: Store = MemoryStore()
    await made.open()
    try:
        yield made
    finally:
        await made.close()
