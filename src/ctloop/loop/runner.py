"""One loop's phases on one span, shared by the replay and the live controller.

For each span, in event-time order::

    validate ─► (serve, labels: replay only) ─► monitors ─► canary ─► triggers ─► train ─► gate

The runner owns the decisions that make the loop a product rather than glue:

- signals follow the champion: drift is measured against the champion's own
  training data (found through the registry's lineage) and decay against its
  evaluation (or an absolute floor, or the best live value it reached);
- the training window is built from *valid* spans only; ``window = "auto"``
  trains after a decay (or drift) trigger on the spans since the detected
  change, the first span whose live metric fell;
- every clock (cooldown, schedule) is the span's event time, so a replay of a
  year decides exactly as the live loop would have.

Its memory (spans seen and their status, trigger anchors and firings, the
change point, the best live value) lives in the metadata database under scope
``loop:NAME`` (:class:`ctloop.triggers.store.ControllerState`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ctloop.core.errors import CtloopError, NotFound
from ctloop.core.settings import Settings
from ctloop.loop.declaration import LoopSpec
from ctloop.loop.failures import IngestFailed, infrastructure_failure
from ctloop.loop.feature_join import LoopFeatures
from ctloop.loop.pipeline import loop_ingest, loop_train, read_span
from ctloop.loop.spans import Span
from ctloop.monitoring.base import PredictionLog
from ctloop.monitoring.monitors import MonitorResult
from ctloop.triggers.store import ControllerState

__all__ = ["LoopRunner", "SpanReport", "TriggerDecision", "live_metrics"]

Phase = Callable[[str, str], None]  # (span name, phase)


@dataclass
class TriggerDecision:
    """Whether one retrain signal fired on a span, and why (or why not)."""

    name: str
    fired: bool
    reason: str


@dataclass
class SpanReport:
    """What the loop did with one span (the replay's JSON entry)."""

    span: str
    rows: int
    status: str = "valid"  # "valid" | "quarantined"
    anomalies: list[str] = field(default_factory=list)
    served_version: int | None = None
    live: dict[str, Any] | None = None
    baseline: dict[str, Any] | None = None
    drift: dict[str, Any] | None = None
    triggers: list[dict[str, Any]] = field(default_factory=list)
    gate: dict[str, Any] | None = None
    promoted: int | None = None
    bootstrap: bool = False
    canary: dict[str, Any] | None = None
    window: list[str] | None = None  # the spans the candidate was trained on
    runs: dict[str, str] = field(default_factory=dict)  # phase -> run id (not in the JSON)

    def to_json(self) -> dict[str, Any]:
        """The replay's stable per-span record: no run ids or wall times, so two replays
        of the same history compare equal."""
        out = asdict(self)
        out.pop("runs")
        return out


def live_metrics(frame: pd.DataFrame, metric: str, threshold: float = 0.5
                 ) -> dict[int, tuple[float | None, int]]:
    """Per served version: ``metric`` on its labelled rows and how many there were."""
    from ctloop.models.metrics import CLASSIFICATION_METRICS, metric_matrix

    task = "classification" if metric in CLASSIFICATION_METRICS else "regression"
    out: dict[int, tuple[float | None, int]] = {}
    labelled = frame[frame["label"].notna()] if "label" in frame else frame.iloc[:0]
    for version, rows in labelled.groupby("model_version"):
        y = rows["label"].to_numpy(dtype=np.float64)
        score = rows["prediction"].to_numpy(dtype=np.float64)
        value: float | None = None
        if task == "regression" or len(np.unique(y)) == 2:
            value = float(metric_matrix(np.ones((1, len(y))), y, score, task=task,
                                        threshold=threshold)[metric][0])
        out[int(str(version))] = (value, len(rows))
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


class LoopRunner:
    """Runs a loop's phases against one project's stores (a replay's sandbox or live)."""

    def __init__(self, spec: LoopSpec, settings: Settings, *, state: ControllerState | None = None,
                 on_phase: Phase | None = None, catalog_url: str | None = None) -> None:
        from ctloop.pipeline.api import make_engine
        from ctloop.registry import ModelRegistry

        self.spec = spec
        self.settings = settings
        self.engine = make_engine(settings)
        self.registry = ModelRegistry(self.engine.store, actor=f"loop {spec.name}")
        self.state = state or ControllerState(settings.metadata_url)
        self.scope = f"loop:{spec.name}"
        self.home = settings.home / "loops" / spec.name
        self.home.mkdir(parents=True, exist_ok=True)
        self.on_phase = on_phase or (lambda _span, _phase: None)
        self._references: dict[int, pd.DataFrame] = {}
        # The label-free estimate of the champion's metric on the last span monitored
        # (only computed when ``estimate`` is a retrain signal).
        self.last_estimate: MonitorResult | None = None
        self._features: list[str] | None = None
        # Where ``train.feature_refs`` are defined when no ``train.feature_store`` file is
        # given: this project's catalog (a replay passes the live project's, not the sandbox's).
        self.catalog_url = catalog_url or settings.metadata_url
        self._feature_refs: tuple[LoopFeatures | None] | None = None
        self.predictions = settings.home / "predictions"  # where the replay's service logs

    def close(self) -> None:
        self.engine.store.close()

    # -- memory ------------------------------------------------------------------

    def memory(self) -> dict[str, dict[str, Any]]:
        return self.state.read(self.scope)

    def remember(self, key: str, **values: Any) -> None:
        with self.state.update(self.scope) as docs:
            docs.setdefault(key, {}).update(values)

    def span_record(self, name: str) -> dict[str, Any]:
        return dict(self.memory().get("spans", {}).get(name, {}))

    def save_span(self, report: SpanReport, **extra: Any) -> None:
        with self.state.update(self.scope) as docs:
            spans = docs.setdefault("spans", {})
            spans[report.span] = {**spans.get(report.span, {}), "report": report.to_json(),
                                  "runs": report.runs, **extra}

    # -- the champion ------------------------------------------------------------

    def alias(self, alias: str = "champion") -> int | None:
        try:
            return self.engine.store.get_aliases(self.spec.model).get(alias)
        except NotFound:
            return None

    def features(self, frame: pd.DataFrame) -> list[str]:
        """The declared features, else every column but label, event time and id; plus the
        columns of ``train.feature_refs`` the span lacks (joined before training and serving)."""
        if self._features is None:
            declared = list(self.spec.train.features)
            chosen = declared or [c for c in frame.columns if c not in self.spec.excluded]
            refs = self.feature_refs()
            joined = [refs.columns[r] for r in refs.missing(list(frame.columns))] if refs else []
            self._features = [*chosen, *(c for c in joined if c not in chosen)]
        return self._features

    def feature_refs(self) -> LoopFeatures | None:
        """The loop's refs resolved against its definitions (once); an unknown ref is a
        one-line error naming the loop and ``train.feature_refs``."""
        if self._feature_refs is None:
            from ctloop.loop.feature_join import open_loop_features

            self._feature_refs = (open_loop_features(self.spec, self.catalog_url),)
        return self._feature_refs[0]

    def feature_document(self, frame: pd.DataFrame) -> dict[str, Any]:
        """The definitions of the refs ``frame`` lacks, for the training pipeline ({} if none)."""
        refs = self.feature_refs()
        missing = refs.missing(list(frame.columns)) if refs else []
        return refs.document(missing) if refs and missing else {}

    def with_features(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with the refs it lacks joined at each row's event time: what the online
        store would have served then."""
        from ctloop.loop.feature_join import join_point_in_time

        document = self.feature_document(frame)
        if not document:
            return frame
        return join_point_in_time(frame, document, self.spec.event_time,
                                  f"Loop {self.spec.name!r}: ")

    def champion_reference(self, version: int, columns: list[str]) -> pd.DataFrame:
        """The champion's own training data (its lineage in the registry): the drift
        reference, which therefore moves with every promotion."""
        if version not in self._references:
            record = self.registry.get(f"{self.spec.model}:{version}")
            data = (record.properties.get("training_data") or {}).get("id")
            if not data:
                raise NotFound(f"Loop {self.spec.name!r}: {self.spec.model}:{version} records "
                               "no training data to measure drift against.")
            art = self.engine.store.get_artifact(data)
            path = self.engine.artifact_store.get(art.uri, art.sha256, name=art.id)
            self._references[version] = pd.read_parquet(path)
        ref = self._references[version]
        return ref[[c for c in columns if c in ref.columns]]

    def champion_evaluation(self, version: int) -> float | None:
        record = self.registry.get(f"{self.spec.model}:{version}")
        try:
            value = record.properties["evaluation"]["overall"]["metrics"][self.spec.metric]
            return float(value["value"])
        except (KeyError, TypeError, ValueError):
            return None

    # -- phases ------------------------------------------------------------------

    def validate(self, span: Span, reference: Span | None, report: SpanReport) -> bool:
        """Run ``loop_ingest``; an error-level anomaly quarantines the span."""
        self.on_phase(span.name, "validate")
        schema = self.spec.schema or str(self.home / "schema.yaml")
        if not self.spec.schema and not Path(schema).exists():
            self._pin_schema(span, Path(schema))
        result = self.engine.run(
            loop_ingest, {"span": span.path, "event_time": self.spec.event_time,
                          "label": self.spec.label, "schema_path": schema,
                          "reference": reference.path if reference else ""},
            trigger="new_data", trigger_info={"loop": self.spec.name, "span": span.name},
            source="ctloop.loop.pipeline:loop_ingest", tags={"loop": self.spec.name})
        report.runs["validate"] = result.run.id
        self._remember_landed(span.name, result)
        if result.ok:
            return True
        failed = [s for s in result.steps.values() if s.status.value == "failed"]
        why = infrastructure_failure(failed, result.run.error)
        if why is not None:  # not the data's fault: never a quarantine (loop/failures.py)
            raise IngestFailed(
                f"Loop {self.spec.name!r}: the ingest run {result.run.id} of span {span.name} "
                f"failed for a reason that is not the data: {why.splitlines()[0]}. The span "
                "is not quarantined; it is tried again.")
        step = result.steps.get("validate")
        if step is not None and step.status.value == "failed":
            lines = (step.error or "validation failed").splitlines()
            report.anomalies = [line.strip() for line in lines[1:] if line.strip()] or lines[:1]
        else:
            report.anomalies = [result.run.error or "the span could not be ingested"]
        report.status = "quarantined"
        return False

    def _remember_landed(self, span: str, result: Any) -> None:
        """The span as its ingest run landed it: what the training set reads, so lineage
        runs from a model back to this run."""
        landed = result.artifacts.get("land_span", {}).get("out")
        if landed is not None:
            with self.state.update(self.scope) as docs:
                docs.setdefault("spans", {}).setdefault(span, {})["landed"] = landed.id

    def _pin_schema(self, span: Span, path: Path) -> None:
        """No pinned schema declared: pin the first span's types, required columns and
        domains (not its numeric ranges, which the next span may well leave)."""
        from ctloop.data.schema import infer_schema
        from ctloop.data.stats import compute_statistics

        frame = read_span(span.path, self.spec.event_time, self.spec.label,
                          f"Loop {self.spec.name!r}: ")
        tmp = self.home / f".{span.name}.parquet"
        frame.to_parquet(tmp, index=False)
        try:
            schema = infer_schema(compute_statistics(tmp, name=span.name))
        finally:
            tmp.unlink(missing_ok=True)
        for column in schema.columns.values():
            column.min = column.max = None
        schema.save(path)

    def monitors(self, span: Span, log: PredictionLog, champion: int, report: SpanReport,
                 frame_columns: list[str], *, start: datetime | None = None,
                 end: datetime | None = None) -> tuple[MonitorResult, MonitorResult]:
        """Decay of the champion's live metric and drift from its training data, over the
        span's event time (replay) or the log since the last look (live)."""
        from ctloop.monitoring.monitors import check_decay, check_drift, record_result

        self.on_phase(span.name, "monitors")
        if start is None and end is None:
            start, end = span.start, span.end + timedelta(microseconds=1)
        decay_spec = self.spec.decay
        memory = self.memory().get("champion", {})
        max_drop = decay_spec.max_drop
        if isinstance(decay_spec.baseline, int | float):
            baseline: float | None = float(decay_spec.baseline)
            max_drop = 0.0
        else:
            baseline = self.champion_evaluation(champion)
            if decay_spec.baseline == "best_live" and memory.get("version") == champion:
                best = memory.get("best_live")
                baseline = best if baseline is None or best is None else max(best, baseline)
        decay = check_decay(log, self.spec.model, metric=self.spec.metric, baseline=baseline,
                            max_drop=max_drop, min_labels=decay_spec.min_labels, start=start,
                            end=end, store=self.engine.store, version=champion)
        columns = list(self.spec.drift.columns) or frame_columns
        try:
            reference = self.champion_reference(champion, columns)
        except NotFound as exc:  # imported from a bundle: its training data stayed behind
            drift = MonitorResult(
                kind="drift", model=self.spec.model, fired=False, value=None,
                threshold=self.spec.drift.share, baseline=None, n=0, status="no_data",
                window={"start": start.isoformat() if start else None,
                        "end": end.isoformat() if end else None},
                note=f"{exc.message} Drift is judged from the next champion trained here.")
        else:
            drift = check_drift(log, self.spec.model, reference, start=start, end=end,
                                columns=columns, share=self.spec.drift.share,
                                min_rows=self.spec.drift.min_rows,
                                config=_distances(reference))
        results = [decay, drift]
        self.last_estimate = None
        if "estimate" in self.spec.retrain_on:
            self.last_estimate = self._estimate(log, champion, baseline, max_drop, start, end)
            if self.last_estimate is not None:
                results.append(self.last_estimate)
        for result in results:
            record_result(result, self.engine.store, self.engine.artifact_store)
        frame = log.read(model_name=self.spec.model, start=start, end=end, with_labels=True)
        per_version = live_metrics(frame, self.spec.metric)
        value, n = per_version.get(champion, (None, 0))
        report.live = {"version": champion, self.spec.metric: _round(value), "n": n}
        report.drift = {"share": _round(drift.value),
                        "features": list(drift.details.get("drifted_features", []))}
        self._track_change(span, champion, decay)
        return decay, drift

    def _estimate(self, log: PredictionLog, champion: int, baseline: float | None,
                  max_drop: float, start: datetime | None, end: datetime | None
                  ) -> MonitorResult | None:
        """The champion's metric estimated from its scores alone (CBPE-style), before labels."""
        from ctloop.monitoring.estimate import ESTIMATED_METRICS, check_estimated_performance

        if self.spec.metric not in ESTIMATED_METRICS:
            return None
        return check_estimated_performance(
            log, self.spec.model, metric=self.spec.metric, baseline=baseline,
            max_drop=max_drop, min_rows=self.spec.drift.min_rows, start=start, end=end,
            store=self.engine.store, artifacts=self.engine.artifact_store, version=champion,
        )

    def _track_change(self, span: Span, champion: int, decay: MonitorResult) -> None:
        """Remember the first span whose live metric fell (the change ``auto`` trains from)
        and, for ``best_live``, the best value the champion reached."""
        with self.state.update(self.scope) as docs:
            memory = docs.setdefault("champion", {})
            if memory.get("version") != champion:
                memory.clear()
                memory["version"] = champion
            if decay.value is None or decay.baseline is None:
                return
            best = memory.get("best_live")
            memory["best_live"] = decay.value if best is None else max(best, decay.value)
            half = (decay.threshold if decay.threshold is not None else decay.baseline)
            fell = decay.value < (decay.baseline + half) / 2 if decay.details.get(
                "higher_is_better", True) else decay.value > (decay.baseline + half) / 2
            if fell or decay.fired:
                memory.setdefault("falling_since", span.name)
            else:
                memory.pop("falling_since", None)

    def canary(self, span: Span, log: PredictionLog, champion: int, challenger: int,
               report: SpanReport, *, start: datetime | None = None,
               end: datetime | None = None) -> int | None:
        """Promote the challenger if its live metric on this span's traffic is not worse than
        the champion's on the same rows' period; drop it if worse. Returns a promoted version."""
        from ctloop.models.metrics import HIGHER_IS_BETTER

        spec = self.spec.canary
        assert spec is not None
        self.on_phase(span.name, "canary")
        if start is None and end is None:
            start, end = span.start, span.end + timedelta(microseconds=1)
        frame = log.read(model_name=self.spec.model, start=start, end=end, with_labels=True)
        per_version = live_metrics(frame, self.spec.metric)
        champ, _ = per_version.get(champion, (None, 0))
        chal, n_chal = per_version.get(challenger, (None, 0))
        report.canary = {"challenger": challenger, "champion": champion,
                         "challenger_live": _round(chal), "champion_live": _round(champ),
                         "labels": n_chal, "decision": "wait", "reason": ""}
        if n_chal < spec.min_labels or chal is None or champ is None:
            report.canary["reason"] = (f"{n_chal} labelled challenger requests, need "
                                       f"{spec.min_labels}")
            return None
        higher = HIGHER_IS_BETTER[self.spec.metric]
        ok = chal >= champ if higher else chal <= champ
        verdict = (f"challenger v{challenger} {self.spec.metric} {chal:.4f} vs champion "
                   f"v{champion} {champ:.4f} on span {span.name}")
        self.engine.store.move_alias(self.spec.model, "challenger", None,
                                     actor=f"loop {self.spec.name}",
                                     reason=("promoted: " if ok else "dropped: ") + verdict)
        report.canary.update(decision="promote" if ok else "drop", reason=verdict)
        if not ok:
            return None
        self.registry.promote(self.spec.model, challenger, alias="champion",
                              reason=f"canary: {verdict}", expected_version=champion)
        return challenger

    def decide(self, span: Span, valid: bool, decay: MonitorResult | None,
               drift: MonitorResult | None, *, now: datetime | None = None,
               canary: dict[str, Any] | None = None) -> list[TriggerDecision]:
        """Every declared retrain signal with fired/why; the clock is the span's event time
        unless ``now`` is given (the live controller's clock).

        While a canary waits for labels (``canary`` is its undecided report), a signal
        that fires is held: a new candidate would replace the challenger before its
        live traffic had decided anything, and a canary would never finish.
        """
        now = now or span.end
        out: list[TriggerDecision] = []
        with self.state.update(self.scope) as docs:
            triggers = docs.setdefault("triggers", {})
            for name in self.spec.retrain_on:
                entry = triggers.setdefault(name, {})
                out.append(self._signal(name, entry, span, valid, decay, drift, now))
            fired = [d for d in out if d.fired]
            if fired and canary is not None and canary.get("decision") == "wait":
                for d in fired:
                    d.fired = False
                    d.reason += (f"; held: the canary of challenger v{canary['challenger']} "
                                 "is undecided")
                fired = []
            last = triggers.get("_loop", {}).get("last_fired")
            if fired and last and self.spec.cooldown:
                until = datetime.fromisoformat(last) + timedelta(seconds=self.spec.cooldown)
                if now < until:
                    for d in fired:
                        d.fired = False
                        d.reason += f"; cooling down until {until.isoformat()}"
                    fired = []
            if fired:
                triggers.setdefault("_loop", {})["last_fired"] = now.isoformat()
                for d in fired:
                    triggers[d.name]["last_fired"] = now.isoformat()
            for d in out:
                triggers[d.name]["last"] = {"span": span.name, "fired": d.fired,
                                            "reason": d.reason}
        return out

    def _signal(self, name: str, entry: dict[str, Any], span: Span, valid: bool,
                decay: MonitorResult | None, drift: MonitorResult | None,
                now: datetime) -> TriggerDecision:
        if not valid:
            return TriggerDecision(name, False, f"span {span.name} is quarantined: never "
                                                "trained on")
        if name == "new_span":
            return TriggerDecision(name, True, f"span {span.name} landed and is valid")
        if name == "schedule":
            from croniter import croniter

            anchor = entry.get("anchor")
            if anchor is None:
                entry["anchor"] = now.isoformat()
                return TriggerDecision(name, False, f"schedule {self.spec.schedule!r} "
                                                    f"anchored at {now.isoformat()}")
            due = croniter(self.spec.schedule, datetime.fromisoformat(anchor)
                           ).get_next(datetime)
            if due > now:
                return TriggerDecision(name, False, f"next run due {due.isoformat()}")
            entry["anchor"] = now.isoformat()
            return TriggerDecision(name, True, f"scheduled run due {due.isoformat()}")
        if name == "estimate":
            estimate = self.last_estimate
            if estimate is None:
                return TriggerDecision(name, False, f"{self.spec.metric} cannot be estimated "
                                                    "without labels (or no champion served)")
            if estimate.status == "no_data":
                return TriggerDecision(name, False, f"no data: {estimate.note}")
            band = estimate.details.get("band")
            return TriggerDecision(
                name, bool(estimate.fired),
                f"estimated {self.spec.metric} {_fmt(estimate.value)} vs baseline "
                f"{_fmt(estimate.baseline)} (fires below {_fmt(estimate.threshold)})"
                + (f", band {_fmt(band[0])} to {_fmt(band[1])}" if band else ""))
        result = decay if name == "decay" else drift
        if result is None:
            return TriggerDecision(name, False, "no champion served this span")
        if getattr(result, "status", None) == "no_data" or (result.value is None
                                                             and result.note):
            return TriggerDecision(name, False, f"no data: {result.note}")
        if name == "decay":
            metric = self.spec.metric
            body = (f"live {metric} {_fmt(result.value)} vs baseline {_fmt(result.baseline)} "
                    f"(fires below {_fmt(result.threshold)})")
        else:
            drifted = result.details.get("drifted_features", [])
            body = (f"{_fmt(result.value)} of features drifted from the champion's training "
                    f"data (fires at {_fmt(result.threshold)}): {', '.join(drifted) or 'none'}")
        return TriggerDecision(name, bool(result.fired), body)

    def window(self, valid: list[Span], current: Span, fired: list[str]) -> list[Span]:
        """The valid spans up to ``current`` that the candidate trains on."""
        upto = [s for s in valid if s.start <= current.start]
        w = self.spec.window
        if w.spans:
            return upto[-w.spans:]
        if w.seconds:
            return [s for s in upto if s.end >= current.end - timedelta(seconds=w.seconds)]
        change = None
        if "decay" in fired:
            change = self.memory().get("champion", {}).get("falling_since") or current.name
        elif "drift" in fired:
            change = current.name
        if change is None:
            change = self.memory().get("window", {}).get("since")
        names = [s.name for s in upto]
        if change in names:
            self.remember("window", since=change)
            return upto[names.index(change):]
        return upto[-3:]

    def train(self, span: Span, window: list[Span], reason: str, report: SpanReport,
              frame: pd.DataFrame) -> int | None:
        """Run ``loop_train`` on ``window``; returns the promoted version, if any."""
        self.on_phase(span.name, "training")
        champion = self.alias()
        alias = "challenger" if (self.spec.canary and champion is not None) else "champion"
        params = {
            "spans": [s.path for s in window], "event_time": self.spec.event_time,
            "label": self.spec.label, "features": self.features(frame),
            "model_name": self.spec.model, "gate": self.spec.gate.to_gate(self.spec.metric),
            "holdout": self.spec.holdout, "algorithm": self.spec.train.algorithm,
            "params": dict(self.spec.train.params), "trainer": self.spec.train.component or "",
            "seed": self.spec.seed, "alias": alias, "reason": reason,
            "feature_refs": list(refs.refs if (refs := self.feature_refs())
                                 else self.spec.train.feature_refs),
            "feature_definitions": self.feature_document(frame),
            "landed": self._landed(window),
        }
        pipeline = loop_train
        source = "ctloop.loop.pipeline:loop_train"
        if self.spec.pipeline:
            from ctloop.pipeline.loader import load_pipeline

            pipeline, source = load_pipeline(self.spec.pipeline)
            for key in ("feature_definitions", "landed"):  # newer than many user pipelines
                if key not in pipeline.parameters and not params[key]:
                    params.pop(key)
        report.window = [s.name for s in window]
        observer = _RunIdObserver(lambda run_id: self._claim(span.name, run_id))
        self.engine.observer = observer
        try:
            result = self.engine.run(pipeline, params, trigger="loop",
                                     trigger_info={"loop": self.spec.name, "span": span.name,
                                                   "reason": reason},
                                     source=source, tags={"loop": self.spec.name})
        finally:
            self.engine.observer = None
        return self.record_training(result, report)

    def _landed(self, window: list[Span]) -> list[str]:
        """Each window span's landed artifact id ("" for one validated before they were kept)."""
        spans = self.memory().get("spans", {})
        ids = [str(spans.get(s.name, {}).get("landed") or "") for s in window]
        return ids if any(ids) else []

    def _claim(self, span: str, run_id: str) -> None:
        with self.state.update(self.scope) as docs:
            docs.setdefault("spans", {}).setdefault(span, {})["training_run"] = run_id

    def record_training(self, result: Any, report: SpanReport) -> int | None:
        """The gate's decision and the promotion, from a finished training run."""
        self.on_phase(report.span, "gate")
        report.runs["train"] = result.run.id
        if not result.ok:
            failed = next((s for s in result.steps.values() if s.status.value == "failed"), None)
            where = failed.name if failed else "run"
            error = " ".join(((failed.error if failed else None) or result.run.error
                              or "failed").split())
            report.gate = {"blessed": False, "error": f"step {where} failed: {error[:300]}"}
            return None
        judged = result.steps["evaluate"].outputs.get("return") or {}
        gate: dict[str, Any] = {"blessed": bool(judged.get("blessed")),
                                "failed": list(judged.get("failed", [])),
                                "champion_version": judged.get("champion_version")}
        art = result.artifacts.get("evaluate", {}).get("evaluation")
        if art is not None:
            path = self.engine.artifact_store.get(art.uri, art.sha256, name=art.id)
            models = json.loads(Path(path).read_text()).get("models", {})
            for who in ("candidate", "champion"):
                metric = models.get(who, {}).get("overall", {}).get("metrics", {})
                value = metric.get(self.spec.metric, {})
                gate[who] = _round(value.get("value")) if isinstance(value, dict) else None
        report.gate = gate
        pushed = result.steps["push"].outputs.get("return") or {}
        gate["version"] = pushed.get("version")
        if pushed.get("promoted") and pushed.get("alias") == "champion":
            return int(pushed["version"])
        if pushed.get("promoted"):
            gate["challenger"] = pushed.get("version")
        return None

    def baseline_score(self, version: int, frame: pd.DataFrame) -> dict[str, Any]:
        """The never-retrained model (the first champion) scored on a span's rows."""
        from ctloop.models.metrics import CLASSIFICATION_METRICS, metric_matrix

        model = self._baseline_model(version)
        frame = self.with_features(frame)
        y = frame[self.spec.label].to_numpy(dtype=np.float64)
        score = model.predict(frame[self.features(frame)])
        task = "classification" if self.spec.metric in CLASSIFICATION_METRICS else "regression"
        value = None
        if task == "regression" or len(np.unique(y)) == 2:
            value = float(metric_matrix(np.ones((1, len(y))), y, score, task=task)
                          [self.spec.metric][0])
        return {"version": version, self.spec.metric: _round(value), "n": len(y)}

    def _baseline_model(self, version: int) -> Any:
        cached = getattr(self, "_baseline", None)
        if cached is None or cached[0] != version:
            loaded = self.registry.load(f"{self.spec.model}:{version}",
                                        self.engine.artifact_store)
            self._baseline = (version, loaded)
        return self._baseline[1]


class _RunIdObserver:
    """Writes a training run's id to the loop's memory as soon as the run exists, so a
    controller killed mid-run is resumed on restart instead of trained again."""

    def __init__(self, record: Callable[[str], None]) -> None:
        self.record = record

    def run_started(self, run: Any, steps: list[Any]) -> None:
        try:
            self.record(run.id)
        except CtloopError:
            pass

    def step_changed(self, step: Any) -> None:
        return None

    def run_finished(self, run: Any) -> None:
        return None


def _distances(reference: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Judge every feature by a noise-floored distance, never by a p-value: at p < 0.05 a
    test calls one calm feature in twenty drifted on every span, and its verdict near the
    threshold flips with the statistics sketches' rank error, so two replays could differ."""
    return {c: {"method": "wasserstein" if pd.api.types.is_numeric_dtype(reference[c])
                else "jensenshannon"} for c in reference.columns}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
