"""The runner interface: where steps execute.

A runner receives ready :class:`~ctloop.pipeline.task.StepTask` values and
returns futures of :class:`~ctloop.pipeline.task.TaskResult`. The engine keeps
all bookkeeping (metadata, caching, retries, resume), so a runner is small:
``local`` (threads in this process), ``subprocess`` (one Python process per
step, optionally in its own virtual environment), and ``dask`` (a cluster).
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ctloop.pipeline.component import AnyComponent
    from ctloop.pipeline.task import StepTask, TaskResult

__all__ = ["Runner"]


@runtime_checkable
class Runner(Protocol):
    """Executes step tasks; created by :func:`ctloop.pipeline.runners.open_runner`."""

    name: str

    def init(self, max_workers: int) -> None:
        """Start workers (threads, processes, a cluster client)."""
        ...

    def can_submit(self) -> bool:
        """True when another task would start now rather than queue."""
        ...

    def submit(self, task: StepTask, component: AnyComponent) -> Future[TaskResult]:
        """Start ``task``; the future never raises for user-code failures."""
        ...

    def cancel_all(self) -> None:
        """Stop tasks not yet started (a step failed and the run is stopping)."""
        ...

    def finalize(self) -> None:
        """Release workers."""
        ...
