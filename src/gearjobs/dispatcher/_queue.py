"""A bounded job queue with its own workers' thread pool."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from gearjobs.jobs import GearjobsError

__all__ = ("JobQueue",)

T = TypeVar("T")


class JobQueue(Generic[T]):
    """Holds at most `capacity` waiting jobs for `concurrent` workers.

    A place is reserved (`reserve`) before an id is claimed, so a full queue rejects at once
    and nothing is remembered for the rejected request. Plain (sync) jobs of this queue run in
    its own thread pool, so a slow queue full of blocking jobs never holds up the fast one.
    """

    def __init__(self, name: str, *, capacity: int, concurrent: int) -> None:
        if capacity < 1:
            raise GearjobsError(f"queue {name}: capacity must be at least 1, not {capacity}")
        if concurrent < 1:
            raise GearjobsError(f"queue {name}: concurrent must be at least 1, not {concurrent}")
        self.name = name
        self.capacity = capacity
        self.concurrent = concurrent
        self.waiting = 0
        """Reserved or queued jobs that no worker has taken yet."""
        self.running = 0
        self._items: asyncio.Queue[T] = asyncio.Queue()
        self._executor: ThreadPoolExecutor | None = None

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The thread pool for this queue's plain (sync) jobs, made on first use."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self.concurrent, thread_name_prefix=f"gearjobs-{self.name}"
            )
        return self._executor

    def reserve(self) -> bool:
        """Take a waiting place; False when the queue is full."""
        if self.waiting >= self.capacity:
            return False
        self.waiting += 1
        return True

    def release(self) -> None:
        """Give back a reserved place that was not used."""
        self.waiting -= 1

    def put(self, item: T) -> None:
        """Queue an item for a reserved place."""
        self._items.put_nowait(item)

    async def take(self) -> T:
        """The next item, for a worker."""
        item = await self._items.get()
        self.waiting -= 1
        return item

    def drain(self) -> list[T]:
        """Remove and return every waiting item (on close)."""
        items = []
        while not self._items.empty():
            items.append(self._items.get_nowait())
            self.waiting -= 1
        return items

    def shutdown(self) -> None:
        """Stop the thread pool without waiting for threads still running jobs."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
