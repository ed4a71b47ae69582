"""``ctloop demo``: replay 2013 month by month through the whole continuous-training loop.

A bootstrap run trains the first champion on the first months. Then, for every
replayed month: the champion serves the month's flights through the real
prediction service (uvicorn on loopback, request log), the labels arrive, the
monitors measure its live AUC against its AUC at evaluation and the drift of
the serving features from its training data, the month's batch lands, and the
new-data trigger starts the pipeline: validate the batch (schema pinned from the
first batch, drift against the month before), build training data from the
feature store, retrain, judge candidate against champion on the new month, and
promote only what the gate blesses; the service picks up a new champion by
itself. A month can be made defective on purpose to watch validation stop the
run while the champion keeps serving.

The flights are sent with their features as the feature store computes them
point in time (what the online store holds when materialized continuously;
`tests/integration/test_features_consistency.py` proves the two equal), so the
replay does not materialize the online store for every hour of 2013.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ctloop.core.errors import UserInputError
from ctloop.core.settings import Settings
from ctloop.examples.flights.report import write_report
from ctloop.pipeline.engine import Engine, RunResult

__all__ = [
    "DRIFT_FEATURES",
    "MonthOutcome",
    "make_defective",
    "pin_schema",
    "run_demo",
    "write_batches",
]


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
    trigger: str | None = None  # what started the month's run
    served: int | None = None  # flights the champion scored through the prediction service
    served_version: int | None = None
    live_auc: float | None = None  # the champion's AUC on the month, from the request log
    live_baseline: float | None = None  # its AUC when it was evaluated
    decay_fired: bool | None = None
    serving_drift: float | None = None  # share of watched features drifted vs training data
    serving_drift_fired: bool | None = None


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
    art = result.artifacts.get(step, {}).get(output)
    if art is None:
        return {}
    path = engine.artifact_store.get(art.uri, art.sha256, name=art.id)
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
    chunk: int = 2000,
    on_month: Callable[[MonthOutcome], None] | None = None,
) -> list[MonthOutcome]:
    """Run the loop over ``months``; returns one outcome per month (and writes a report).

    The month before the first is the bootstrap: its run trains the first
    champion. Then, month by month, the champion serves the month's flights
    through the prediction service, labels arrive, the monitors measure decay
    and drift from the request log, the month's batch lands, and the new-data
    trigger starts the pipeline that validates, retrains and lets the gate decide.
    """
    from ctloop.examples.flights.features import flights_feature_store
    from ctloop.examples.flights.pipeline import MODEL_NAME, flights_ct
    from ctloop.features.catalog import apply_definitions
    from ctloop.monitoring.log import open_prediction_log
    from ctloop.registry import ModelRegistry
    from ctloop.triggers import make_trigger

    if not months or months.start < 3 or months.stop > 13:
        raise UserInputError(
            f"The demo months must lie within 3-12 (the months before the first train the "
            f"first model). Got {months.start}-{months.stop - 1}."
        )
    if defective_month is not None and defective_month not in months:
        raise UserInputError(
            f"The defective month {defective_month} is not among the replayed months "
            f"{months.start}-{months.stop - 1}."
        )
    folder = settings.home / "demo"
    archive = write_batches(folder / "archive", range(1, months.stop))
    landing = folder / "landing"
    for stale in (landing, folder / "predictions"):  # a replay starts from an empty landing zone
        shutil.rmtree(stale, ignore_errors=True)
    landing.mkdir(parents=True)
    _forget_trigger(settings, "new-batch")  # a replay sees every month as new
    apply_definitions(engine.store, flights_feature_store().definitions)
    schema_path = pin_schema(folder / "schema.yaml", archive[months.start - 1])
    registry = ModelRegistry(engine.store, actor="ctloop demo")
    if _champion(registry, MODEL_NAME) is not None:
        # A replay starts with no model in production; the alias history keeps the old one.
        engine.store.move_alias(MODEL_NAME, "champion", None, actor="ctloop demo",
                                reason="demo replay starts without a champion")
    params = {"archive": str(folder / "archive"), "schema_path": str(schema_path),
              "train_window": train_window, "n_boot": n_boot}
    outcomes: list[MonthOutcome] = []
    links: dict[int, str] = {}

    def finish(month: int, result: RunResult | None, extra: dict[str, Any]) -> None:
        if result is None:
            outcome = MonthOutcome(month=month, run_id="", status="not run")
        else:
            outcome = _outcome(engine, month, result)
            link = _keep_validation_report(engine, result, folder, month)
            if link:
                links[month] = link
        for key, value in extra.items():
            setattr(outcome, key, value)
        outcome.champion_version = _champion(registry, MODEL_NAME)
        outcomes.append(outcome)
        if on_month:
            on_month(outcome)

    bootstrap = months.start - 1
    first = engine.run(flights_ct, {**params, "batch": str(archive[bootstrap])},
                       source="ctloop.examples.flights.pipeline:flights_ct", trigger="manual",
                       trigger_info={"bootstrap": True, "batch": str(archive[bootstrap])})
    finish(bootstrap, first, {"trigger": "bootstrap"})
    if _champion(registry, MODEL_NAME) is None:
        write_report(folder, outcomes, links)
        raise UserInputError(
            f"The first model did not become champion ({first.run.error or 'the gate refused it'})"
            f"; see `ctloop runs show {first.run.id[:12]}`."
        )
    trigger = make_trigger("new-batch", flights_ct, params={**params, "batch": "{path}"},
                           new_data=str(landing / "2013-*.parquet"),
                           description="validate and retrain on every month that lands")
    log = open_prediction_log(folder / "predictions", settings=settings)
    with _service(settings, engine, log, MODEL_NAME) as (client, app):
        for month in months:
            serving = _serve_month(client, app, registry, log, month, chunk)
            serving |= _monitor_month(engine, registry, log, month, MODEL_NAME,
                                      serving["served_version"])
            landed = landing / f"2013-{month:02d}.parquet"
            if month == defective_month:
                make_defective(archive[month], landed)
            else:
                shutil.copyfile(archive[month], landed)
            firings = _controller(settings, trigger, folder, month).tick()
            result = next((engine.load_result(f.run_id) for f in firings if f.run_id), None)
            finish(month, result, {**serving, "trigger": "new_data" if firings else None})
    log.close()
    write_report(folder, outcomes, links)
    return outcomes


DRIFT_FEATURES = ["temp", "dewp", "humid", "wind_speed", "precip", "visib", "pressure",
                  "carrier_delay_rate_7d", "route_delay_rate_30d"]
"""Serving features watched for drift against what the first champion learned from."""


def _month_window(month: int) -> tuple[datetime, datetime]:
    start = datetime(2013, month, 1, tzinfo=UTC)
    end = datetime(2014, 1, 1, tzinfo=UTC) if month == 12 else datetime(2013, month + 1, 1,
                                                                           tzinfo=UTC)
    return start, end


def _training_features(engine: Engine, registry: Any, model: str, version: int) -> pd.DataFrame:
    """The watched features of the data a model version was trained on (its drift reference)."""
    record = registry.get(f"{model}:{version}")
    data = (record.properties.get("training_data") or {}).get("id")
    if not data:
        raise UserInputError(f"{model}:{version} records no training data to compare with.")
    art = engine.store.get_artifact(data)
    path = engine.artifact_store.get(art.uri, art.sha256, name=art.id)
    return pd.read_parquet(path, columns=DRIFT_FEATURES)


@contextmanager
def _service(settings: Settings, engine: Engine, log: Any,
             model: str) -> Iterator[tuple[Any, Any]]:
    """The real prediction service on loopback, following the registry every 0.2 s."""
    import httpx

    from ctloop.serving import ServingConfig, create_app
    from ctloop.serving.background import background_server

    config = ServingConfig(models=(model,), reload_interval=0.2)
    app = create_app(model, config=config, settings=settings, metadata=engine.store,
                     feature_store=False, prediction_log=log)
    with background_server(app) as url, httpx.Client(base_url=url, timeout=120) as client:
        yield client, app


def _serve_month(client: Any, app: Any, registry: Any, log: Any, month: int,
                 chunk: int) -> dict[str, Any]:
    """Send the month's flights, a chunk at a time in time order; labels arrive after."""
    from ctloop.examples.flights.features import training_set
    from ctloop.examples.flights.pipeline import MODEL_NAME, model_features

    champion = _champion(registry, MODEL_NAME)
    deadline = time.monotonic() + 30
    while _serving_version(client, MODEL_NAME) != champion:  # hot reload after a promotion
        if time.monotonic() > deadline:
            raise UserInputError(f"The prediction service did not pick up v{champion} in 30 s.")
        time.sleep(0.1)
    frame = training_set([month]).to_pandas().sort_values("event_timestamp", kind="stable")
    rows = frame[model_features()].astype(object)
    rows = rows.where(rows.notna(), None)
    ids = [f"2013-{month:02d}-{i}" for i in range(len(frame))]
    stamps = frame["event_timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S").tolist()
    for lo in range(0, len(frame), chunk):
        hi = min(lo + chunk, len(frame))
        answer = client.post(f"/v1/models/{MODEL_NAME}:predict", json={
            "rows": rows.iloc[lo:hi].to_dict("records"), "request_ids": ids[lo:hi],
            "now": stamps[hi - 1],
        })
        if answer.status_code != 200:
            raise UserInputError(f"The prediction service answered {answer.status_code}: "
                                 f"{answer.text[:300]}")
    app.state.serving.logger.flush()
    log.add_labels(pd.DataFrame({"request_id": ids, "label": frame["delayed"].to_numpy()}))
    return {"served": len(frame), "served_version": champion}


