"""Observers: what a dispatcher tells about the jobs it runs (for logs and metrics)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from gearjobs.store import JobRecord

__all__ = ("JobLog", "JobObserver", "JsonLogFormatter")


class JobObserver(Protocol):
    """Told when a job starts running and when its answer is recorded (or it is lost)."""

    def job_started(self, record: JobRecord, detail: Mapping[str, Any] | None) -> None:
        """The job began to run on this dispatcher."""

    def job_finished(self, record: JobRecord, detail: Mapping[str, Any] | None) -> None:
        """The job's final record was written (state succeeded, failed or lost)."""


def _outcome(record: JobRecord) -> str:
    if record.failure is not None:
        return f"{record.state.value}:{record.failure.value}"
    return record.state.value


class JobLog:
    """Logs one line when a job starts and one when it ends, on the `gearjobs.jobs` logger.

    Each line carries the request id, user, name, and at the end the outcome and duration, as
    `extra={"job": {...}}` too (JsonLogFormatter prints it). The detail given to the dispatch
    (for HTTP, the job's parameters) is logged only when `with_detail` is set.
    """

    def __init__(self, *, with_detail: bool = False, logger: logging.Logger | None = None) -> None:
        self.with_detail = with_detail
        self.logger = logger or logging.getLogger("gearjobs.jobs")

    def _fields(self, record: JobRecord, detail: Mapping[str, Any] | None) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "id": str(record.key.id),
            "user": record.key.user,
            "name": record.name,
            "run": record.run,
        }
        if self.with_detail and detail is not None:
            fields["params"] = dict(detail)
        return fields

    def job_started(self, record: JobRecord, detail: Mapping[str, Any] | None) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        fields = {"event": "start", **self._fields(record, detail)}
        self.logger.info(
            "job start %s user=%s name=%s", fields["id"], record.key.user, record.name,
            extra={"job": fields},
        )  # fmt: skip

    def job_finished(self, record: JobRecord, detail: Mapping[str, Any] | None) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        started = record.started_at or record.created_at
        duration = max(0.0, (record.finished_at or started) - started)
        fields = {
            "event": "end",
            **self._fields(record, detail),
            "outcome": _outcome(record),
            "duration": round(duration, 6),
        }
        self.logger.info(
            "job end %s user=%s name=%s outcome=%s duration=%.3fs",
            fields["id"], record.key.user, record.name, fields["outcome"], duration,
            extra={"job": fields},
        )  # fmt: skip


class JsonLogFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, and a job's fields when given."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        job = getattr(record, "job", None)
        if isinstance(job, dict):
            line.update(job)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)
