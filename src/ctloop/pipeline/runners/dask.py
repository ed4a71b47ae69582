"""Run steps as tasks on a Dask distributed cluster.

``runner = "dask"`` starts a ``LocalCluster`` on 127.0.0.1 for the length of a
run; ``runner = "tcp://host:8786"`` connects to a scheduler someone else runs.
Each step becomes one Dask task that calls :func:`run_task` on a worker, so its
inputs and outputs go through the artifact store, never through Dask's memory:
a run on Dask caches, resumes and records exactly like a local one.

Decisions worth knowing:

* Only the task travels; the worker imports the component itself (by module,
  or by file path for pipelines in user files), so workers need the pipeline
  code at the same path or installed.
* A step's ``resources`` (``cpus``, ``memory``, anything else) become Dask
  worker resources. A step asking for more than any worker offers fails at
  once with the numbers, instead of waiting forever.
* A worker that dies mid-step surfaces as a failed attempt (the cluster we
  start has ``allowed_failures=0``), so the engine's retries, not Dask's
  silent ones, decide, and every attempt is on the record.
* Components with ``requirements`` run on the worker in a cached virtual
  environment (the subprocess runner's ``ensure_venv``), one per requirement
  set, built once per worker machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import Future
from types import ModuleType
from typing import Any, SupportsFloat

from ctloop.core.errors import BackendUnavailable, ConfigError
from ctloop.core.plugins import require
from ctloop.pipeline.component import AnyComponent
from ctloop.pipeline.task import StepTask, TaskResult, run_task

__all__ = ["DaskRunner", "execute_on_worker", "local_cluster", "parse_resources"]

_EXTRA = "dask"
_WHAT = "The Dask runner"


def parse_resources(resources: Mapping[str, object]) -> dict[str, float]:
    """A component's ``resources`` as Dask worker resources (memory in bytes).

    ``{"cpus": 2, "memory": "4GB"}`` -> ``{"cpus": 2.0, "memory": 4e9}``.
    """
    from dask.utils import parse_bytes

    out: dict[str, float] = {}
    for key, value in resources.items():
        if key == "memory" and isinstance(value, str):
            try:
                out[key] = float(parse_bytes(value))
            except ValueError:
                raise ConfigError(
                    f"The 'memory' resource must be a number of bytes or a size like '4GB'. "
                    f"Got {value!r}."
                ) from None
            continue
        try:
            if not isinstance(value, SupportsFloat | str):
                raise TypeError(type(value).__name__)
            out[key] = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"The {key!r} resource must be a number. Got {value!r}.") from None
    return out


class DaskRunner:
    """Steps as Dask tasks; a local cluster, or an existing scheduler by address."""

    name = "dask"

    def __init__(
        self,
        *,
        address: str | None = None,
        n_workers: int | None = None,
        threads_per_worker: int = 1,
        connect_timeout: float = 5.0,
    ) -> None:
        self.address = address
        self.n_workers = n_workers
        self.threads_per_worker = threads_per_worker
        self.connect_timeout = connect_timeout
        # distributed's Client, LocalCluster and Future: their methods are unannotated.
        self._client: Any = None
        self._cluster: Any = None
        self._lock = threading.Lock()
        self._active: dict[str, tuple[Any, Future[TaskResult]]] = {}
        self._cancelling = False
        self._capacity = (0.0, 1)  # (checked at, total worker threads)

    def __repr__(self) -> str:
        return f"DaskRunner({self.address or 'local cluster'})"

    # lifecycle ------------------------------------------------------------
    def init(self, max_workers: int) -> None:
        distributed = require("distributed", _EXTRA, _WHAT)
        self._cancelling = False
        if self.address:
            self._client = self._connect(distributed, self.address)
            return
        n_workers = self.n_workers or max(1, min(max_workers, os.cpu_count() or 1))
        self._cluster = local_cluster(n_workers, self.threads_per_worker)
        self._client = distributed.Client(self._cluster, set_as_default=False)

    def _connect(self, distributed: ModuleType, address: str) -> Any:
        from ctloop.core.secrets import remember_url_secrets

        remember_url_secrets(address)  # a password in the address is masked wherever quoted
        try:
            client = distributed.Client(address, timeout=self.connect_timeout, set_as_default=False)
        except ValueError as exc:
            raise ConfigError(
                f"The Dask scheduler address {address} is not valid ({exc}). Use "
                "tcp://HOST:8786 in --runner, CTLOOP_RUNNER or runner in ctloop.toml."
            ) from None
        except (OSError, TimeoutError) as exc:
            raise BackendUnavailable(
                f"Cannot reach the Dask scheduler at {address} within "
                f"{self.connect_timeout:g} s ({exc}). Start it with `dask scheduler`, or fix "
                "the runner setting (CTLOOP_RUNNER / runner in ctloop.toml)."
            ) from None
        try:
            client.wait_for_workers(1, timeout=self.connect_timeout)
        except (OSError, TimeoutError):
            client.close()
            raise BackendUnavailable(
                f"The Dask scheduler at {address} has no workers. Start some with "
                f"`dask worker {address} --resources cpus=1`."
            ) from None
        return client

    def finalize(self) -> None:
        self._cancelling = True
        with self._lock:
            pending = [fut for fut, _ in self._active.values()]
            self._active.clear()
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        if client is not None:
            if pending:
                client.cancel(pending, force=True)
            client.close()
        if cluster is not None:
            cluster.close()

    # submitting -----------------------------------------------------------
    def can_submit(self) -> bool:
        with self._lock:
            running = len(self._active)
        return running < self._threads()

    def _threads(self) -> int:
        checked, threads = self._capacity
        if time.monotonic() - checked > 1.0 and self._client is not None:
            try:
                threads = max(1, sum(self._client.nthreads().values()))
            except (OSError, TimeoutError):
                pass
            self._capacity = (time.monotonic(), threads)
        return threads

    def submit(self, task: StepTask, component: AnyComponent) -> Future[TaskResult]:
        assert self._client is not None, "init() first"
        result: Future[TaskResult] = Future()
        try:
            wanted = parse_resources(task.resources)
            problem = self._resource_problem(task.step, wanted)
        except ConfigError as exc:
            wanted, problem = {}, f"Step {task.step!r}: {exc.message}"
        if problem:
            now = time.time()
            result.set_result(TaskResult(ok=False, error=problem, started=now, ended=now))
            return result
        key = f"ctloop-{task.step}-{task.run_id[:8]}-{task.attempt}-{uuid.uuid4().hex[:8]}"
        options: dict[str, object] = {"key": key, "pure": False, "retries": 0}
        if wanted:
            options["resources"] = wanted
        dask_future = self._client.submit(execute_on_worker, task, **options)
        with self._lock:
            self._active[key] = (dask_future, result)
        dask_future.add_done_callback(lambda fut: self._settle(fut, result, task))
        return result

    def _resource_problem(self, step: str, wanted: dict[str, float]) -> str | None:
        if not wanted:
            return None
        workers = self._client.scheduler_info(n_workers=-1).get("workers", {})
        offers = [w.get("resources") or {} for w in workers.values()]
        if any(all(offer.get(k, 0) >= v for k, v in wanted.items()) for offer in offers):
            return None
        best = {k: max((o.get(k, 0) for o in offers), default=0) for k in wanted}
        return (
            f"Step {step!r} asks for resources {wanted} but no Dask worker offers that much "
            f"(the most any worker has: {best}). Start workers with e.g. "
            "`dask worker SCHEDULER --resources 'cpus=4,memory=16e9'`, or lower the "
            "component's resources."
        )

    def _settle(self, fut: Any, result: Future[TaskResult], task: StepTask) -> None:
        """Turn a finished Dask future into the engine's ``concurrent.futures`` future."""
        with self._lock:
            self._active.pop(fut.key, None)
        if result.done():  # already cancelled by ``cancel_all``
            return
        now = time.time()
        try:
            if fut.status == "finished":
                result.set_result(fut.result())
            elif fut.status == "cancelled":
                if self._cancelling:
                    _cancel(result)
                else:
                    result.set_result(
                        TaskResult(
                            ok=False,
                            started=now,
                            ended=now,
                            error=f"The Dask scheduler dropped step {task.step!r} (lost connection "
                            "or the scheduler restarted). Resume the run when the cluster is back.",
                        )
                    )
            else:
                result.set_result(_failed_attempt(task, fut.exception(), now))
        except BaseException as exc:  # never leave the engine waiting
            if not result.done():
                result.set_result(
                    TaskResult(
                        ok=False,
                        started=now,
                        ended=now,
                        error=f"Lost the result of step {task.step!r}: {type(exc).__name__}: {exc}",
                    )
                )

    def cancel_all(self) -> None:
        # Dask does not call done-callbacks of futures it cancels, so the
        # engine's futures are cancelled here rather than in ``_settle``.
        self._cancelling = True
        with self._lock:
            active = list(self._active.values())
            self._active.clear()
        if active and self._client is not None:
            self._client.cancel([fut for fut, _ in active], force=True)
        for _, result in active:
            _cancel(result)


