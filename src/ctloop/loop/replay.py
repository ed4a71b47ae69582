"""``ctloop loop replay``: backtest a continuous-training policy on history, in event time.

The spans replay in event-time order into a sandbox project of their own
(``.ctloop/replays/NAME/``: metadata, artifacts, prediction log, controller
state), so a backtest never moves the live champion and two replays of the
same history start from the same empty state and give the same result.

For each span: validate it (a quarantined span is never served, trained on or
trusted; the champion keeps serving); with no champion yet, the first valid
span trains and promotes the first one (the bootstrap). Otherwise its rows go
through the real prediction service over HTTP (``create_app`` under uvicorn,
request log on, the canary split when a challenger exists), its labels are
delivered afterwards, the monitors run, the canary and the triggers decide,
and a fired trigger runs the training pipeline whose gate decides promotion.
"""

from __future__ import annotations

import functools
import shutil
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from ctloop.core.errors import ConfigError, CtloopError, UserInputError
from ctloop.core.settings import Settings
from ctloop.loop.declaration import LoopSpec, resolve_task
from ctloop.loop.episode import run_span
from ctloop.loop.memory import MemoryStore, SpanReport
from ctloop.loop.phases import LoopPhases, Phase
from ctloop.loop.sandbox import sandbox_settings
from ctloop.loop.spans import Span, discover_spans, span_labels
from ctloop.triggers.store import ControllerState

__all__ = ["ReplayResult", "replay", "sandbox_settings"]

CHUNK = 2000  # rows per prediction request
BUSY_RETRIES = 5  # a chunk the service answered 503 (its request log behind) is sent again


@dataclass
class ReplayResult:
    """Every span's report, in event-time order, and where the sandbox lives."""

    loop: str
    model: str
    metric: str
    spans: list[SpanReport] = field(default_factory=list)
    home: Path | None = None
    errors: list[str] = field(default_factory=list)  # training runs that failed, one line each
    sandbox: bool = True  # False: replayed into the project's own stores (the demo)

    def to_json(self) -> dict[str, Any]:
        return {"loop": self.loop, "model": self.model, "metric": self.metric,
                "spans": [s.to_json() for s in self.spans]}


def check_window(spec: LoopSpec, spans: list[Span]) -> None:
    """A window longer than the whole history is a mistake, not a wish."""
    if not spans:
        raise UserInputError(f"Loop {spec.name!r}: key 'data' matches no span "
                             f"({spec.data}). Land files there first.")
    window = spec.window
    if window.spans and window.spans > len(spans):
        raise ConfigError(f"Loop {spec.name!r}: key 'window' is {window.text!r}, longer than "
                          f"the history ({len(spans)} spans). Use at most {len(spans)} spans.")
    history = (spans[-1].end - spans[0].start).total_seconds()
    if window.seconds and window.seconds > history + 86400:
        raise ConfigError(f"Loop {spec.name!r}: key 'window' is {window.text!r}, longer than "
                          f"the history ({history / 86400:.0f} days of event time).")