def _monitor_month(engine: Engine, registry: Any, log: Any, month: int, model: str,
                   version: int) -> dict[str, Any]:
    """Decay (live AUC vs the champion's recorded AUC) and drift (vs its training data)."""
    from ctloop.monitoring.monitors import check_decay, check_drift, record_result

    reference = _training_features(engine, registry, model, version)
    start, end = _month_window(month)
    decay = check_decay(log, model, start=start, end=end, store=engine.store, max_drop=0.03)
    drift = check_drift(log, model, reference, start=start, end=end, columns=DRIFT_FEATURES)
    for result in (decay, drift):
        record_result(result, engine.store, engine.artifact_store)
    return {
        "live_auc": None if decay.value is None else round(float(decay.value), 4),
        "live_baseline": None if decay.baseline is None else round(float(decay.baseline), 4),
        "decay_fired": decay.fired,
        "serving_drift": None if drift.value is None else round(float(drift.value), 4),
        "serving_drift_fired": drift.fired,
    }


def _controller(settings: Settings, trigger: Any, folder: Path, month: int) -> Any:
    from ctloop.triggers import Controller

    _, end = _month_window(month)
    return Controller([trigger], settings=settings, clock=lambda: end)


def _forget_trigger(settings: Settings, name: str) -> None:
    from ctloop.triggers.state import TriggerState
    from ctloop.triggers.store import ControllerState

    store = ControllerState(settings.metadata_url)
    try:
        with TriggerState(store).update() as state:
            state["triggers"].pop(name, None)
    finally:
        store.close()


