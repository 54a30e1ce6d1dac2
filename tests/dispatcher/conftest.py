from collections.abc import AsyncIterator

import pytest

from gearjobs.dispatcher import Dispatcher
from gearjobs.store import MemoryStore


@pytest.fixture
async def dispatcher() -> AsyncIterator[Dispatcher]:
    async with Dispatcher(store=MemoryStore(), concurrent=4) as d:
        yield d
