from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gearjobs.store import MemoryStore, SQLiteStore, Store

STORES = ["memory", "sqlite"]


def make_store(kind: str, tmp_path: Path) -> Store:
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return SQLiteStore(tmp_path / "jobs.db")
    raise ValueError(kind)


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    made = make_store(request.param, tmp_path)
    await made.open()
    try:
        yield made
    finally:
        await made.close()