def replay(spec: LoopSpec, settings: Settings, *, baseline: bool = False,
           on_phase: Phase | None = None, on_span: Callable[[SpanReport], None] | None = None,
           sandbox: bool = True) -> ReplayResult:
    """Replay every span of ``spec`` in event-time order; see the module docstring.

    ``sandbox=False`` replays into the project's own stores instead (the demo does, so
    its models and runs are there to look at afterwards): the loop's memory is reset and
    its model starts without a champion; the alias history keeps the old one.
    """
    spans = discover_spans(spec, materialize_to=settings.home / "loops" / spec.name / "spans")
    check_window(spec, spans)
    spec = resolve_task(spec, span_labels(spec, spans))
    catalog = settings.metadata_url  # the sandbox's own database has no feature catalog
    if sandbox:
        settings = sandbox_settings(settings, spec.name)
    phases = LoopPhases(spec, settings, on_phase=on_phase, catalog_url=catalog)
    state = ControllerState(settings.metadata_url)
    memory = MemoryStore(state, spec.name)
    try:
        phases.feature_refs()  # an unknown ref fails here, before the first span
    except CtloopError:
        phases.close()
        state.close()
        raise
    if not sandbox:
        _reset(phases, memory)
    sandbox_home = settings.home
    result = ReplayResult(spec.name, spec.model, spec.metric, home=sandbox_home,
                          sandbox=sandbox)
    from ctloop.requestlog.log import open_prediction_log

    predictions = sandbox_home / "predictions" if sandbox else sandbox_home / "replays" / \
        spec.name / "predictions"
    shutil.rmtree(predictions, ignore_errors=True)
    phases.predictions = predictions
    log = open_prediction_log(predictions, settings=settings)

    def serve(span: Span, frame: pd.DataFrame, features: list[str],
              challenger: int | None) -> list[str]:
        return _serve(phases, log, span, frame, features, challenger)

    valid: list[Span] = []
    first_champion: int | None = None
    try:
        for span in spans:
            report = run_span(phases, memory, log, span, list(valid), serve=serve,
                              baseline_of=first_champion if baseline else None)
            _check(report, result, phases)
            if report.status == "valid":
                valid.append(span)
            if report.bootstrap and report.promoted:
                first_champion = report.promoted
            result.spans.append(report)
            if on_span:
                on_span(report)
    finally:
        log.close()
        phases.close()
        state.close()
    return result


def _check(report: SpanReport, result: ReplayResult, phases: LoopPhases) -> None:
    """A failed training run: at the bootstrap nothing can serve, so the replay stops
    (a bootstrap that cannot train yet waits instead); later, one line in ``errors``."""
    if not (report.gate and report.gate.get("error")):
        return
    spec = phases.spec
    if report.bootstrap:
        raise UserInputError(
            f"Loop {spec.name!r}: key 'train': the bootstrap training on span {report.span} "
            f"failed: {report.gate['error']} (run {report.runs.get('train', '')[:12]} in "
            f"{phases.settings.home})")
    result.errors.append(f"Loop {spec.name!r}: key 'train': the training run on span "
                         f"{report.span} failed: {report.gate['error']}")


def _reset(phases: LoopPhases, memory: MemoryStore) -> None:
    """Start the loop over in the project's stores: no memory, no champion, no challenger."""
    memory.clear()
    for alias in ("champion", "challenger"):
        if phases.alias(alias) is not None:
            phases.engine.store.move_alias(phases.spec.model, alias, None,
                                           actor=f"loop {phases.spec.name}",
                                           reason="a replay starts without a champion")


def _serve(runner: LoopPhases, log: Any, span: Span, frame: pd.DataFrame,
           features: list[str], challenger: int | None) -> list[str]:
    """Send the span's rows through the prediction service, then deliver its labels.

    The service runs without a feature store: the refs a span lacks are joined at each
    row's event time before sending, i.e. what the online store would have served then.
    Rows a serving version's signature refuses (a null where its training had none) are
    left out, as a client's 422 would be, and counted: the returned anomaly lines.
    """
    spec = runner.spec
    runner.on_phase(span.name, "serving")
    frame = runner.with_features(frame)
    frame, anomalies = _servable(runner, frame, features, challenger)
    ids = (frame[spec.id].astype(str) if spec.id else
           pd.Series([f"{span.name}/{i}" for i in range(len(frame))])).tolist()
    columns = {c: _json_column(frame[c]) for c in features}
    stamps = frame[spec.event_time].dt.strftime("%Y-%m-%dT%H:%M:%S.%f%z").tolist()
    with _service(runner, challenger) as (client, app):
        for lo in range(0, len(frame), CHUNK):
            hi = min(lo + CHUNK, len(frame))
            body = {"columns": {c: v[lo:hi] for c, v in columns.items()},
                    "request_ids": ids[lo:hi], "now": stamps[hi - 1]}
            content = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
            for _ in range(BUSY_RETRIES):  # 503: the request log is behind; nothing was
                answer = client.post(f"/v1/models/{spec.model}:predict", content=content,
                                     headers={"content-type": "application/json"})
                if answer.status_code != 503:  # answered (or refused for good)
                    break
                app.state.serving.logger.flush()  # let it catch up, then send it again
            if answer.status_code != 200:
                raise UserInputError(f"Loop {spec.name!r}: the prediction service answered "
                                     f"{answer.status_code} on span {span.name}: "
                                     f"{answer.text[:300]}")
        app.state.serving.logger.flush()
    runner.on_phase(span.name, "labels")
    labelled_at = span.end + timedelta(seconds=1)
    log.add_labels(pd.DataFrame({"request_id": ids, "label": frame[spec.label].to_numpy(),
                                 "labelled_at": [labelled_at] * len(ids)}))
    return anomalies


