from collections.abc import AsyncIterator

import pytest

from gearjobs.dispatcher import Dispatcher
from gearjobs.store import Store


@pytest.fixture
async def dispatcher(store: Store) -> AsyncIterator[Dispatcher]:
    async with Dispatcher(store=store, concurrent=4) as d:
        yield d
