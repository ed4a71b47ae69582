"""``ctloop demo``: replay 2013 month by month through the continuous-training loop.

Each month's flights land as a batch file. For every month the pipeline
validates the batch (schema pinned from the first batch, drift against the
month before), builds training data from the feature store, retrains, judges
the candidate against the champion on the new month, and promotes it only if
the gate blesses it. A month can be made defective on purpose to watch the
validation stop the run while the champion keeps serving.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ctloop.core.errors import UserInputError
from ctloop.core.settings import Settings
from ctloop.examples.flights.report import write_report
from ctloop.pipeline.engine import Engine, RunResult

__all__ = ["MonthOutcome", "make_defective", "pin_schema", "run_demo", "write_batches"]


@dataclass
class MonthOutcome:
    """What the loop did with one month."""

    month: int
    run_id: str
    status: str
    rows: int | None = None
    delayed_share: float | None = None
    drift_share: float | None = None
    drifted: list[str] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    candidate_auc: float | None = None
    champion_auc: float | None = None
    blessed: bool | None = None
    failed_rules: list[str] = field(default_factory=list)
    error: str | None = None  # why the run failed, when it did
    stopped_by_validation: bool = False
    version: int | None = None
    promoted: bool = False
    champion_version: int | None = None
    cached_steps: int = 0
    seconds: float | None = None


def write_batches(folder: Path, months: range) -> dict[int, Path]:
    """One parquet file per month of labelled flights, as if each had just landed."""
    from ctloop.examples.flights.data import flights

    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for month in months:
        path = folder / f"2013-{month:02d}.parquet"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            flights([month]).to_parquet(tmp, index=False)
            tmp.replace(path)
        paths[month] = path
    return paths


def pin_schema(path: Path, first_batch: Path) -> Path:
    """Infer the schema from the first batch and make the edits a person would make.

    Calendar columns cover the whole year, not the first month's values, and a
    new carrier with a handful of flights (SkyWest appears in mid-2013) is
    noted as a warning; a carrier code on more than 0.1% of flights still stops
    the run. An existing pinned schema is left as it is.
    """
    from ctloop.data.schema import infer_schema
    from ctloop.data.stats import compute_statistics

    if path.exists():
        return path
    schema = infer_schema(compute_statistics(first_batch, name=first_batch.name))
    for column, (lo, hi) in {"year": (2013, 2013), "month": (1, 12), "day": (1, 31)}.items():
        if column in schema.columns:
            schema.columns[column].min, schema.columns[column].max = lo, hi
            schema.columns[column].drift = {"method": "none"}
    schema.columns["carrier"].min_domain_mass = 0.999
    schema.save(path)
    return path


def make_defective(clean: Path, target: Path) -> Path:
    """A broken copy of a batch: a renamed column, negative distances, an unknown carrier."""
    df = pd.read_parquet(clean).rename(columns={"dep_delay": "departure_delay"})
    every = df.index % 50 == 0
    df.loc[every, "distance"] = -df.loc[every, "distance"]
    df.loc[df.index % 97 == 0, "carrier"] = "ZZ"
    df.to_parquet(target, index=False)
    return target


def _read_json(engine: Engine, result: RunResult, step: str, output: str) -> dict[str, Any]:
    from ctloop.artifacts import open_artifact_store

    art = result.artifacts.get(step, {}).get(output)
    if art is None:
        return {}
    path = open_artifact_store(engine.artifacts_url).get(art.uri, art.sha256, name=art.id)
    return json.loads(path.read_text()) if path.is_file() else {}


def _outcome(engine: Engine, month: int, result: RunResult) -> MonthOutcome:
    steps = result.steps
    out = MonthOutcome(month=month, run_id=result.run.id, status=result.run.status.value)
    out.cached_steps = sum(1 for s in steps.values() if s.status == "cached")
    if result.run.started_at and result.run.ended_at:
        out.seconds = round((result.run.ended_at - result.run.started_at).total_seconds(), 1)
    landed = steps["land_batch"].outputs.get("return") or {}
    out.rows = landed.get("rows")
    check = steps["validate"]
    summary = check.outputs.get("return") or {}
    out.error = result.run.error
    if check.status == "failed":  # the error lists one anomaly per line after its headline
        out.stopped_by_validation = True
        lines = (check.error or "validation failed").splitlines()
        out.anomalies = [line for line in lines[1:] if line.strip()] or lines[:1]
        return out
    drift = summary.get("drift") or {}
    out.drift_share = drift.get("share_drifted")
    out.drifted = list(drift.get("drifted_features", []))
    out.anomalies = list(summary.get("anomalies", []))
    eval_set = steps["feature_training_set-2"].outputs.get("return") or {}
    out.delayed_share = eval_set.get("delayed_share")
    report = _read_json(engine, result, "evaluate", "evaluation")
    models = report.get("models", {})
    for who, attr in (("candidate", "candidate_auc"), ("champion", "champion_auc")):
        value = models.get(who, {}).get("overall", {}).get("metrics", {}).get("roc_auc", {})
        if isinstance(value, dict) and value.get("value") is not None:
            setattr(out, attr, round(float(value["value"]), 4))
    judged = steps["evaluate"].outputs.get("return") or {}
    out.blessed = judged.get("blessed")
    out.failed_rules = list(judged.get("failed", []))
    pushed = steps["push"].outputs.get("return") or {}
    out.version = pushed.get("version")
    out.promoted = bool(pushed.get("promoted"))
    return out


def run_demo(
    settings: Settings,
    engine: Engine,
    *,
    months: range = range(4, 13),
    defective_month: int | None = None,
    train_window: int = 3,
    n_boot: int = 100,
    on_month: Callable[[MonthOutcome], None] | None = None,
) -> list[MonthOutcome]:
    """Run the loop over ``months``; returns one outcome per month (and writes a report)."""
    from ctloop.examples.flights.features import flights_feature_store
    from ctloop.examples.flights.pipeline import MODEL_NAME, flights_ct
    from ctloop.features.catalog import apply_definitions
    from ctloop.registry import ModelRegistry

    if not months or months.start < 2 or months.stop > 13:
        raise UserInputError(
            f"The demo months must lie within 2-12 (the first needs a month before it). "
            f"Got {months.start}-{months.stop - 1}."
        )
    if defective_month is not None and defective_month not in months:
        raise UserInputError(
            f"The defective month {defective_month} is not among the replayed months "
            f"{months.start}-{months.stop - 1}."
        )
    folder = settings.home / "demo"
    batches = write_batches(folder / "landing", range(months.start - 1, months.stop))
    apply_definitions(engine.store, flights_feature_store().definitions)
    pin_schema(folder / "schema.yaml", batches[months.start - 1])
    registry = ModelRegistry(engine.store, actor="ctloop demo")
    if _has(registry, MODEL_NAME) and "champion" in registry.aliases(MODEL_NAME):
        # A replay starts with no model in production; the alias history keeps the old one.
        engine.store.move_alias(MODEL_NAME, "champion", None, actor="ctloop demo",
                                reason="demo replay starts without a champion")
    outcomes: list[MonthOutcome] = []
    links: dict[int, str] = {}
    source = "ctloop.examples.flights.pipeline:flights_ct"
    for month in months:
        batch = batches[month]
        if month == defective_month:
            broken = folder / "landing" / f"2013-{month:02d}-defective.parquet"
            batch = make_defective(batch, broken)
        params = {
            "month": month, "batch": str(batch), "previous_batch": str(batches[month - 1]),
            "schema_path": str(folder / "schema.yaml"), "train_window": train_window,
            "n_boot": n_boot,
        }
        result = engine.run(flights_ct, params, source=source, trigger="new_data",
                            trigger_info={"batch": str(batch), "month": month})
        outcome = _outcome(engine, month, result)
        link = _keep_validation_report(engine, result, folder, month)
        if link:
            links[month] = link
        outcome.champion_version = registry.aliases(MODEL_NAME).get("champion") if _has(
            registry, MODEL_NAME) else None
        outcomes.append(outcome)
        if on_month:
            on_month(outcome)
    write_report(folder, outcomes, links)
    return outcomes


def _keep_validation_report(engine: Engine, result: RunResult, folder: Path,
                            month: int) -> str | None:
    """Copy the month's validation page next to the report; returns its relative link."""
    from ctloop.artifacts import open_artifact_store

    art = result.artifacts.get("validate", {}).get("anomalies")
    if art is None:  # a stopped run: the report the failed step wrote is kept as "partial"
        step = result.steps.get("validate")
        partial = [e for e in engine.store.get_events(step_id=step.id)
                   if e.kind == "partial" and e.name == "anomalies"] if step else []
        if not partial:
            return None
        art = engine.store.get_artifact(partial[0].artifact_id)
    tree = open_artifact_store(engine.artifacts_url).get(art.uri, art.sha256, name=art.id)
    page = tree / "report.html"
    if not page.is_file():
        return None
    name = f"validation-2013-{month:02d}.html"
    (folder / name).write_text(page.read_text())
    return name


def _has(registry: Any, name: str) -> bool:
    try:
        registry.aliases(name)
    except Exception:  # NotFound before the first registration
        return False
    return True
