"""Run steps in threads of this process: the fastest runner, the default.

A step whose component declares ``requirements=[...]`` cannot run in this
process's environment, so it runs in its own cached virtual environment
through the subprocess runner's machinery, still under this runner's threads.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from ctloop.pipeline.component import AnyComponent
from ctloop.pipeline.task import StepTask, TaskResult, run_task

__all__ = ["LocalRunner"]


class LocalRunner:
    """Steps run in a thread pool; independent steps run in parallel."""

    name = "local"

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._max = 1
        self._active: set[Future[TaskResult]] = set()

    def init(self, max_workers: int) -> None:
        self._max = max_workers
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="ctloop-step")

    def can_submit(self) -> bool:
        self._active = {f for f in self._active if not f.done()}
        return len(self._active) < self._max

    def submit(self, task: StepTask, component: AnyComponent) -> Future[TaskResult]:
        assert self._pool is not None, "init() first"
        if task.requirements:
            from ctloop.pipeline.runners.subprocess import run_in_process

            future = self._pool.submit(run_in_process, task)
        else:
            future = self._pool.submit(run_task, task, component)
        self._active.add(future)
        return future

    def cancel_all(self) -> None:
        for future in self._active:
            future.cancel()

    def finalize(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
