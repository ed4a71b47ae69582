"""Run pipelines from Python with the project's settings: ``ctloop.run(...)``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ctloop.core.errors import UserInputError
from ctloop.core.jsontypes import JSONObject
from ctloop.core.settings import Settings, load_settings
from ctloop.metadata.base import MetadataStore, RunRecord
from ctloop.pipeline.dsl import AnyPipeline
from ctloop.pipeline.engine import Engine, RunObserver, RunResult, recorded_runner
from ctloop.pipeline.loader import load_pipeline

__all__ = ["make_engine", "resume", "run"]


def make_engine(
    settings: Settings,
    *,
    runner: str | None = None,
    max_workers: int | None = None,
    cache: bool | None = None,
    observer: RunObserver | None = None,
) -> Engine[MetadataStore]:
    """An engine wired to the settings' metadata store, artifact store and runner."""
    from ctloop.metadata import open_metadata_store
    return Engine(
        store=open_metadata_store(settings.metadata_url),
        artifacts_url=settings.artifacts_url,
        runner=_runner(runner or settings.runner, settings),
        home=settings.home,
        max_workers=max_workers or settings.max_workers,
        cache=settings.cache if cache is None else cache,
        observer=observer,
        project=settings.project_root,
    )


def _runner(spec: str, settings: Settings):  # type: ignore[no-untyped-def]
    from ctloop.pipeline.runners import open_runner

    is_dask = spec == "dask" or spec.startswith("tcp://")
    return open_runner(spec, settings.tables.dask if is_dask else None)


def run(
    pipeline: AnyPipeline | str,
    params: Mapping[str, object] | None = None,
    *,
    settings: Settings | None = None,
    runner: str | None = None,
    max_workers: int | None = None,
    cache: bool | None = None,
    observer: RunObserver | None = None,
    trigger: str = "manual",
    trigger_info: JSONObject | None = None,
    project: Path | None = None,
) -> RunResult:
    """Run a pipeline (a ``PipelineDef`` or a ``"file.py:name"`` reference) to the end."""
    settings = settings or load_settings(project)
    source = ""
    if isinstance(pipeline, str):
        pipeline, source = load_pipeline(pipeline)
    else:
        source = f"{pipeline.func.__module__}:{pipeline.func.__qualname__}"
    engine = make_engine(settings, runner=runner, max_workers=max_workers, cache=cache,
                         observer=observer)
    return engine.run(pipeline, params, trigger=trigger, trigger_info=trigger_info,
                      source=source)


def _resume_runner(record: RunRecord, settings: Settings) -> str | None:
    """The run's own runner; the settings' spelling of it when the record masks a password."""
    from ctloop.core.secrets import mask_url

    spec = recorded_runner(record)
    if spec is not None and "***" in spec:
        if mask_url(settings.runner) == spec:
            return settings.runner
        raise UserInputError(
            f"Run {record.id} ran on {spec}; its password is not recorded. Pass --runner "
            "with the full address to resume it there."
        )
    return spec


def resume(
    run_id: str,
    *,
    settings: Settings | None = None,
    runner: str | None = None,
    max_workers: int | None = None,
    observer: RunObserver | None = None,
    project: Path | None = None,
    force: bool = False,
) -> RunResult:
    """Resume a failed or killed run from the steps that did not finish.

    The run continues on the runner it was started on unless ``runner`` says
    otherwise, with its own cache choice (a ``--no-cache`` run resumes uncached);
    ``force`` resumes a run marked running on another host.
    """
    from ctloop.metadata import open_metadata_store

    settings = settings or load_settings(project)
    record = open_metadata_store(settings.metadata_url).get_run(run_id)
    cache = record.executor.get("cache")  # the run's own choice (`ctloop run --no-cache`)
    engine = make_engine(settings, runner=runner or _resume_runner(record, settings),
                         max_workers=max_workers, observer=observer,
                         cache=cache if isinstance(cache, bool) else None)
    pipeline, _ = load_pipeline(record.source)
    return engine.resume(record.id, pipeline, force=force)