def _servable(runner: LoopPhases, frame: pd.DataFrame, features: list[str],
              challenger: int | None) -> tuple[pd.DataFrame, list[str]]:
    """``frame`` without the rows the service would refuse for any version that may serve
    them (the champion, and the challenger during a canary), judged by the service's own
    check (``batch.checks.invalid_rows``: ``Signature.conform``), with one warning line
    per version that refused some."""
    from ctloop.batch.checks import invalid_rows
    from ctloop.models.signature import Signature

    spec = runner.spec
    versions = [v for v in (runner.alias(), challenger if spec.canary else None)
                if v is not None]
    refused = np.zeros(len(frame), dtype=bool)
    anomalies: list[str] = []
    for version in versions:
        stored = runner.registry.get(f"{spec.model}:{version}").properties.get("signature")
        if not isinstance(stored, dict) or not stored.get("inputs"):
            continue
        signature = Signature.from_dict(stored)
        if not set(signature.columns) <= set(frame.columns):
            continue  # the service's own 422 names the missing columns
        bad = invalid_rows(signature, frame, what="The request rows")
        if not bad:
            continue
        refused[list(bad)] = True
        first = next(iter(bad.values()))
        anomalies.append(f"[warning] serving: {len(bad)} of {len(frame)} rows left out, "
                         f"refused by {spec.model} v{version} ({first})")
    if not refused.any():
        return frame, anomalies
    return frame.loc[~refused].reset_index(drop=True), anomalies


def _json_column(values: pd.Series) -> np.ndarray | list[Any]:
    """A column as the request's JSON takes it, missing values as null: numbers stay a
    NumPy array (orjson writes it, NaN as null), anything else a list with None."""
    if isinstance(values.dtype, np.dtype) and values.dtype.kind in "fiu":
        return np.ascontiguousarray(values.to_numpy())
    return values.astype(object).where(values.notna(), None).tolist()


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for the span clients: the service is plain HTTP on loopback, but
    httpx builds a context (loading the CA bundle, ~35 ms) for every client made."""
    return ssl.create_default_context()


@contextmanager
def _service(runner: LoopPhases, challenger: int | None) -> Iterator[tuple[Any, Any]]:
    """The real prediction service on loopback for one span (canary when a challenger is
    waiting), so what serves is exactly what the registry says at the span's start."""
    import httpx

    from ctloop.requestlog.log import open_prediction_log
    from ctloop.serving import ServingConfig, create_app
    from ctloop.serving.background import background_server
    from ctloop.serving.config import Split

    spec = runner.spec
    canary = (Split("challenger", spec.canary.share)
              if challenger is not None and spec.canary is not None else None)
    config = ServingConfig(models=(spec.model,), reload_interval=0, canary=canary,
                           seed=spec.seed)
    app = create_app(spec.model, config=config, settings=runner.settings,
                     metadata=runner.engine.store, feature_store=False,
                     prediction_log=open_prediction_log(runner.predictions))
    with background_server(app) as url, \
            httpx.Client(base_url=url, timeout=120, verify=_tls_context()) as client:
        yield client, app
