"""The Response protocol: what a job writes its answer to."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from gearjobs.jobs._codes import ResponseSuccess

__all__ = ("Response", "ResponseWriter")


@runtime_checkable
class ResponseWriter(Protocol):
    """The stream a job writes after `success_with_write`.

    A text stream takes `str` or `bytes` (str is sent as UTF-8); a structured stream takes one
    JSON-compatible value per `write`, which the client receives as one event.
    """

    def write(self, data: Any) -> None:
        """Write one chunk (text) or one event (structured)."""


@runtime_checkable
class Response(Protocol):
    """Where a job writes its answer.

    A job may return structured data, stream text, or stream structured events. Exactly one
    terminal call per response: `success`, `success_with_data`, `success_with_write` or
    `failure`. A second one is a programming error: it is reported, never applied. Pending
    values (`write_pending_success`) travel with a success and are dropped on a failure.
    """

    def stream_result(self) -> bool:
        """True when the client can receive a stream."""

    def success(self, kind: ResponseSuccess) -> None:
        """Succeed with nothing more to say."""

    def success_with_data(self, kind: ResponseSuccess, data: Any) -> None:
        """Succeed with structured data."""

    def success_with_write(
        self, kind: ResponseSuccess, flush: bool, structured: bool
    ) -> ResponseWriter:
        """Succeed with a stream: text, or structured events when `structured`."""

    def failure(self, error: BaseException) -> None:
        """Fail with a JobError (any other exception counts as UnknownJobError)."""

    def write_pending_success(self, name: str, value: Any) -> None:
        """Record a side-channel value sent along with a later success."""