def _cancel(result: Future[TaskResult]) -> None:
    """Cancel and wake the engine's ``wait()`` (plain ``cancel`` notifies no waiter)."""
    if result.cancel():
        with contextlib.suppress(RuntimeError):  # waiters were notified already
            result.set_running_or_notify_cancel()


def _failed_attempt(task: StepTask, exc: BaseException | None, now: float) -> TaskResult:
    from distributed import KilledWorker

    if isinstance(exc, KilledWorker):
        error = (
            f"The Dask worker running step {task.step!r} died (killed, crashed or out of "
            f"memory) at {exc.last_worker.address}. Check that worker's log; give the step more "
            "memory (resources={'memory': ...}) or retries."
        )
        return TaskResult(
            ok=False,
            error=error,
            started=now,
            ended=now,
            executor={"dask_worker": exc.last_worker.address},
        )
    return TaskResult(
        ok=False,
        error=f"Dask failed to run step {task.step!r}: {type(exc).__name__}: {exc}",
        started=now,
        ended=now,
    )


def local_cluster(n_workers: int = 2, threads_per_worker: int = 1) -> Any:
    """A ``LocalCluster`` on 127.0.0.1 set up as the runner expects.

    Workers offer ``cpus`` and ``memory`` resources, and a worker death fails
    the task at once (``allowed_failures=0``) so the engine decides on retries.
    Tests and benchmarks start one and pass its ``scheduler_address`` as runner.
    """
    distributed = require("distributed", _EXTRA, _WHAT)
    memory = _memory_per_worker(n_workers)
    return distributed.LocalCluster(
        n_workers=n_workers,
        threads_per_worker=threads_per_worker,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        memory_limit=memory,
        resources={"cpus": threads_per_worker, "memory": memory},
        scheduler_kwargs={"allowed_failures": 0},
    )


