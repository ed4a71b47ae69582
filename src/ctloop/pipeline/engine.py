"""The engine: runs a built graph on a runner and records everything.

Only the engine talks to the metadata store (one writer per run, so the store
sees a consistent story); runners only execute tasks. For each ready step it
computes the cache key (component version + parameters + input hashes),
reuses the outputs of an identical earlier step when it can, and otherwise
submits a task, retrying with exponential backoff when the component asks.
A failed or killed run keeps every finished step, so ``resume`` redoes only
what is missing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from ctloop.core.errors import NotFound, UserInputError
from ctloop.core.hashing import NotHashable, fingerprint, hash_bytes, stable_json
from ctloop.core.jsontypes import JSONObject, JSONValue, as_object
from ctloop.core.processes import Liveness, process_liveness
from ctloop.metadata.base import (
    ArtifactRecord,
    EventRecord,
    PipelineStore,
    RunRecord,
    RunStatus,
    RunUpdate,
    StepRecord,
    StepStatus,
)
from ctloop.pipeline.dsl import AnyPipeline, Graph, StepSpec
from ctloop.pipeline.environment import capture_environment, capture_executor
from ctloop.pipeline.runners.base import Runner
from ctloop.pipeline.task import InputArtifact, StepTask, TaskResult, class_ref

if TYPE_CHECKING:
    from ctloop.artifacts import ArtifactStore

__all__ = ["Engine", "RunObserver", "RunResult", "cache_key", "recorded_runner"]


class RunObserver(Protocol):
    """Receives progress, e.g. the CLI's live table."""

    def run_started(self, run: RunRecord, steps: list[StepRecord]) -> None: ...
    def step_changed(self, step: StepRecord) -> None: ...
    def run_finished(self, run: RunRecord) -> None: ...


