"""The dispatcher: runs jobs on bounded queues, once per request id, and records their answers."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import logging
import math
import os
import socket
import time
import types
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from gearjobs.dispatcher._handle import JobHandle
from gearjobs.dispatcher._journal import Journal
from gearjobs.dispatcher._observer import JobObserver
from gearjobs.dispatcher._pump import ResponsePump
from gearjobs.dispatcher._queue import JobQueue
from gearjobs.dispatcher._recording import RecordingResponse
from gearjobs.jobs import (
    ANONYMOUS,
    ERR_RAN_TO_COMPLETION,
    GearjobsError,
    Job,
    JobContext,
    JoinAction,
    RequestIdentifier,
    Response,
    ResponseFailure,
    SimpleError,
    fingerprint_of,
    is_async_job,
    is_fast,
    running_context,
)
from gearjobs.store import (
    LOST_MESSAGE,
    ClaimResult,
    Entry,
    EntryNotJSON,
    JobKey,
    JobRecord,
    JobState,
    MemoryStore,
    Store,
    StoreUnavailable,
    Succeeded,
    WriteRefused,
    is_terminal,
    lost_entry,
)

__all__ = (
    "ERR_MISMATCH",
    "ERR_RATE_LIMIT",
    "ERR_SHUTTING_DOWN",
    "ERR_STILL_RUNNING",
    "LOST_MESSAGE",
    "Dispatcher",
)

logger = logging.getLogger("gearjobs.dispatcher")

ERR_RATE_LIMIT = SimpleError(
    ResponseFailure.RATE_LIMIT, "The server is at maximum capacity - please try again shortly"
)
ERR_SHUTTING_DOWN = SimpleError(
    ResponseFailure.UNAVAILABLE, "The server is shutting down - please try again shortly"
)
ERR_MISMATCH = SimpleError(
    ResponseFailure.REQUEST_MISMATCH,
    "This request id was used for a different request; use a new id for a new request.",
)
ERR_LOST = SimpleError(ResponseFailure.UNAVAILABLE, LOST_MESSAGE)
ERR_STILL_RUNNING = SimpleError(
    ResponseFailure.ALREADY_EXISTS, "This job is still running; it can run again once it ends."
)


class _Run:
    """A job that this dispatcher has claimed: queued, running, or being recorded."""

    __slots__ = (
        "context",
        "detail",
        "done",
        "executing",
        "flushed",
        "flushing",
        "held",
        "job",
        "journal",
        "queue",
        "record",
        "retry",
        "settled",
        "stopped",
        "write_failures",
    )

    def __init__(
        self,
        record: JobRecord,
        job: Job,
        queue: JobQueue[_Run],
        context: JobContext,
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        self.record = record
        self.job = job
        self.queue = queue
        self.context = context
        self.journal = Journal(loop=loop)
        self.executing = False
        self.detail: Mapping[str, Any] | None = None
        self.settled: asyncio.Event | None = None
        self.done = False
        """True once the answer is in the store (or could not be written)."""
        self.flushed = 0
        """How many journal entries a live-journal store already holds."""
        self.flushing: asyncio.Task[None] | None = None
        self.held: Entry | None = None
        """The terminal entry, kept out of the journal until the store has it (`hold_answers`)."""
        self.stopped = False
        self.write_failures = 0
        """How often the store refused the final write (it is tried again, see `_recorded`)."""
        self.retry: asyncio.TimerHandle | None = None
        """True once `close` cancelled the job (it is then lost, not failed)."""

    def settled_event(self) -> asyncio.Event:
        """Set once the answer is in the store; made when someone first waits for it."""
        if self.settled is None:
            self.settled = asyncio.Event()
            if self.done:
                self.settled.set()
        return self.settled

    def settle(self) -> None:
        self.done = True
        if self.settled is not None:
            self.settled.set()


class Dispatcher:
    """Runs jobs once per (user, request id) on a fast and a slow bounded queue.

    `queue_fast` / `queue_slow` bound the jobs waiting in each queue and `concurrent` workers
    serve each one. A full queue rejects at once with RATE_LIMIT. Every job writes to a journal;
    the first client and every joiner read it from its start. Finished answers are replayed
    for `retention` seconds, after which the newest `track_duplicate_ids` ids are still
    remembered and answer ERR_RAN_TO_COMPLETION. Use it as an async context manager, or call
    `start()` and `close()`.
    """

    def __init__(
        self,
        *,
        store: Store | None = None,
        queue_fast: int = 1024,
        queue_slow: int = 256,
        concurrent: int = 16,
        track_duplicate_ids: int = 100_000,
        retention: float = 24 * 3600.0,
        prune_interval: float | None = None,
        node: str | None = None,
        clock: Callable[[], float] = time.time,
        observers: Sequence[JobObserver] = (),
        hold_answers: bool = True,
    ) -> None:
        if not 0 < retention < math.inf:  # also false for nan
            raise GearjobsError(f"retention must be a positive number of seconds, not {retention}")
        if track_duplicate_ids < 0:
            raise GearjobsError(f"track_duplicate_ids must be >= 0, not {track_duplicate_ids}")
        self.store: Store = store if store is not None else MemoryStore()
        self.retention = retention
        self.track_duplicate_ids = track_duplicate_ids
        self.prune_interval = prune_interval or min(60.0, retention / 4)
        self.node = node or f"{socket.gethostname()}:{os.getpid()}"
        self._clock = clock
        self.observers = list(observers)
        self.hold_answers = hold_answers
        """True: a job's end (its data, failure or the end of its stream) reaches no client
        before the store has written it, so that no answer given is lost to a crash of this
        process; it costs every answer the wait for its write."""
        self.fast: JobQueue[_Run] = JobQueue("fast", capacity=queue_fast, concurrent=concurrent)
        self.slow: JobQueue[_Run] = JobQueue("slow", capacity=queue_slow, concurrent=concurrent)
        self._active: dict[JobKey, _Run] = {}
        self._claiming: dict[JobKey, asyncio.Future[None]] = {}
        self._workers: dict[asyncio.Task[None], _Run | None] = {}
        self._pruner: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._recording: set[asyncio.Future[None]] = set()
        """Finished jobs whose answers are being written to the store."""
        self._recording_limit = queue_fast + queue_slow
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._closing = False
        self._closed: asyncio.Future[None] | None = None

    # Life cycle

    async def start(self) -> None:
        """Start the workers and the pruner, and mark this node's unfinished jobs lost."""
        if self._started:
            return
        self.store.attach(self)  # a single-user store refuses a second dispatcher
        self._started = True
        self._loop = asyncio.get_running_loop()
        await self.store.open()
        try:
            await self.store.take_name(self.node)  # NameTaken if a live process has it
        except BaseException:
            self._started = False
            self.store.detach(self)
            raise
        lost = await self.store.recover(self.node, self._clock())
        for record in lost:
            logger.warning("job %s (%s) was lost when this node stopped", record.key, record.name)
        for queue in (self.fast, self.slow):
            for _ in range(queue.concurrent):
                task = asyncio.create_task(self._work(queue), name=f"gearjobs-{queue.name}")
                self._workers[task] = None
        self._pruner = asyncio.create_task(self._prune_every(), name="gearjobs-pruner")

    async def __aenter__(self) -> Dispatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def closing(self) -> bool:
        """True once close() was called: no new job is taken."""
        return self._closing

    async def close(self, timeout: float = 30.0) -> None:
        """Stop intake, let running jobs finish within `timeout`, record the rest as lost.

        A later call (with any timeout) waits for the first one's end.
        """
        await asyncio.shield(self.begin_close(timeout))

    def begin_close(self, timeout: float = 30.0) -> asyncio.Future[None]:
        """Start `close` now, on the loop, without waiting for it; its end is returned."""
        if self._closed is None:
            self._closing = True
            self._closed = asyncio.ensure_future(self._close(timeout))
        return self._closed

    async def _close(self, timeout: float) -> None:
        if self._pruner is not None:
            self._pruner.cancel()
        for queue in (self.fast, self.slow):
            for run in queue.drain():
                await self._lose(run)
        for run in list(self._active.values()):
            if run.retry is not None:  # a last try now, for answers the store refused
                run.retry.cancel()
                self._write(run)
        running = [run.settled_event().wait() for run in self._active.values()]
        if running:
            await asyncio.wait([asyncio.ensure_future(w) for w in running], timeout=timeout)
        # Cancel the jobs still executing (their workers record them lost) and idle workers;
        # a worker busy recording an answer is left to finish it.
        for task, current in self._workers.items():
            if current is None or current.executing:
                if current is not None:
                    current.stopped = True
                task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        if self._recording:  # wait, not gather: cancelling a gather cancels the writes
            await asyncio.wait(set(self._recording))
        for run in list(self._active.values()):
            await self._lose(run)
        for queue in (self.fast, self.slow):
            queue.shutdown()
        with contextlib.suppress(StoreUnavailable):  # then the name expires within seconds
            await self.store.release_name(self.node)
        self.store.detach(self)

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        """The loop this dispatcher started on (asked of asyncio only before `start`)."""
        loop = self._loop
        return loop if loop is not None else asyncio.get_running_loop()

    # Dispatching

    async def dispatch(
        self,
        id: RequestIdentifier,
        job: Job,
        response: Response | None = None,
        *,
        context: JobContext | None = None,
        fingerprint: str | None = None,
        name: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> JobHandle:
        """Run `job` under `id`, or join the job that already holds the id.

        `context` names the user (ids are scoped by user; default `anonymous`). `fingerprint`
        identifies the request (default: `fingerprint_of(job)`); the same id with another
        fingerprint fails with REQUEST_MISMATCH. When `response` is given, the answer is
        written to it as it is recorded. `detail` (for example the job's parameters) is handed
        to the observers, never stored. Raises a JobError when the request is refused.
        """
        if self._closing:
            raise ERR_SHUTTING_DOWN
        if not self._started:
            await self.start()
        if context is None:
            context = JobContext(id, ANONYMOUS)
        elif context.id is not id and context.id != id:
            raise GearjobsError(f"context id {context.id} differs from the dispatched id {id}")
        key = JobKey(context.user, id)
        if fingerprint is None:
            fingerprint = fingerprint_of(job)
        active = self._active
        while True:
            run = active.get(key)
            if run is not None:
                return await self._join_run(run, job, fingerprint, response)
            claiming = self._claiming.get(key) if self._claiming else None
            if claiming is None:
                break
            await asyncio.shield(claiming)
        record = JobRecord(
            key,
            name or _name_of(job),
            fingerprint,
            node=self.node,
            created_at=self._clock(),
        )
        # The common case costs no coroutine of its own: a place in the queue, and a claim
        # that the store decides at once.
        queue = self.fast if is_fast(job) else self.slow
        if not queue.reserve():
            return await self._claim(record, job, context, response, detail=detail)
        try:
            result = self.store.claim_now(record)
            if result is not None and result.claimed:
                return self._start(record, job, queue, context, response, detail)
        except BaseException:
            queue.release()
            raise
        return await self._claimed(result, record, job, queue, context, response, None, detail)

    async def _claim(
        self,
        record: JobRecord,
        job: Job,
        context: JobContext,
        response: Response | None,
        *,
        replace_run: int | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> JobHandle:
        queue = self.fast if is_fast(job) else self.slow
        if not queue.reserve():
            existing = await self.store.get(record.key)
            if existing is None or existing.state is JobState.LOST or replace_run is not None:
                raise ERR_RATE_LIMIT
            return await self._join_record(existing, job, record.fingerprint, context, response)
        try:
            result = self.store.claim_now(record, replace_run=replace_run)
        except BaseException:
            queue.release()
            raise
        return await self._claimed(
            result, record, job, queue, context, response, replace_run, detail
        )

    async def _claimed(
        self,
        result: ClaimResult | None,
        record: JobRecord,
        job: Job,
        queue: JobQueue[_Run],
        context: JobContext,
        response: Response | None,
        replace_run: int | None,
        detail: Mapping[str, Any] | None,
    ) -> JobHandle:
        """Go on from `claim_now`'s answer, with a place in `queue` reserved for the job."""
        key = record.key
        if result is None:  # the store must look: others asking for the id wait for it
            marker: asyncio.Future[None] = self._event_loop().create_future()
            self._claiming[key] = marker
            try:
                result = await self.store.claim(record, replace_run=replace_run)
            except BaseException:
                queue.release()
                raise
            finally:
                del self._claiming[key]
                marker.set_result(None)
        if result.claimed:
            try:
                return self._start(record, job, queue, context, response, detail)
            except BaseException:
                queue.release()
                raise
        queue.release()
        run = self._active.get(key)
        if run is not None:
            return await self._join_run(run, job, record.fingerprint, response)
        if result.existing is None:
            raise GearjobsError(f"the store refused the claim of {key} without saying why")
        return await self._join_record(result.existing, job, record.fingerprint, context, response)

    def _start(
        self,
        record: JobRecord,
        job: Job,
        queue: JobQueue[_Run],
        context: JobContext,
        response: Response | None,
        detail: Mapping[str, Any] | None = None,
    ) -> JobHandle:
        run = _Run(record, job, queue, context, self._loop)
        run.detail = detail
        self._active[record.key] = run
        if response is not None:
            run.journal.listen(ResponsePump(response))
        handle = JobHandle(record, journal=run.journal, store=self.store, joined=False)
        if self._closing:
            queue.release()
            self._spawn(self._lose(run))
        else:
            queue.put(run)
        return handle

    async def _join_run(
        self, run: _Run, job: Job, fingerprint: str, response: Response | None
    ) -> JobHandle:
        if run.record.fingerprint != fingerprint:
            raise ERR_MISMATCH
        done = run.journal.done or run.held is not None  # held: finished, being written
        if _consult(job, run.job, done) is JoinAction.RERUN:
            if not done:
                raise ERR_STILL_RUNNING
            await run.settled_event().wait()
            record = await self.store.get(run.record.key)
            if record is None:
                raise ERR_RAN_TO_COMPLETION
            return await self._rerun(record, job, run.context, response)
        if response is not None:
            run.journal.listen(ResponsePump(response))
        return JobHandle(run.record, journal=run.journal, store=self.store, joined=True)

    async def _join_record(
        self,
        record: JobRecord,
        job: Job,
        fingerprint: str,
        context: JobContext,
        response: Response | None,
    ) -> JobHandle:
        if record.fingerprint and record.fingerprint != fingerprint:
            raise ERR_MISMATCH  # even after retention: the id belongs to its first request
        if not record.kept:
            raise ERR_RAN_TO_COMPLETION
        done = record.state.finished
        if not done and self.store.single_user:
            run = self._active.get(record.key)
            if run is not None:  # claimed while the record was read
                return await self._join_run(run, job, fingerprint, response)
            await self._orphaned(record)
            raise ERR_LOST
        if _consult(job, None, done) is JoinAction.RERUN:
            if not done:
                raise ERR_STILL_RUNNING
            return await self._rerun(record, job, context, response)
        handle = JobHandle(record, journal=None, store=self.store, joined=True)
        if response is not None:
            if done:
                await handle.write_to(response)
            else:
                self._spawn(handle.write_to(response))
        return handle

    async def _rerun(
        self, previous: JobRecord, job: Job, context: JobContext, response: Response | None
    ) -> JobHandle:
        record = JobRecord(
            previous.key,
            previous.name,
            previous.fingerprint,
            node=self.node,
            created_at=self._clock(),
        )
        return await self._claim(record, job, context, response, replace_run=previous.run)

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # Running

    async def _work(self, queue: JobQueue[_Run]) -> None:
        me = asyncio.current_task()
        if me is None:  # pragma: no cover - always inside a task
            return
        while not self._closing:
            run = await queue.take()
            self._workers[me] = run
            try:
                if self._closing:
                    await self._lose(run)
                else:
                    await self._execute(run, me)
            finally:
                self._workers[me] = None

    async def _execute(self, run: _Run, worker: asyncio.Task[None] | None) -> None:
        record = run.record
        record.state = JobState.RUNNING
        record.started_at = self._clock()
        queue = run.queue
        queue.running += 1
        loop = self._event_loop()
        live = self.store.live_journal
        append: Callable[[Entry], None] = self._live_appender(run) if live else run.journal.append
        if self.hold_answers:
            append = _holding(run, append)
        response = RecordingResponse(
            append, loop=loop, label=record.key, json_only=not self.store.keeps_objects
        )
        job = run.job
        for observer in self.observers:
            observer.job_started(record, run.detail)
        token = running_context.set(run.context)
        run.executing = True
        lost = False
        cancelling = worker.cancelling() if worker is not None else 0
        try:
            if queue is self.slow:
                # The store has a slow job running (other nodes see it so; after a crash its
                # lost record keeps when it started). A fast job (short by its contract) is
                # not worth a round trip to the store: its record goes from queued to its end.
                await self.store.update(record)
            if is_async_job(job):
                result: Any = job.execute(response)
                if type(result) is not types.CoroutineType and not inspect.isawaitable(result):
                    result = None
            else:
                ctx = contextvars.copy_context()
                result = await loop.run_in_executor(queue.executor, ctx.run, job.execute, response)
                if not inspect.isawaitable(result):
                    result = None
            if result is not None:
                await result
        except asyncio.CancelledError as exc:
            if run.stopped:
                lost = True  # close() cancelled it
            else:  # the job raised it (awaited something cancelled, or cancelled its task)
                logger.error(
                    "job %s (%s) raised CancelledError", record.key, record.name, exc_info=exc
                )
                response.fail(exc)
        except Exception as exc:
            logger.error(
                "job %s (%s) raised %s", record.key, record.name, type(exc).__name__, exc_info=exc
            )
            response.fail(exc)
        else:
            response.finish()
        finally:
            run.executing = False
            queue.running -= 1
            running_context.reset(token)
        if worker is not None and not run.stopped and worker.cancelling() > cancelling:
            # The job cancelled its own worker's task: that cancellation, delivered or still
            # pending, must reach neither the worker nor its next job.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0)
            while worker.cancelling() > cancelling:
                worker.uncancel()
        if lost:
            await self._lose(run)
            return
        self._conclude(run)
        flushing = run.flushing is not None and not run.flushing.done()
        if flushing or len(self._recording) >= self._recording_limit:
            await self._record(run)  # the live journal is still being written, or the store
            return  # is behind: this worker waits for it
        # The answer is in the journal already. Its write is queued in the store now (a read
        # asked later sees it) but not waited for: the store's batches and the next jobs
        # overlap.
        self._write(run)

    def _live_appender(self, run: _Run) -> Callable[[Entry], None]:
        """Appends to the journal and, within the same loop tick, to the store's journal."""
        journal = run.journal

        def append(entry: Entry) -> None:
            journal.append(entry)
            # The entries from the terminal one on are the final write's (see `_execute`).
            if journal.terminal is None and (run.flushing is None or run.flushing.done()):
                run.flushing = asyncio.ensure_future(self._flush(run))

        return append

    async def _flush(self, run: _Run) -> None:
        entries = run.journal.entries
        while run.flushed < len(entries) and run.journal.terminal is None:
            batch = entries[run.flushed :]
            try:
                # From the position the store confirmed: an append that failed may have
                # been made all the same, and its entries then go in once (see Store.append).
                await self.store.append(run.record.key, batch, start=run.flushed)
            except Exception:
                logger.exception("could not append to the journal of job %s", run.record.key)
                return
            run.flushed += len(batch)

    def _conclude(self, run: _Run) -> None:
        """Fill in the finished job's record from its journal (what `get` shows at once)."""
        record = run.record
        journal = run.journal
        terminal = journal.terminal if run.held is None else run.held
        if terminal is None:  # pragma: no cover - finish() and fail() always end the journal
            raise GearjobsError(f"job {record.key} ended without an answer")
        first = journal.entries[0] if journal.entries else terminal
        record.outcome_from(terminal, first if isinstance(first, Succeeded) else None)
        record.finished_at = self._clock()

    async def _lose(self, run: _Run) -> None:
        """Record a job that will not finish here as lost; its joiners see the stream end."""
        record = run.record
        run.held = None  # never given: the job's clients get the lost answer
        if run.journal.terminal is None:
            run.journal.append(lost_entry())
        record.state = JobState.LOST
        record.failure = ResponseFailure.UNAVAILABLE
        entries = run.journal.entries
        if entries and isinstance(entries[0], Succeeded):  # a stream it began: its answer
            record.success, record.body = entries[0].kind, entries[0].body
        record.finished_at = self._clock()
        logger.warning("job %s (%s) lost: the dispatcher closed", record.key, record.name)
        await self._record(run)

    async def _record(self, run: _Run) -> None:
        try:
            if run.flushing is not None:
                await run.flushing
            await self.store.finish(run.record, _unwritten(run), start=run.flushed)
        except Exception as exc:
            if self._write_later(run, exc):  # the job stays live until the write is made
                return
            self._forget(run, written=False)
            return
        self._forget(run)

    def _recorded(self, run: _Run, written: asyncio.Future[None]) -> None:
        self._recording.discard(written)
        if written.cancelled():
            logger.error("the answer of job %s was not recorded: cancelled", run.record.key)
            self._forget(run, written=False)
        elif (exc := written.exception()) is not None:
            if not self._write_later(run, exc):
                self._forget(run, written=False)
        else:
            self._forget(run)

    WRITE_TRIES = 8
    """Tries of a job's final write that the store refused (0.1 s apart, doubling to 5 s)."""

    def _write_later(self, run: _Run, exc: BaseException) -> bool:
        """Try the refused final write again later; False once it is given up.

        Meanwhile the job stays live here: a repeat of its id on this node gets its answer
        from the journal, instead of following a record the store still shows unfinished.
        """
        run.write_failures += 1
        key = run.record.key
        # The same entries fail the same way; a record that is no longer this run's stays so.
        permanent = isinstance(exc, EntryNotJSON | WriteRefused)
        if self._closing or permanent or run.write_failures >= self.WRITE_TRIES:
            logger.error("could not record the answer of job %s; given up", key, exc_info=exc)
            return False
        delay = min(0.1 * 2 ** (run.write_failures - 1), 5.0)
        logger.error(
            "could not record the answer of job %s (try %d); trying again in %.1f s",
            key, run.write_failures, delay, exc_info=exc,
        )  # fmt: skip
        loop = self._event_loop()
        run.retry = loop.call_later(delay, self._write, run)
        return True

    def _write(self, run: _Run) -> None:
        """Queue the final write of a finished job; `_recorded` takes its outcome."""
        run.retry = None
        try:
            written = self.store.finish_soon(run.record, _unwritten(run), start=run.flushed)
            if run.held is not None:
                self.store.hurry()  # an answer waits for this write
        except Exception as exc:
            written = self._event_loop().create_future()
            written.set_exception(exc)
        if written.done():  # a store that writes at once (memory)
            self._recorded(run, written)
        else:
            self._recording.add(written)
            written.add_done_callback(functools.partial(self._recorded, run))

    def _forget(self, run: _Run, *, written: bool = True) -> None:
        """The job's answer is in the store (or could not be written): drop the live run."""
        held, run.held = run.held, None
        if held is not None:  # its clients get the answer now, or the lost one if unwritten
            if not written:
                record = run.record
                record.state = JobState.LOST
                record.failure = ResponseFailure.UNAVAILABLE
                logger.warning(
                    "job %s (%s) lost: its answer was not recorded", record.key, record.name
                )
            run.journal.append(held if written else lost_entry())
        if self._active.get(run.record.key) is run:
            del self._active[run.record.key]
        run.settle()  # no Event a job: only those who wait for one make it
        for observer in self.observers:
            try:
                observer.job_finished(run.record, run.detail)
            except Exception:
                logger.exception("an observer failed on job %s", run.record.key)

    # Looking at jobs

    async def get(self, key: JobKey) -> JobRecord | None:
        """The record of a job: this node's live view while it runs here, else the store's.

        A live job is shown once its claim is written (a store may write claims a few
        milliseconds behind): a job a client was told of outlives a crash, as `lost`.
        """
        run = self._active.get(key)
        if run is not None:
            await self.store.claims_written()
            return _live_view(self._active.get(key, run))
        return await self.store.get(key)

    async def list_records(
        self,
        *,
        user: str | None = None,
        state: JobState | None = None,
        name: str | None = None,
        limit: int = 50,
        before: tuple[float, str] | None = None,
    ) -> list[JobRecord]:
        """The store's records, newest first, once the answers finished here are written.

        A job that runs here shows as `get` shows it: its live record. (The store may be
        behind it: a final write it refused waits for its next try; a running job's row may
        still say queued.) With `state`, the live state is what is matched: a job whose row
        matches but whose live record does not is left out, and one whose live record
        matches is in, wherever its row is. The page is still `limit` records long whenever
        more match (the HTTP API ends paging at a short page).
        """
        await self._written()
        active = self._active
        if limit <= 0:
            return []
        if not active or state is None:
            records = await self.store.list_records(
                user=user, state=state, name=name, limit=limit, before=before
            )
            return [_live_view(active[r.key]).copy() if r.key in active else r for r in records]
        shown: dict[JobKey, JobRecord] = {}
        cursor = before
        boundary: tuple[float, str] | None = None  # the oldest row read, while more may match
        # Rows of live jobs whose live state differs are left out: read that many more at
        # once, so that one read nearly always makes the page.
        differing = sum(1 for run in active.values() if _live_view(run).state is not state)
        read = limit + differing
        while True:
            rows = await self.store.list_records(
                user=user, state=state, name=name, limit=read, before=cursor
            )
            for row in rows:
                run = active.get(row.key)
                record = row if run is None else _live_view(run).copy()
                if record.state is state:
                    shown[record.key] = record
            if len(rows) < read:
                boundary = None
                break
            boundary = cursor = (rows[-1].created_at, str(rows[-1].key.id))
            if len(shown) >= limit:
                break
        for run in list(active.values()):  # the jobs whose live state matches, wherever
            record = _live_view(run)
            order = (record.created_at, str(record.key.id))
            if (
                record.state is state
                and (user is None or record.key.user == user)
                and (name is None or record.name == name)
                and (before is None or order < before)
                and (boundary is None or order >= boundary)
                and record.key not in shown
            ):
                shown[record.key] = record.copy()
        newest_first = sorted(
            shown.values(), key=lambda r: (r.created_at, str(r.key.id)), reverse=True
        )
        return newest_first[:limit]

    async def _written(self) -> None:
        """Wait for the answers being written to the store now (each write takes one batch)."""
        if self._recording:  # wait, not gather: a cancelled caller must not cancel the writes
            await asyncio.wait(set(self._recording))

    async def recorded(self, key: JobKey) -> None:
        """Wait until the store holds the final record of a job that runs here (if one does).

        With `hold_answers=False`, a job's answer reaches its clients before the store has
        written it down; held (the default), the answer comes with the write.
        """
        run = self._active.get(key)
        if run is not None:
            await run.settled_event().wait()

    async def follow(self, key: JobKey) -> JobHandle | None:
        """A handle on a job's answer without sending the request again (None if unknown)."""
        run = self._active.get(key)
        if run is not None:
            return JobHandle(run.record, journal=run.journal, store=self.store, joined=True)
        record = await self.store.get(key)
        if record is None:
            return None
        if not record.kept:
            raise ERR_RAN_TO_COMPLETION
        if not record.state.finished and self.store.single_user:
            run = self._active.get(key)
            if run is not None:  # claimed while the record was read
                return JobHandle(run.record, journal=run.journal, store=self.store, joined=True)
            lost = await self._orphaned(record)  # its answer, whether or not the store took it
            return JobHandle(lost, journal=Journal([lost_entry()]), store=self.store, joined=True)
        return JobHandle(record, journal=None, store=self.store, joined=True)

    async def _orphaned(self, record: JobRecord) -> JobRecord:
        """Record as lost an unfinished job that nobody runs, and return its lost record.

        A store without a live journal (memory, SQLite) has this dispatcher as its only
        user: a job it does not run, whose record is unfinished, will never finish. That is
        a job whose answer the store refused to the end (see `_write_later`). Its clients
        get the lost answer (503), and a retry of the same request runs it again.
        """
        lost = record.copy()
        lost.state = JobState.LOST
        lost.failure = ResponseFailure.UNAVAILABLE
        lost.finished_at = self._clock()
        logger.warning("job %s (%s) was never recorded as finished: lost", lost.key, lost.name)
        try:
            await self.store.finish(lost, [lost_entry()])
        except Exception:
            logger.exception("could not record job %s as lost", lost.key)
        return lost

    # Retention

    async def prune(self) -> int:
        """Apply the retention settings now; return how many records changed.

        Answers still being written to the store are waited for first, so that retention
        applies to every job that has finished.
        """
        await self._written()
        return await self.store.prune(
            now=self._clock(), retention=self.retention, remember=self.track_duplicate_ids
        )

    async def _prune_every(self) -> None:
        # Once at start, so that a node restarted on an old store applies retention at once
        # rather than an interval later; then every interval.
        while True:
            try:
                await self.prune()
            except Exception:
                logger.exception("pruning the store failed")
            await asyncio.sleep(self.prune_interval)


def _consult(job: Job, other: Job | None, done: bool) -> JoinAction:
    join = getattr(job, "join", None)
    if not callable(join):
        return JoinAction.JOIN
    action = join(other, done)
    return action if isinstance(action, JoinAction) else JoinAction.JOIN


def _name_of(job: Job) -> str:
    name = getattr(job, "name", None)
    return name if isinstance(name, str) else type(job).__name__


def _holding(run: _Run, append: Callable[[Entry], None]) -> Callable[[Entry], None]:
    """`append` for all but the job's terminal entry, which waits in `run.held` for the store."""

    def hold(entry: Entry) -> None:
        if is_terminal(entry):
            run.held = entry
        else:
            append(entry)

    return hold


def _unwritten(run: _Run) -> Sequence[Entry]:
    """The entries of the job's final write: those the store does not hold yet, from
    position `run.flushed`, and the held terminal entry."""
    entries = run.journal.entries
    flushed = run.flushed
    part = entries[flushed:] if flushed else entries
    return part if run.held is None else [*part, run.held]


def _live_view(run: _Run) -> JobRecord:
    """The record of a job that this node runs, as clients may see it: while its answer is
    held for the store (`hold_answers`), still running, since nobody has that answer yet."""
    record = run.record
    if run.held is None:
        return record
    shown = record.copy()
    shown.state = JobState.RUNNING
    shown.finished_at = None
    shown.success = shown.body = shown.failure = None
    return shown
