"""Job extensions: how a request becomes a job, and the registry that asks them in turn."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from gearjobs.jobs._errors import NoJobForRequest
from gearjobs.jobs._job import Job

__all__ = (
    "ExtensionRegistry",
    "JobExtension",
    "JobExtensionFunc",
    "JobInitializer",
    "add_job_extension",
    "default_registry",
    "job_for",
)


@runtime_checkable
class JobExtension(Protocol):
    """Maps a request to a job.

    `job_for` returns a Job, raises NoJobForRequest when it does not recognise the request
    (the registry asks the next extension), or raises another error (usually a JobError with
    INVALID_REQUEST) when it recognises the request but it is invalid.
    """

    def job_for(self, request: Any) -> Job:
        """The job for this request."""


class JobExtensionFunc:
    """Makes a callable `request -> Job` into a JobExtension."""

    __slots__ = ("func",)

    def __init__(self, func: Callable[[Any], Job]) -> None:
        self.func = func

    def job_for(self, request: Any) -> Job:
        return self.func(request)


class JobInitializer:
    """Runs `func` once, on first use, before delegating to `extension`.

    Concurrent first uses wait for the one run; if it failed, every later call raises the
    same error and `func` is not run again.
    """

    def __init__(self, extension: JobExtension, func: Callable[[], None]) -> None:
        self.extension = extension
        self.func = func
        self._lock = threading.Lock()
        self._done = False
        self._error: BaseException | None = None

    def _initialize(self) -> None:
        if not self._done:
            with self._lock:
                if not self._done:
                    try:
                        self.func()
                    except Exception as exc:  # returned to every caller, as the reference does
                        self._error = exc
                    self._done = True
        if self._error is not None:
            raise self._error

    def job_for(self, request: Any) -> Job:
        self._initialize()
        return self.extension.job_for(request)


class ExtensionRegistry:
    """An ordered list of job extensions, asked in turn for the job of a request."""

    def __init__(self, extensions: list[JobExtension] | None = None) -> None:
        self._extensions: list[JobExtension] = list(extensions or [])

    def add(self, extension: JobExtension) -> None:
        """Append an extension; earlier ones are asked first."""
        self._extensions.append(extension)

    @property
    def extensions(self) -> tuple[JobExtension, ...]:
        """The extensions, in the order they are asked."""
        return tuple(self._extensions)

    def job_for(self, request: Any) -> Job:
        """Ask each extension in order; NoJobForRequest passes to the next, others stop."""
        for extension in self._extensions:
            try:
                return extension.job_for(request)
            except NoJobForRequest:
                continue
        raise NoJobForRequest()


_default = ExtensionRegistry()


def default_registry() -> ExtensionRegistry:
    """The registry behind `add_job_extension` and `job_for` (the reference's module-level one).

    Servers and tests take an ExtensionRegistry explicitly; this one is only a default.
    """
    return _default


def add_job_extension(extension: JobExtension) -> None:
    """Register an extension in the default registry (at start-up)."""
    _default.add(extension)


def job_for(request: Any) -> Job:
    """The job for `request`, from the default registry."""
    return _default.job_for(request)