@dataclass
class RunResult:
    """The outcome of a run: its record, its steps and their output artifacts."""

    run: RunRecord
    steps: dict[str, StepRecord]
    artifacts: dict[str, dict[str, ArtifactRecord]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.run.status == RunStatus.SUCCEEDED

    def output(self, step: str, name: str | None = None) -> ArtifactRecord:
        """The artifact a step wrote (its only output when ``name`` is omitted)."""
        outs = self.artifacts.get(step, {})
        if name is None and len(outs) == 1:
            return next(iter(outs.values()))
        if name in outs:
            return outs[name]
        raise NotFound(f"Step {step!r} of run {self.run.id} has no output {name!r}.")


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex


def cache_key(spec: StepSpec, inputs: dict[str, ArtifactRecord]) -> str:
    """Component identity and version + exact parameter fingerprints + input content hashes.

    Raises :class:`~ctloop.core.hashing.NotHashable` (naming the parameter) when a
    parameter value has no exact fingerprint: such a step is never a cache hit.
    """
    comp = spec.component
    params: dict[str, str] = {}
    for name, value in sorted(spec.params.items()):
        try:
            params[name] = fingerprint(value)
        except NotHashable as exc:
            raise NotHashable(f"parameter {name!r}: {exc}") from None
    key = {
        "component": comp.name,
        "version": comp.version,
        "params": params,
        "inputs": {k: a.sha256 for k, a in sorted(inputs.items())},
        "outputs": {k: t.__name__ for k, t in sorted(comp.outputs.items())},
        "requirements": sorted(comp.requirements),
    }
    return hash_bytes(stable_json(key).encode())


@dataclass
class _Schedule:
    """Where one execution is: steps to start, running, waiting to retry, the first failure."""

    pending: list[str]
    running: dict[Future[TaskResult], str] = field(default_factory=dict)
    retry_at: dict[str, float] = field(default_factory=dict)  # step -> time.time() to retry
    failure: str | None = None  # the first step that failed for good

    @property
    def finished(self) -> bool:
        """Nothing runs, and nothing waits to retry (or a failure dropped the retries)."""
        return not self.running and (not self.retry_at or self.failure is not None)

    def timeout(self) -> float | None:
        """How long to wait for a running step before the next retry is due."""
        if not self.retry_at:
            return None
        return max(0.0, min(self.retry_at.values()) - time.time())

    def requeue_due(self, now: float) -> None:
        """Steps whose retry time came go first in line (unless the run already failed)."""
        for name in [n for n, at in self.retry_at.items() if at <= now]:
            del self.retry_at[name]
            if self.failure is None:
                self.pending.insert(0, name)


S = TypeVar("S", bound=PipelineStore)


class Engine(Generic[S]):
    """Runs graphs and records them; one instance may run many pipelines.

    It records into any ``PipelineStore`` (runs, steps, artifacts, events) and keeps
    the store's own type, so a caller that gave it the whole metadata store gets
    that back from ``engine.store``.
    """

    def __init__(
        self,
        *,
        store: S,
        artifacts_url: str,
        runner: Runner,
        home: Path,
        max_workers: int = 4,
        cache: bool = True,
        observer: RunObserver | None = None,
        project: Path | None = None,
    ) -> None:
        self.store = store
        self.artifacts_url = artifacts_url
        self.runner = runner
        self.home = Path(home)
        self.max_workers = max_workers
        self.cache = cache
        self.observer = observer
        self.project = project
        self._artifact_store: ArtifactStore | None = None

    # public -------------------------------------------------------------
    def run(
        self,
        pipeline: AnyPipeline,
        params: Mapping[str, object] | None = None,
        *,
        trigger: str = "manual",
        trigger_info: JSONObject | None = None,
        source: str = "",
        tags: dict[str, str] | None = None,
    ) -> RunResult:
        """Build the pipeline with ``params`` and run it to the end."""
        graph = pipeline.build(params)
        run = self.store.create_run(
            RunRecord(
                id=_new_id(),
                pipeline=graph.pipeline,
                pipeline_version=graph.version,
                status=RunStatus.RUNNING,
                parameters=_plain(graph.params),
                trigger=trigger,
                trigger_info=trigger_info or {},
                executor=self._executor(),
                environment=capture_environment(self.project),
                tags=tags or {},
                source=source,
                created_at=_now(),
                started_at=_now(),
            )
        )
        records: dict[str, StepRecord] = {}
        for name in graph.order():
            spec = graph.steps[name]
            records[name] = self.store.save_step(
                StepRecord(
                    id=_new_id(), run_id=run.id, name=name, component=spec.component.name,
                    component_version=spec.component.version, parameters=_plain(spec.params),
                    upstream=spec.upstream,
                )
            )
        return self._execute(run, graph, records, {})

    def resume(self, run_id: str, pipeline: AnyPipeline, *, force: bool = False) -> RunResult:
        """Finish a failed or killed run: only failed and never-run steps execute.

        A run still marked running is resumed only when its process is gone; one
        started on another host (which this machine cannot check) needs ``force``.
        """
        run = self.store.get_run(run_id)
        if run.status == RunStatus.SUCCEEDED:
            raise UserInputError(f"Run {run.id} already succeeded; there is nothing to resume.")
        if run.status == RunStatus.RUNNING:
            _check_not_running(run, force)
        graph = pipeline.build(dict(run.parameters))
        if graph.version != run.pipeline_version:
            raise UserInputError(
                f"Pipeline {run.pipeline!r} changed since run {run.id} (version "
                f"{run.pipeline_version} -> {graph.version}); a resume must run the same "
                "definition. Start a new run with `ctloop run` (finished steps will be cache hits)."
            )
        records = {s.name: s for s in self.store.get_steps(run.id)}
        outputs: dict[str, dict[str, ArtifactRecord]] = {}
        for name, rec in list(records.items()):
            if rec.status.done:
                outputs[name] = self._outputs_of(rec.id)
            elif name in graph.steps:
                records[name] = self.store.save_step(
                    replace(rec, status=StepStatus.PENDING, error=None, traceback=None)
                )
        for name in graph.order():  # steps the record lacks (a run killed while planning)
            if name not in records:
                spec = graph.steps[name]
                records[name] = self.store.save_step(
                    StepRecord(
                        id=_new_id(), run_id=run.id, name=name, component=spec.component.name,
                        component_version=spec.component.version,
                        parameters=_plain(spec.params), upstream=spec.upstream,
                    )
                )
        run = self.store.update_run(run.id, RunUpdate(
            status=RunStatus.RUNNING, error=None, ended_at=None, executor=self._executor(),
        ))
        return self._execute(run, graph, records, outputs)

    def load_result(self, run_id: str) -> RunResult:
        """A recorded run as a ``RunResult`` (e.g. one a trigger controller started)."""
        run = self.store.get_run(run_id)
        steps = {s.name: s for s in self.store.get_steps(run.id)}
        artifacts = {name: self._outputs_of(s.id) for name, s in steps.items() if s.status.done}
        return RunResult(run, steps, artifacts)

    # the loop -----------------------------------------------------------
    def _execute(
        self,
        run: RunRecord,
        graph: Graph,
        records: dict[str, StepRecord],
        outputs: dict[str, dict[str, ArtifactRecord]],
    ) -> RunResult:
        order = graph.order()
        if self.observer:
            self.observer.run_started(run, [records[n] for n in order])
        schedule = _Schedule(pending=[n for n in order if not records[n].status.done])
        try:
            self.runner.init(self.max_workers)  # inside: a failed start marks the run failed
            self._drive(graph, records, outputs, schedule)
        except BaseException as exc:
            self.runner.finalize()
            self._interrupted(run, records, exc)
            raise
        self.runner.finalize()
        try:  # each step cleans up after itself; the run's folder is empty unless a step failed
            (self.home / "work" / run.id).rmdir()
        except OSError:
            pass
        if schedule.failure is not None:
            run = self._failed(run, graph, records, schedule.failure)
        else:
            run = self.store.update_run(
                run.id, RunUpdate(status=RunStatus.SUCCEEDED, ended_at=_now())
            )
        if self.observer:
            self.observer.run_finished(run)
        return RunResult(run, records, outputs)

    def _drive(
        self,
        graph: Graph,
        records: dict[str, StepRecord],
        outputs: dict[str, dict[str, ArtifactRecord]],
        schedule: _Schedule,
    ) -> None:
        """Submit ready steps and record finished ones until nothing runs or can run.

        After the first step that fails for good, nothing new starts: the running
        steps are cancelled and waited for, and retries are dropped.
        """
        while True:
            if schedule.failure is None:
                self._submit_ready(graph, records, outputs, schedule)
            if schedule.finished:
                return
            done, _ = wait(
                list(schedule.running), timeout=schedule.timeout(), return_when=FIRST_COMPLETED
            )
            schedule.requeue_due(time.time())
            for future in done:
                name = schedule.running.pop(future)
                failed = self._finish(
                    graph.steps[name], records, outputs, future, schedule.retry_at
                )
                if failed and schedule.failure is None:
                    schedule.failure = name
                    self.runner.cancel_all()
                    schedule.retry_at.clear()

    def _interrupted(
        self, run: RunRecord, records: dict[str, StepRecord], exc: BaseException
    ) -> None:
        """Record a run stopped by an exception (Ctrl-C cancels it; anything else fails it)."""
        status = RunStatus.CANCELLED if isinstance(exc, KeyboardInterrupt) else RunStatus.FAILED
        for name, rec in records.items():
            if rec.status == StepStatus.RUNNING:
                records[name] = self._save(replace(rec, status=StepStatus.FAILED,
                                                   error="interrupted", ended_at=_now()))
        run = self.store.update_run(run.id, RunUpdate(
            status=status, ended_at=_now(), error=f"{type(exc).__name__}: {exc}"
        ))
        if self.observer:
            self.observer.run_finished(run)

    def _failed(
        self, run: RunRecord, graph: Graph, records: dict[str, StepRecord], failure: str
    ) -> RunRecord:
        """Mark the steps that never ran as skipped, saying why, and the run as failed."""
        for name in graph.order():
            rec = records[name]
            if not rec.status.done and rec.status != StepStatus.FAILED:
                why = (f"upstream step {failure!r} failed" if failure in graph.steps and
                       name in graph.downstream(failure) else
                       f"the run stopped after step {failure!r} failed")
                records[name] = self._save(replace(rec, status=StepStatus.SKIPPED,
                                                   error=f"not run: {why}"))
        error = records[failure].error or "failed"
        return self.store.update_run(run.id, RunUpdate(
            status=RunStatus.FAILED, ended_at=_now(), error=f"step {failure!r} failed: {error}"
        ))

    def _submit_ready(
        self,
        graph: Graph,
        records: dict[str, StepRecord],
        outputs: dict[str, dict[str, ArtifactRecord]],
        schedule: _Schedule,
    ) -> None:
        """Start every step whose upstream is done; cache hits finish at once."""
        progress = True
        while progress:
            progress = False
            for name in list(schedule.pending):
                spec = graph.steps[name]
                if name in schedule.retry_at or not all(
                    records[u].status.done for u in spec.upstream
                ):
                    continue
                inputs = {k: outputs[ref.step][ref.output] for k, ref in spec.inputs.items()}
                key, note = self._cache_key(run_id=records[name].run_id, spec=spec,
                                            inputs=inputs)
                if key is not None and self.cache and spec.component.cache and self._try_cache(
                    spec, records, outputs, inputs, key
                ):
                    schedule.pending.remove(name)
                    progress = True
                    continue
                if not self.runner.can_submit():
                    return
                schedule.pending.remove(name)
                rec = self._save(replace(
                    records[name], status=StepStatus.RUNNING, cache_key=key,
                    attempts=records[name].attempts + 1, started_at=records[name].started_at
                    if records[name].status == StepStatus.RUNNING else _now(),
                    error=None, traceback=None,
                    executor={**records[name].executor, "cache": note} if note
                    else records[name].executor,
                ))
                records[name] = rec
                task = self._task(spec, rec, inputs)
                schedule.running[self.runner.submit(task, spec.component)] = name

    def _cache_key(
        self, *, run_id: str, spec: StepSpec, inputs: dict[str, ArtifactRecord]
    ) -> tuple[str | None, str | None]:
        """The step's cache key, or ``None`` and a note saying why it cannot have one.

        The note goes into the step's ``executor["cache"]`` and the run's
        ``environment["uncached_steps"]``, so ``ctloop runs show`` can tell.
        """
        try:
            return cache_key(spec, inputs), None
        except NotHashable as exc:
            note = f"not cached: {exc}"
        run = self.store.get_run(run_id)
        uncached = {**as_object(run.environment.get("uncached_steps")), spec.name: note}
        self.store.update_run(
            run_id, RunUpdate(environment={**run.environment, "uncached_steps": uncached})
        )
        return None, note

    def _try_cache(
        self,
        spec: StepSpec,
        records: dict[str, StepRecord],
        outputs: dict[str, dict[str, ArtifactRecord]],
        inputs: dict[str, ArtifactRecord],
        key: str,
    ) -> bool:
        hit = self.store.find_cached_step(key)
        if hit is None:
            return False
        outs = self._outputs_of(hit.id)
        if set(outs) != set(spec.component.outputs):
            return False
        store = self.artifact_store
        exists = getattr(store, "exists", None)
        if exists is not None and not all(exists(a.uri) for a in outs.values()):
            return False
        now = _now()
        rec = records[spec.name]
        self.store.add_events(self._events(rec.id, inputs, outs))
        records[spec.name] = self._save(replace(
            rec, status=StepStatus.CACHED, cache_key=key, cached_from=hit.id,
            started_at=now, ended_at=now, duration_s=0.0, outputs=hit.outputs,
            executor={"runner": "cache"},
        ))
        outputs[spec.name] = outs
        return True

    def _finish(
        self,
        spec: StepSpec,
        records: dict[str, StepRecord],
        outputs: dict[str, dict[str, ArtifactRecord]],
        future: Future[TaskResult],
        retry_at: dict[str, float],
    ) -> bool:
        """Record a finished attempt; returns True when the step has failed for good."""
        rec = records[spec.name]
        if future.cancelled():  # never started: the attempt does not count
            records[spec.name] = self._save(replace(
                rec, status=StepStatus.PENDING, attempts=max(0, rec.attempts - 1)))
            return False
        try:
            result = future.result()
        except BaseException as exc:  # a runner's own failure (worker lost, ...)
            result = TaskResult(ok=False, error=f"{type(exc).__name__}: {exc}",
                                started=time.time(), ended=time.time())
        executor = {"runner": self.runner.name, **result.executor}
        if "cache" in rec.executor:  # why this step could not be cached
            executor["cache"] = rec.executor["cache"]
        ended = _now()
        duration = round(result.ended - result.started, 6) if result.ended else None
        if not result.ok:
            comp = spec.component
            if rec.attempts <= comp.retries:
                delay = comp.retry_backoff * (2 ** (rec.attempts - 1))
                retry_at[spec.name] = time.time() + delay
                records[spec.name] = self._save(replace(
                    rec, status=StepStatus.PENDING, error=result.error,
                    traceback=result.traceback, executor=executor,
                ))
                return False
            partial = self._record_outputs(spec, rec, result, ended)  # written before failing
            self.store.add_events(
                [EventRecord(rec.id, a.id, "partial", name) for name, a in partial.items()]
            )
            records[spec.name] = self._save(replace(
                rec, status=StepStatus.FAILED, ended_at=ended, duration_s=duration,
                error=result.error, traceback=result.traceback, executor=executor,
            ))
            return True
        inputs = {k: outputs[ref.step][ref.output] for k, ref in spec.inputs.items()}
        outs = self._record_outputs(spec, rec, result, ended)
        self.store.add_events(self._events(rec.id, inputs, outs))
        outputs[spec.name] = outs
        records[spec.name] = self._save(replace(
            rec, status=StepStatus.SUCCEEDED, ended_at=ended, duration_s=duration,
            executor=executor, outputs={"return": result.value} if result.value is not None
            else {}, error=None, traceback=None,
        ))
        return False

    # helpers ------------------------------------------------------------
    def _executor(self) -> dict[str, JSONValue]:
        """Who runs the run, the runner spec a resume reopens (``tcp://...`` for Dask) and
        whether steps may be cache hits.

        A password in a scheduler address is masked: the record never holds a secret.
        """
        from ctloop.core.secrets import mask_url

        spec = getattr(self.runner, "address", None) or self.runner.name
        # The cache choice is part of the run: a resume of a --no-cache run stays uncached.
        return {**capture_executor(self.runner.name), "runner_spec": mask_url(str(spec)),
                "cache": self.cache}

    def _record_outputs(
        self, spec: StepSpec, rec: StepRecord, result: TaskResult, ended: datetime
    ) -> dict[str, ArtifactRecord]:
        """An artifact record for every output the attempt stored, produced by ``rec``."""
        return {
            name: self.store.add_artifact(ArtifactRecord(
                id=_new_id(), type=spec.component.outputs[name].type_name(),
                uri=stored.uri, sha256=stored.sha256, size=stored.size, name=name,
                properties=stored.properties, producer_step_id=rec.id, created_at=ended,
            ))
            for name, stored in result.outputs.items()
        }

    def _save(self, rec: StepRecord) -> StepRecord:
        saved = self.store.save_step(rec)
        if self.observer:
            self.observer.step_changed(saved)
        return saved

    @property
    def artifact_store(self) -> ArtifactStore:
        """The run's artifact store, opened once (its verified-hash memo then serves every read)."""
        if self._artifact_store is None:
            from ctloop.artifacts import open_artifact_store

            self._artifact_store = open_artifact_store(self.artifacts_url)
        return self._artifact_store

    def _outputs_of(self, step_id: str) -> dict[str, ArtifactRecord]:
        return {
            e.name: self.store.get_artifact(e.artifact_id)
            for e in self.store.get_events(step_id=step_id)
            if e.kind == "output"
        }

    @staticmethod
    def _events(
        step_id: str, inputs: dict[str, ArtifactRecord], outs: dict[str, ArtifactRecord]
    ) -> list[EventRecord]:
        return [EventRecord(step_id, a.id, "input", k) for k, a in inputs.items()] + [
            EventRecord(step_id, a.id, "output", k) for k, a in outs.items()
        ]

    def _task(self, spec: StepSpec, rec: StepRecord, inputs: dict[str, ArtifactRecord]) -> StepTask:
        comp = spec.component
        return StepTask(
            run_id=rec.run_id,
            step=spec.name,
            attempt=rec.attempts,
            component_ref=comp.ref,
            source_file=comp.source_file,
            command=comp.command,
            params=spec.params,
            inputs={
                k: InputArtifact(
                    a.id, class_ref(comp.inputs[k]), a.uri, a.sha256, dict(a.properties)
                )
                for k, a in inputs.items()
            },
            outputs={k: class_ref(t) for k, t in comp.outputs.items()},
            artifacts_url=self.artifacts_url,
            work_dir=str(self.home / "work" / rec.run_id),
            requirements=comp.requirements,
            resources=comp.resources,
            metadata_url=self.store.url,
        )


def _plain(params: Mapping[str, object]) -> JSONObject:
    """Parameter values as the JSON the records keep (paths, dates, sets in their JSON
    form, see ``stable_json``)."""
    import json

    plain: JSONObject = json.loads(stable_json(params))
    return plain


def recorded_runner(run: RunRecord) -> str | None:
    """The runner spec a run was started on (``None`` for runs recorded before specs)."""
    spec = run.executor.get("runner_spec") or run.executor.get("runner")
    return str(spec) if spec else None


def _check_not_running(run: RunRecord, force: bool) -> None:
    """Refuse to resume a run whose process may still be working on it."""
    pid, host = run.executor.get("pid"), run.executor.get("host")
    liveness = process_liveness(run.executor)
    if liveness is Liveness.ALIVE:
        raise UserInputError(
            f"Run {run.id} is still running (pid {pid} on {host}). "
            "Wait for it or stop that process first."
        )
    if liveness is Liveness.UNKNOWN and not force:
        raise UserInputError(
            f"Run {run.id} is marked running by pid {pid} on host {host!r}, which this machine "
            "cannot check. If that process is gone, resume with --force."
        )
