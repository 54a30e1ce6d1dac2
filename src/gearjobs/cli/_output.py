"""How `gearjobs run` and `attach` show an answer on a terminal or in a pipe."""

from __future__ import annotations

import codecs
import json
import sys
from typing import Any, BinaryIO, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from gearjobs.jobs import JobError, ResponseSuccess, ResponseWriter, as_job_error

__all__ = ("TerminalResponse",)


class _TextWriter:
    """A text stream's bytes as they come: to the output's binary buffer when it has one
    (every byte as the job wrote it, as curl prints it), else decoded as one UTF-8 stream,
    so that a character split between two chunks is not broken into two bad ones."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._binary: BinaryIO | None = getattr(out, "buffer", None)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def write(self, data: Any) -> None:
        out = self._out
        if isinstance(data, str):
            out.write(data)
        elif self._binary is not None:
            out.flush()  # what was written as text goes first
            self._binary.write(bytes(data))
            self._binary.flush()
            return
        else:
            out.write(self._decoder.decode(bytes(data)))
        out.flush()


class _EventWriter:
    """Events as JSON lines; on a terminal, events with progress and total move a bar."""

    def __init__(self, out: TextIO, console: Console | None) -> None:
        self._out = out
        self._console = console
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def write(self, data: Any) -> None:
        if (
            self._console is not None
            and isinstance(data, dict)
            and isinstance(data.get("progress"), int | float)
            and isinstance(data.get("total"), int | float)
        ):
            if self._progress is None:
                self._progress = Progress(
                    TextColumn("[bold]{task.description}"),
                    BarColumn(),
                    TextColumn("{task.completed:.0f}/{task.total:.0f}"),
                    TimeRemainingColumn(),
                    console=self._console,
                )
                self._progress.start()
                self._task = self._progress.add_task("running", total=data["total"])
            if self._task is not None:
                self._progress.update(self._task, completed=data["progress"], total=data["total"])
            return
        self._out.write(json.dumps(data) + "\n")
        self._out.flush()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


class TerminalResponse:
    """A Response that prints: data as JSON (or text), streams as they come, failures on stderr."""

    def __init__(self, *, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.error: JobError | None = None
        self.kind: ResponseSuccess | None = None
        self.nothing = False
        """True when the answer was a success with nothing to show (204)."""
        self._events: _EventWriter | None = None
        self._console = Console(file=self.out) if self.out.isatty() else None

    def stream_result(self) -> bool:
        return True

    def success(self, kind: ResponseSuccess) -> None:
        self.kind = kind
        self.nothing = True

    def success_with_data(self, kind: ResponseSuccess, data: Any) -> None:
        self.kind = kind
        if isinstance(data, str):
            self.out.write(data if data.endswith("\n") else data + "\n")
        else:
            self.out.write(json.dumps(data, indent=2) + "\n")
        self.out.flush()

    def success_with_write(
        self, kind: ResponseSuccess, flush: bool, structured: bool
    ) -> ResponseWriter:
        self.kind = kind
        if structured:
            self._events = _EventWriter(self.out, self._console)
            return self._events
        return _TextWriter(self.out)

    def failure(self, error: BaseException) -> None:
        self.error = as_job_error(error)
        self.err.write(f"error ({self.error.response_failure().value}): {self.error.message}\n")

    def stream_failed(self, error: JobError) -> None:
        self.finish()
        self.failure(error)

    def write_pending_success(self, name: str, value: Any) -> None:
        pass

    def finish(self) -> None:
        """Stop the progress bar, if one is shown."""
        if self._events is not None:
            self._events.close()