def _serving_version(client: Any, model: str) -> int | None:
    answer = client.get(f"/v1/models/{model}")
    if answer.status_code != 200:
        return None
    routes = answer.json().get("routes") or []
    champion = next((r for r in routes if r.get("route") == "champion"), None)
    return None if champion is None else champion.get("version")


def _champion(registry: Any, name: str) -> int | None:
    """The version holding ``champion`` (None before the first promotion, or with no model)."""
    return registry.store.get_aliases(name).get("champion")


def _keep_validation_report(engine: Engine, result: RunResult, folder: Path,
                            month: int) -> str | None:
    """Copy the month's validation page next to the report; returns its relative link."""
    art = result.artifacts.get("validate", {}).get("anomalies")
    if art is None:  # a stopped run: the report the failed step wrote is kept as "partial"
        step = result.steps.get("validate")
        partial = [e for e in engine.store.get_events(step_id=step.id)
                   if e.kind == "partial" and e.name == "anomalies"] if step else []
        if not partial:
            return None
        art = engine.store.get_artifact(partial[0].artifact_id)
    tree = engine.artifact_store.get(art.uri, art.sha256, name=art.id)
    page = tree / "report.html"
    if not page.is_file():
        return None
    name = f"validation-2013-{month:02d}.html"
    (folder / name).write_text(page.read_text())
    return name
