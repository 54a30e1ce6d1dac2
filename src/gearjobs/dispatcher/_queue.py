"""A bounded job queue with its own workers' thread pool."""

from __future__ import annotations

import asyncio
from collections import deque
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
        self._items: deque[T] = deque()
        self._idle: deque[asyncio.Future[None]] = deque()
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        """The loop of the workers, once one waited (a queue serves one dispatcher)."""

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
        """Queue an item for a reserved place and wake an idle worker."""
        self._items.append(item)
        while self._idle:
            idle = self._idle.popleft()
            if not idle.done():
                idle.set_result(None)
                break

    async def take(self) -> T:
        """The next item, for a worker; waits while there is none."""
        while not self._items:
            if self._loop is None:  # asked once: on Python 3.11 it is a system call
                self._loop = asyncio.get_running_loop()
            idle: asyncio.Future[None] = self._loop.create_future()
            self._idle.append(idle)
            await idle
        self.waiting -= 1
        return self._items.popleft()

    def drain(self) -> list[T]:
        """Remove and return every waiting item (on close)."""
        items = list(self._items)
        self._items.clear()
        self.waiting -= len(items)
        return items

    def shutdown(self) -> None:
        """Stop the thread pool without waiting for threads still running jobs."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
