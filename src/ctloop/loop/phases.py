"""The phases of a loop that touch stores: ingest, monitors, canary, training, the gate.

:class:`LoopPhases` runs one loop's pipelines against one project's stores (a
replay's sandbox or the live project) and reads the champion's facts from the
registry. It decides nothing: the policy (:mod:`ctloop.loop.policy`) decides
and the episode (:mod:`ctloop.loop.episode`) sequences the phases and keeps
the memory.

Signals follow the champion: drift is measured against the champion's own
training data (found through the registry's lineage) and decay against its
evaluation (or an absolute floor, or the best live value it reached).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ctloop.core.errors import CtloopError, NotFound, NotTrainable, UserInputError
from ctloop.core.jsontypes import as_object, as_str
from ctloop.core.settings import Settings
from ctloop.loop.declaration import LoopSpec
from ctloop.loop.failures import IngestFailed, infrastructure_failure, raised
from ctloop.loop.feature_join import LoopFeatures
from ctloop.loop.labels import FittingLabels
from ctloop.loop.memory import GateJson, SpanReport
from ctloop.loop.pipeline import loop_ingest, loop_train, read_span
from ctloop.loop.policy import Signals
from ctloop.loop.spans import Span
from ctloop.models.evaluation_record import Evaluation
from ctloop.monitoring.monitors import MonitorResult
from ctloop.requestlog.records import PredictionLog

if TYPE_CHECKING:
    from ctloop.pipeline.dsl import PipelineDef
    from ctloop.pipeline.engine import RunResult

__all__ = ["Ingested", "LoopPhases", "Phase", "live_metrics"]

Phase = Callable[[str, str], None]  # (span name, phase)
TRAIN_SOURCE = "ctloop.loop.pipeline:loop_train"


def live_metrics(frame: pd.DataFrame, metric: str, task: str = "binary",
                 classes: list[Any] | None = None, threshold: float = 0.5
                 ) -> dict[int, tuple[float | None, int]]:
    """Per served version: ``metric`` on its labelled rows and how many there were."""
    from ctloop.monitoring.monitors import logged_scores

    out: dict[int, tuple[float | None, int]] = {}
    labelled = frame[frame["label"].notna()] if "label" in frame else frame.iloc[:0]
    for version, rows in labelled.groupby("model_version"):
        scores = logged_scores(rows, task)  # type: ignore[arg-type]
        value = None if scores is None else score_metric(
            rows["label"], scores, metric, task, classes, threshold)
        out[int(str(version))] = (value, len(rows))
    return out


def score_metric(labels: Any, scores: Any, metric: str, task: str = "binary",
                 classes: Sequence[Any] | None = None, threshold: float = 0.5
                 ) -> float | None:
    """``metric`` of ``scores`` against ``labels``; ``None`` where it is undefined (one
    class for a ranking metric) or the values cannot be scored."""
    from ctloop.models.metrics import metric_value

    y = np.asarray(labels) if task == "multiclass" else pd.to_numeric(
        pd.Series(labels), errors="coerce").to_numpy(dtype=np.float64)
    try:
        return metric_value(y, np.asarray(scores), metric, threshold=threshold,
                            classes=list(classes) if classes else None)
    except (UserInputError, ValueError, TypeError, KeyError):
        return None


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


@dataclass(frozen=True)
class Ingested:
    """What ``loop_ingest`` made of a span: valid or not, and its landed artifact."""

    ok: bool
    run_id: str
    landed: str | None
    anomalies: list[str]


class LoopPhases:
    """One loop's phases against one project's stores (a replay's sandbox or live)."""

    def __init__(self, spec: LoopSpec, settings: Settings, *, on_phase: Phase | None = None,
                 catalog_url: str | None = None) -> None:
        from ctloop.pipeline.api import make_engine
        from ctloop.registry import ModelRegistry

        self.spec = spec
        self.settings = settings
        self.engine = make_engine(settings)
        self.registry = ModelRegistry(self.engine.store, actor=f"loop {spec.name}")
        self.home = settings.home / "loops" / spec.name
        self.home.mkdir(parents=True, exist_ok=True)
        self.on_phase = on_phase or (lambda _span, _phase: None)
        self._references: dict[int, pd.DataFrame] = {}
        self._features: list[str] | None = None
        # Where ``train.feature_refs`` are defined when no ``train.feature_store`` file is
        # given: this project's catalog (a replay passes the live project's, not the sandbox's).
        self.catalog_url = catalog_url or settings.metadata_url
        self._feature_refs: tuple[LoopFeatures | None] | None = None
        self._pipeline: tuple[PipelineDef, str] | None = None
        self._baseline: tuple[int, Any] | None = None
        self.predictions = settings.home / "predictions"  # where the replay's service logs
        if not spec.pipeline and self.engine.runner.name == "local":
            # The standard pipeline's infra check probes in this process's probe server:
            # start it now, so its ~2 s start overlaps the first span's ingest and training.
            from ctloop.models.probe_server import probe_server

            probe_server()

    def close(self) -> None:
        self.engine.store.close()

    @property
    def task(self) -> str:
        """The loop's task (resolved before the first span; binary for an old spec)."""
        return self.spec.task or "binary"

    # -- the champion ------------------------------------------------------------

    def alias(self, alias: str = "champion") -> int | None:
        try:
            return self.engine.store.get_aliases(self.spec.model).get(alias)
        except NotFound:
            return None

    def champion_reference(self, version: int, columns: list[str]) -> pd.DataFrame:
        """The champion's own training data (its lineage in the registry): the drift
        reference, which therefore moves with every promotion."""
        if version not in self._references:
            record = self.registry.get(f"{self.spec.model}:{version}")
            data = as_str(as_object(record.properties.get("training_data")).get("id"))
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
        return Evaluation.from_json(record.properties).metric(self.spec.metric)

    def champion_classes(self, version: int) -> list[Any] | None:
        """The classes the champion's signature records (``None``: not recorded)."""
        try:
            record = self.registry.get(f"{self.spec.model}:{version}")
        except CtloopError:
            return None
        signature = record.properties.get("signature") or {}
        classes = signature.get("classes") if isinstance(signature, dict) else None
        return list(classes) if isinstance(classes, list) else None

    # -- features ----------------------------------------------------------------

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

    def nullable(self, frame: pd.DataFrame) -> list[str]:
        """The features the model accepts nulls in whatever training saw: ``train.nullable``
        and every column a feature ref fills (a point-in-time value may not exist, and the
        service lets a looked-up value be missing)."""
        refs = self.feature_refs()
        filled = set(refs.columns.values()) if refs else set()
        declared = list(self.spec.train.nullable)  # one not a feature: the trainer says so
        return [*declared, *(c for c in self.features(frame) if c in filled
                             and c not in declared)]

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

    # -- ingest ------------------------------------------------------------------

    def validate(self, span: Span, reference: Span | None) -> Ingested:
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
        return ingested(result)

    def ingested(self, run_id: str) -> Ingested | None:
        """A finished ingest run read back (a retried tick never ingests twice); ``None``
        when it did not finish (a controller killed mid-ingest: run it again)."""
        try:
            run = self.engine.store.get_run(run_id)
        except NotFound:
            return None
        if run.status.value not in ("succeeded", "failed"):
            return None
        return ingested(self.engine.load_result(run_id))

    def _pin_schema(self, span: Span, path: Path) -> None:
        """No pinned schema declared: pin the first span's types, required columns and
        feature domains (not its numeric ranges, which the next span may well leave, nor the
        label's classes)."""
        from ctloop.data.schema import infer_schema
        from ctloop.data.stats import compute_statistics

        frame = read_span(span.path, self.spec.event_time, self.spec.label,
                          f"Loop {self.spec.name!r}: ")
        tmp = self.home / f".{span.name}.parquet"
        frame.to_parquet(tmp, index=False)
        try:
            # The label is named: its classes are not a domain to enforce (a class that
            # appears later is news for the model, not a broken span).
            schema = infer_schema(compute_statistics(tmp, name=span.name),
                                  label=self.spec.label)
        finally:
            tmp.unlink(missing_ok=True)
        for column in schema.columns.values():
            column.min = column.max = None
        schema.save(path)

    # -- monitors ----------------------------------------------------------------

    def monitors(self, span: Span, log: PredictionLog, champion: int, report: SpanReport,
                 frame_columns: list[str], *, baseline: float | None, max_drop: float,
                 start: datetime, end: datetime) -> Signals:
        """Decay of the champion's live metric and drift from its training data over
        ``[start, end)`` of the log; stored labels that do not fit the model are skipped,
        with an anomaly on the span."""
        from ctloop.monitoring.monitors import check_decay, check_drift, record_result

        self.on_phase(span.name, "monitors")
        fitting = FittingLabels(log, self.task, self.champion_classes(champion))
        if baseline is None:  # never a registry look-up that fails the tick
            decay = MonitorResult(
                "decay", self.spec.model, False, None, None, None,
                {"start": start.isoformat(), "end": end.isoformat()}, 0,
                note=f"champion v{champion} has no {self.spec.metric} on its holdout to "
                     "compare with (undefined there, e.g. one class in its labels)",
                status="no_data")
        else:
            decay = check_decay(fitting, self.spec.model, metric=self.spec.metric,
                                baseline=baseline, max_drop=max_drop,
                                min_labels=self.spec.decay.min_labels, start=start, end=end,
                                store=self.engine.store, version=champion)
        columns = list(self.spec.drift.columns) or frame_columns
        try:
            reference = self.champion_reference(champion, columns)
        except NotFound as exc:  # imported from a bundle: its training data stayed behind
            drift = MonitorResult(
                kind="drift", model=self.spec.model, fired=False, value=None,
                threshold=self.spec.drift.share, baseline=None, n=0, status="no_data",
                window={"start": start.isoformat(), "end": end.isoformat()},
                note=f"{exc.message} Drift is judged from the next champion trained here.")
        else:
            drift = check_drift(log, self.spec.model, reference, start=start, end=end,
                                columns=columns, share=self.spec.drift.share,
                                min_rows=self.spec.drift.min_rows,
                                config=_distances(reference),
                                thresholds=self.spec.drift.thresholds)
        results = [decay, drift]
        estimate = None
        if "estimate" in self.spec.retrain_on and baseline is not None:
            estimate = self._estimate(fitting, champion, baseline, max_drop, start, end)
            if estimate is not None:
                results.append(estimate)
        for result in results:
            record_result(result, self.engine.store, self.engine.artifact_store)
        frame = fitting.read(model_name=self.spec.model, start=start, end=end,
                             with_labels=True)
        value, n = live_metrics(frame, self.spec.metric, self.task, fitting.classes
                                ).get(champion, (None, 0))
        report.live = {"version": champion, self.spec.metric: _round(value), "n": n}
        report.drift = {"share": _round(drift.value),
                        "features": drift.strings("drifted_features")}
        if fitting.skipped:
            report.anomalies.append(fitting.anomaly())
        return Signals(decay=decay, drift=drift, estimate=estimate)

    def _estimate(self, log: PredictionLog, champion: int, baseline: float | None,
                  max_drop: float, start: datetime, end: datetime) -> MonitorResult | None:
        """The champion's metric estimated from its scores alone (CBPE-style), before labels."""
        from ctloop.monitoring.estimate import ESTIMATED_METRICS, check_estimated_performance

        if self.spec.metric not in ESTIMATED_METRICS:
            return None
        return check_estimated_performance(
            log, self.spec.model, metric=self.spec.metric, baseline=baseline,
            max_drop=max_drop, min_rows=self.spec.drift.min_rows, start=start, end=end,
            store=self.engine.store, artifacts=self.engine.artifact_store, version=champion,
        )

    # -- canary ------------------------------------------------------------------

    def canary_live(self, span: Span, log: PredictionLog, champion: int, challenger: int,
                    *, start: datetime, end: datetime
                    ) -> tuple[float | None, float | None, int]:
        """The champion's and the challenger's live metric over the same period, and the
        challenger's labelled requests."""
        self.on_phase(span.name, "canary")
        fitting = FittingLabels(log, self.task, self.champion_classes(champion))
        frame = fitting.read(model_name=self.spec.model, start=start, end=end,
                             with_labels=True)
        per_version = live_metrics(frame, self.spec.metric, self.task, fitting.classes)
        champ, _ = per_version.get(champion, (None, 0))
        chal, n_chal = per_version.get(challenger, (None, 0))
        return champ, chal, n_chal

    def settle_canary(self, champion: int, challenger: int, promote: bool,
                      verdict: str) -> int | None:
        """Retire the challenger alias; promote it to champion when it won."""
        self.engine.store.move_alias(self.spec.model, "challenger", None,
                                     actor=f"loop {self.spec.name}",
                                     reason=("promoted: " if promote else "dropped: ") + verdict)
        if not promote:
            return None
        self.registry.promote(self.spec.model, challenger, alias="champion",
                              reason=f"canary: {verdict}", expected_version=champion)
        return challenger

    # -- training ----------------------------------------------------------------

    def pipeline(self) -> tuple[PipelineDef, str]:
        """The training pipeline: the loop's ``pipeline = "file.py:name"``, else
        ``loop_train``; the same one trains, and resumes a run a dead controller left."""
        if self._pipeline is None:
            if self.spec.pipeline:
                from ctloop.pipeline.loader import load_pipeline

                self._pipeline = load_pipeline(self.spec.pipeline)
            else:
                self._pipeline = (loop_train, TRAIN_SOURCE)
        return self._pipeline

    def train(self, span: Span, window: list[Span], reason: str, frame: pd.DataFrame, *,
              landed: list[str], claim: Callable[[str], None]) -> RunResult:
        """Run the training pipeline on ``window``; ``claim`` gets the run id as soon as
        the run exists (so a restart resumes it rather than training again)."""
        self.on_phase(span.name, "training")
        champion = self.alias()
        alias = "challenger" if (self.spec.canary and champion is not None) else "champion"
        params: dict[str, Any] = {
            "spans": [s.path for s in window], "event_time": self.spec.event_time,
            "label": self.spec.label, "features": self.features(frame),
            "model_name": self.spec.model, "gate": self.spec.gate.to_gate(self.spec.metric),
            "holdout": self.spec.holdout, "algorithm": self.spec.train.algorithm,
            "params": dict(self.spec.train.params), "trainer": self.spec.train.component or "",
            "seed": self.spec.seed, "alias": alias, "reason": reason,
            "feature_refs": list(refs.refs if (refs := self.feature_refs())
                                 else self.spec.train.feature_refs),
            "feature_definitions": self.feature_document(frame),
            "landed": landed if any(landed) else [],
            "task": self.spec.task or "",
            "nullable": self.nullable(frame),
        }
        pipeline, source = self.pipeline()
        if self.spec.pipeline:  # a user pipeline takes what it declares of the newer keys
            for key in ("feature_definitions", "landed", "task", "nullable"):
                if key not in pipeline.parameters and (key in ("task", "nullable")
                                                       or not params[key]):
                    params.pop(key)
        observer = _RunIdObserver(claim)
        self.engine.observer = observer
        try:
            return self.engine.run(pipeline, params, trigger="loop",
                                   trigger_info={"loop": self.spec.name, "span": span.name,
                                                 "reason": reason},
                                   source=source, tags={"loop": self.spec.name})
        finally:
            self.engine.observer = None

    def resume(self, span: Span, run_id: str) -> RunResult:
        """The training run a dead controller started: resumed with the loop's own
        pipeline, or read back when it finished."""
        self.on_phase(span.name, "resume")
        run = self.engine.store.get_run(run_id)
        if run.status.value == "succeeded":
            return self.engine.load_result(run_id)
        return self.engine.resume(run_id, self.pipeline()[0])

    def record_training(self, result: RunResult, report: SpanReport) -> int | None:
        """The gate's decision and the promotion, from a finished training run. The steps
        are found by what they return (the gate's verdict, the push), not by name, so a
        declared pipeline with steps of its own is read the same way."""
        self.on_phase(report.span, "gate")
        report.runs["train"] = result.run.id
        if not result.ok:
            _record_failure(result, report)
            return None
        returns = {n: v for n, s in result.steps.items()
                   if isinstance(v := s.outputs.get("return"), dict)}
        pushed = next((v for v in returns.values() if "promoted" in v), {})
        judged_step = next((n for n, v in returns.items()
                            if "blessed" in v and "promoted" not in v), None)
        gate = _verdict(returns[judged_step] if judged_step else pushed)
        evaluation = self._evaluation(result, judged_step)
        if evaluation is not None:
            self._scores(gate, evaluation, report)
        report.gate = gate
        gate["version"] = pushed.get("version")
        if gate.get("held") and report.bootstrap:  # no champion until one can be judged
            report.waiting = (f"cannot evaluate on {', '.join(report.window or [])}: "
                              f"{gate.get('reason', 'the metric is undefined')}")
        if pushed.get("promoted") and pushed.get("alias") == "champion":
            return int(pushed["version"])
        if pushed.get("promoted"):
            gate["challenger"] = pushed.get("version")
        return None

    def _scores(self, gate: GateJson, evaluation: dict[str, Any], report: SpanReport) -> None:
        """The candidate's and the champion's metric on the holdout; a note when it is
        undefined there (one class), instead of a bare ``None``."""
        for who in ("candidate", "champion"):
            metrics = evaluation.get(who, {}).get("overall", {}).get("metrics", {})
            value = metrics.get(self.spec.metric, {})
            gate[who] = _round(value.get("value")) if isinstance(value, dict) else None
        undefined = [w for w in ("candidate", "champion") if w in evaluation
                     and gate.get(w) is None]
        if undefined:
            span = report.window[-1] if report.window else report.span
            gate["note"] = (f"{self.spec.metric} is undefined on the holdout of span {span} "
                            f"for the {' and the '.join(undefined)} (e.g. one class in its "
                            "labels)")

    def _evaluation(self, result: RunResult, step: str | None) -> dict[str, Any] | None:
        """The candidate's and champion's evaluation the gate judged (``models`` of the
        ``evaluation`` artifact), from the judging step, else any step that wrote one."""
        arts = result.artifacts
        art = (arts.get(step, {}).get("evaluation") if step else None) or next(
            (a["evaluation"] for a in arts.values() if "evaluation" in a), None)
        if art is None:
            return None
        path = self.engine.artifact_store.get(art.uri, art.sha256, name=art.id)
        try:
            models = json.loads(Path(path).read_text()).get("models", {})
        except (OSError, ValueError, AttributeError):
            return None
        return models if isinstance(models, dict) else None

    # -- the never-retrained model -------------------------------------------------

    def baseline_score(self, version: int, frame: pd.DataFrame) -> dict[str, Any]:
        """The never-retrained model (the first champion) scored on a span's rows."""
        model = self._baseline_model(version)
        frame = self.with_features(frame)
        score = model.predict(frame[self.features(frame)])
        classes = getattr(model, "classes", None)
        value = score_metric(frame[self.spec.label], score, self.spec.metric, self.task,
                             list(classes) if classes else None)
        return {"version": version, self.spec.metric: _round(value), "n": len(frame)}

    def _baseline_model(self, version: int) -> Any:
        if self._baseline is None or self._baseline[0] != version:
            loaded = self.registry.load(f"{self.spec.model}:{version}",
                                        self.engine.artifact_store)
            self._baseline = (version, loaded)
        return self._baseline[1]


def _record_failure(result: RunResult, report: SpanReport) -> None:
    """A failed training run on the report: a wait when the data cannot train a model yet
    (``NotTrainable``), else the failed step and its error."""
    failed = next((s for s in result.steps.values() if s.status.value == "failed"), None)
    why = not_trainable(failed.traceback, failed.error) if failed else None
    if why is not None:
        report.gate = None
        report.waiting = f"cannot train on {', '.join(report.window or [])}: {why}"
        return
    where = failed.name if failed else "run"
    error = " ".join(((failed.error if failed else None) or result.run.error
                      or "failed").split())
    report.gate = {"blessed": False, "error": f"step {where} failed: {error[:300]}"}


def _verdict(judged: dict[str, Any]) -> GateJson:
    """The gate's verdict as the step that judged returned it."""
    gate: GateJson = {"blessed": bool(judged.get("blessed")),
                      "failed": [str(f) for f in judged.get("failed", [])],
                      "champion_version": judged.get("champion_version")}
    if not gate["blessed"] and judged.get("summary"):
        gate["reason"] = str(judged["summary"])
    if judged.get("held"):
        gate["held"] = True
    return gate


def not_trainable(traceback: str | None, error: str | None) -> str | None:
    """The message of a step that raised ``NotTrainable``, else ``None``."""
    name, message = raised(traceback)
    if name != f"{NotTrainable.__module__}.{NotTrainable.__name__}":
        return None
    return " ".join((error or message).split())


def ingested(result: RunResult) -> Ingested:
    """An ingest run's outcome: valid, or quarantined with its anomalies."""
    landed = result.artifacts.get("land_span", {}).get("out")
    landed_id = landed.id if landed is not None else None
    if result.ok:
        return Ingested(True, result.run.id, landed_id, [])
    failed = [s for s in result.steps.values() if s.status.value == "failed"]
    why = infrastructure_failure(failed, result.run.error)
    if why is not None:  # not the data's fault: never a quarantine (loop/failures.py)
        raise IngestFailed(
            f"The ingest run {result.run.id} failed for a reason that is not the data: "
            f"{why.splitlines()[0]}. The span is not quarantined; it is tried again.")
    step = result.steps.get("validate")
    if step is not None and step.status.value == "failed":
        lines = (step.error or "validation failed").splitlines()
        anomalies = [line.strip() for line in lines[1:] if line.strip()] or lines[:1]
    else:
        anomalies = [result.run.error or "the span could not be ingested"]
    return Ingested(False, result.run.id, landed_id, anomalies)


class _RunIdObserver:
    """Hands a training run's id to the loop's memory as soon as the run exists, so a
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
