"""The journal: the recorded answer of one running job, read by every client at its own pace."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable
from typing import Any

from gearjobs.store import Entry, is_terminal

__all__ = ("Journal",)

logger = logging.getLogger("gearjobs.dispatcher")

Listener = Callable[[Entry], None]


class Journal:
    """An append-only list of entries with live followers.

    One copy of the output is kept, whatever the number of readers: each reader holds only
    its position. Pull readers (`follow`) go at their own pace, so a slow or vanished one never
    slows the job; push listeners (`listen`) are called as entries arrive and must not block.
    All methods run on the event loop's thread.
    """

    __slots__ = ("_enders", "_listeners", "_loop", "_waiters", "entries", "terminal")

    def __init__(
        self, entries: list[Entry] | None = None, *, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        self.entries: list[Entry] = entries if entries is not None else []
        # Given by the dispatcher: on Python 3.11, `asyncio.get_running_loop()` is a system
        # call (`getpid()`), and a reader that waits for the first entry is every fast job.
        self._loop = loop
        self.terminal: Entry | None = None
        # Each waiting reader has its own future, so a reader that is cancelled cancels
        # nothing but itself.
        self._waiters: list[asyncio.Future[None]] = []
        self._enders: list[asyncio.Future[Entry]] = []
        self._listeners: list[Listener] = []
        if self.entries and is_terminal(self.entries[-1]):
            self.terminal = self.entries[-1]

    def _future(self) -> asyncio.Future[Any]:
        return (self._loop or asyncio.get_running_loop()).create_future()

    @property
    def done(self) -> bool:
        """True once the terminal entry was appended."""
        return self.terminal is not None

    def append(self, entry: Entry) -> None:
        """Add an entry and wake the readers; entries after the terminal one are dropped."""
        if self.terminal is not None:
            logger.warning("journal entry after the end dropped: %r", entry)
            return
        self.entries.append(entry)
        if self._listeners:
            for listener in self._listeners:
                listener(entry)
        if is_terminal(entry):
            self.terminal = entry
            self._listeners.clear()
            if self._enders:
                enders, self._enders = self._enders, []
                for ender in enders:
                    if not ender.done():
                        ender.set_result(entry)
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def listen(self, listener: Listener) -> None:
        """Call `listener` with every entry: those already written now, later ones as they come."""
        for entry in self.entries:
            listener(entry)
        if self.terminal is None:
            self._listeners.append(listener)

    async def wait(self) -> Entry:
        """The terminal entry, once written."""
        if self.terminal is not None:
            return self.terminal
        ender: asyncio.Future[Entry] = self._future()
        self._enders.append(ender)
        return await ender

    async def first(self) -> Entry:
        """The first entry, once written (every journal gets one: at least its terminal)."""
        while not self.entries:
            waiter: asyncio.Future[None] = self._future()
            self._waiters.append(waiter)
            await waiter
        return self.entries[0]

    async def follow_batches(self, offset: int = 0) -> AsyncGenerator[list[Entry], None]:
        """Like `follow`, but every entry available at once comes in one list."""
        entries = self.entries
        while True:
            end = len(entries)
            if offset < end:
                yield entries[offset:end]
                offset = end
            if self.terminal is not None and offset >= len(entries):
                return
            if offset < len(entries):
                continue
            waiter: asyncio.Future[None] = self._future()
            self._waiters.append(waiter)
            await waiter

    async def follow(self, offset: int = 0) -> AsyncGenerator[Entry, None]:
        """Every entry from `offset`, then the new ones live, until the terminal one."""
        entries = self.entries
        while True:
            end = len(entries)
            while offset < end:
                yield entries[offset]
                offset += 1
            if self.terminal is not None:
                return
            waiter: asyncio.Future[None] = self._future()
            self._waiters.append(waiter)
            await waiter