def _memory_per_worker(n_workers: int) -> int:
    """Total memory split between workers: the ``memory`` resource a local worker offers."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 4 << 30
    return int(total // n_workers)


# runs on the worker ---------------------------------------------------------
_loaded_at: dict[str, int] = {}


def execute_on_worker(task: StepTask) -> TaskResult:
    """One attempt on a Dask worker, in a worker-local work folder."""
    from distributed import get_worker

    worker = get_worker()
    work = os.path.join(worker.local_directory, "ctloop-work", task.run_id, task.step)
    task = dataclasses.replace(task, work_dir=work)
    if task.requirements:
        result = _run_in_venv(task)
    else:
        _forget_if_changed(task)
        result = run_task(task)
        _remember_loaded(task)
    result.executor["dask_worker"] = worker.address
    return result


def _run_in_venv(task: StepTask) -> TaskResult:
    """Run in the step's cached virtual environment, as the subprocess runner does."""
    from ctloop.pipeline.runners.subprocess import SubprocessRunner

    runner = SubprocessRunner()
    runner.init(1)
    try:
        return runner.submit(task, None).result()  # type: ignore[arg-type]
    finally:
        runner.finalize()


def _module_mtime(task: StepTask) -> tuple[str, int] | None:
    if not task.source_file:
        return None
    try:
        return task.component_ref.partition(":")[0], os.stat(task.source_file).st_mtime_ns
    except OSError:
        return None


def _forget_if_changed(task: StepTask) -> None:
    """Workers live across runs: re-import a user file that changed since it was loaded."""
    found = _module_mtime(task)
    if found is None:
        return
    module, mtime = found
    if module in sys.modules and _loaded_at.get(module) != mtime:
        del sys.modules[module]


def _remember_loaded(task: StepTask) -> None:
    found = _module_mtime(task)
    if found is not None and found[0] in sys.modules:
        _loaded_at[found[0]] = found[1]
