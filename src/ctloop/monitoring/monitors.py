"""Monitors over the prediction log: feature drift and performance decay.

Both read one window of the log and answer with a :class:`MonitorResult`.
They reuse ``ctloop.data.compute_drift`` and ``ctloop.models`` metrics, so a
monitor and a pipeline's validation step judge drift and quality the same
way. Too little data (no rows in the window, too few labels, no reference to
compare with) is an answer, not an error, but never "ok": the result's
``status`` is ``"no_data"`` and its ``note`` says why, so a controller polling
long before the first labels arrive neither fires nor reports health it has
not seen.

Only traffic the model answered counts: shadow predictions (``served`` false)
and rejected or failed requests (HTTP status 4xx/5xx) are left out.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeAlias

import numpy as np

from ctloop.core.errors import NotFound, UserInputError
from ctloop.core.jsontypes import (
    JSONObject,
    JSONValue,
    as_list,
    as_number,
    as_object,
    as_str,
    as_strs,
)
from ctloop.data.stats import DatasetStatistics
from ctloop.models.evaluation_record import Evaluation
from ctloop.requestlog.records import PredictionLog

if TYPE_CHECKING:
    import numpy.typing as npt
    import pandas as pd

    from ctloop.artifacts.base import ArtifactStore
    from ctloop.data.drift import DriftReport
    from ctloop.metadata.base import ArtifactRecord, LineageStore, ModelStore, ModelVersionRecord
    from ctloop.models.tasks import ClassLabel, Task

__all__ = [
    "FEATURE_PREFIX",
    "MONITOR_STATUSES",
    "MonitorResult",
    "MonitorStatus",
    "baseline_from_registry",
    "check_decay",
    "check_drift",
    "check_output_drift",
    "fires_word",
    "load_reference",
    "logged_scores",
    "record_result",
    "served_outputs",
    "served_rows",
    "serving_features",
    "task_from_log",
    "task_from_registry",
]

FEATURE_PREFIX = "f_"
MonitorStatus = Literal["ok", "fired", "no_data"]
MONITOR_STATUSES: tuple[MonitorStatus, ...] = ("ok", "fired", "no_data")
DriftReference: TypeAlias = "DatasetStatistics | pd.DataFrame | str | Path"
"""What drift compares a window with: statistics, the rows, or a file of either."""
DriftSettings: TypeAlias = Mapping[str, JSONObject]
"""Per feature ``{"method": ..., "threshold": ...}``, as ``compute_drift`` reads them."""


@dataclass(frozen=True)
class MonitorResult:
    """One monitor's verdict over one window of the prediction log.

    ``status`` is ``"fired"`` (the condition holds), ``"ok"`` (it was judged and
    does not hold) or ``"no_data"`` (it could not be judged; ``note`` says why).
    ``fired`` is ``status == "fired"``, kept for callers that only need that.
    """

    kind: str  # "drift" | "output_drift" | "decay" | "estimate" | "outliers" | "skew"
    model: str
    fired: bool
    value: float | None  # share of drifted features / the metric on labelled rows
    threshold: float | None  # fires at or beyond this
    baseline: float | None  # decay: the metric it is compared with
    window: dict[str, str | None]  # {"start": iso, "end": iso}
    n: int  # rows (drift) or labelled rows (decay) looked at
    details: dict[str, JSONValue] = field(default_factory=dict)
    note: str = ""  # why it could not judge, when it could not
    status: MonitorStatus = "ok"

    def __post_init__(self) -> None:
        if self.status not in MONITOR_STATUSES:
            raise ValueError(f"status must be one of {MONITOR_STATUSES}. Got {self.status!r}.")
        if self.fired and self.status != "fired":
            object.__setattr__(self, "status", "fired")
        if self.status == "fired" and not self.fired:
            object.__setattr__(self, "fired", True)

    @property
    def no_data(self) -> bool:
        return self.status == "no_data"

    @property
    def band(self) -> tuple[float | None, float | None] | None:
        """An estimate's interval (``details["band"]``), when it has one."""
        band = as_list(self.details.get("band"))
        return (as_number(band[0]), as_number(band[1])) if len(band) == 2 else None

    def strings(self, key: str) -> list[str]:
        """The list of names kept under ``details[key]`` (drifted features, anomalies)."""
        return as_strs(self.details.get(key))

    def summary(self) -> str:
        """One line for people and logs."""
        state = {"fired": "FIRED", "ok": "ok", "no_data": "NO DATA"}[self.status]
        span = f"{self.window.get('start') or '…'} → {self.window.get('end') or '…'}"
        if self.no_data:
            return f"{self.kind} {self.model}: {state}: {self.note}; n={self.n}; {span}"
        if self.kind == "output_drift":
            body = (f"drifted: {', '.join(self.strings('drifted')) or 'none'} of "
                    f"{', '.join(self.strings('columns'))}")
        elif self.kind == "drift":
            body = (f"{_fmt(self.value)} of features drifted (fires at {_fmt(self.threshold)})"
                    f"; drifted: {', '.join(self.strings('drifted_features')) or 'none'}")
        elif self.kind in ("decay", "estimate"):
            metric = as_str(self.details.get("metric"), "metric")
            side = "below" if self.details.get("higher_is_better", True) else "above"
            prefix = "estimated " if self.kind == "estimate" else ""
            band = self.band
            band_text = f" [{_fmt(band[0])}, {_fmt(band[1])}]" if band else ""
            body = (f"{prefix}{metric} {_fmt(self.value)}{band_text} vs baseline "
                    f"{_fmt(self.baseline)} (fires {side} {_fmt(self.threshold)})")
        else:
            body = f"{_fmt(self.value)} (fires above {_fmt(self.threshold)})"
        note = f" [{self.note}]" if self.note else ""
        return f"{self.kind} {self.model}: {state}: {body}; n={self.n}; {span}{note}"

    def to_dict(self) -> dict[str, JSONValue]:
        return {**asdict(self), "summary": self.summary()}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def verdict(kind: str, model: str, status: MonitorStatus, value: float | None,
            note: str = "", details: dict[str, JSONValue] | None = None, *,
            window: dict[str, str | None], n: int, threshold: float | None = None,
            baseline: float | None = None) -> MonitorResult:
    """A monitor's result whose ``fired`` follows its ``status`` (one constructor for the
    monitors that judge in several places)."""
    return MonitorResult(kind=kind, model=model, fired=status == "fired", value=value,
                         threshold=threshold, baseline=baseline, window=window, n=n,
                         details=details or {}, note=note, status=status)


def _window(start: datetime | None, end: datetime | None) -> dict[str, str | None]:
    def iso(v: datetime | None) -> str | None:
        if v is None:
            return None
        return (v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)).isoformat()

    return {"start": iso(start), "end": iso(end)}


# -- drift ------------------------------------------------------------------


def load_reference(reference: DriftReference) -> DatasetStatistics | pd.DataFrame | Path:
    """A drift reference: statistics, a frame, a parquet/CSV path or a statistics JSON file."""
    import pandas as pd

    if isinstance(reference, DatasetStatistics | pd.DataFrame):
        return reference
    if isinstance(reference, str | Path):
        path = Path(reference).expanduser()
        if not path.exists():
            raise NotFound(
                f"Drift reference {str(reference)!r} does not exist. Pass the training data "
                "(parquet/CSV file or folder) or a statistics JSON file."
            )
        if path.suffix == ".json":
            try:
                return DatasetStatistics.from_dict(json.loads(path.read_text()))
            except (ValueError, KeyError, TypeError) as exc:
                raise UserInputError(
                    f"{path} is not a ctloop statistics JSON file ({exc}). Pass the data "
                    "itself or a file written by `ctloop data stats`."
                ) from exc
        return path
    raise UserInputError(
        f"A drift reference must be a DataFrame, a file path or DatasetStatistics. "
        f"Got {type(reference).__name__}."
    )


def served_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows the model answered: no shadow predictions, no rejected or failed requests."""
    keep = np.ones(len(frame), dtype=bool)
    if "served" in frame.columns:
        keep &= frame["served"].fillna(True).to_numpy(dtype=bool)
    if "status" in frame.columns:
        keep &= frame["status"].fillna(200).to_numpy(dtype=np.int64) < 400
    return frame[keep] if not keep.all() else frame


def serving_features(frame: pd.DataFrame) -> pd.DataFrame:
    """The ``f_*`` columns of a log frame, under their feature names."""
    cols = [c for c in frame.columns if c.startswith(FEATURE_PREFIX)]
    return frame[cols].rename(columns=lambda c: c[len(FEATURE_PREFIX):])


def check_drift(
    log: PredictionLog,
    model_name: str,
    reference: DriftReference | None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    columns: Iterable[str] | None = None,
    share: float = 0.5,
    config: DriftSettings | None = None,
    min_rows: int = 100,
    exclude: Iterable[str] = (),
    weights: Mapping[str, float] | None = None,
    thresholds: str = "fixed",
) -> MonitorResult:
    """Did the features served in ``[start, end)`` drift from ``reference``?

    Fires when at least ``share`` of the tested features drifted (each judged
    by ``compute_drift``'s default method unless ``config`` says otherwise;
    ``weights``, e.g. the model's feature importance, weigh the share).
    ``thresholds="stationary"`` raises each feature's threshold to the reference's own
    motion between chunks the size of the window (``stationary_thresholds``), so
    seasons the reference already spans are not drift; it needs the reference's rows
    (statistics alone keep the fixed thresholds, and the details say so).
    ``no_data`` without a reference or with fewer than ``min_rows`` served rows.
    """
    from ctloop.data.drift import compute_drift, stationary_thresholds

    window = _window(start, end)

    def no_data(note: str, n: int = 0) -> MonitorResult:
        return MonitorResult(
            kind="drift", model=model_name, fired=False, value=None, threshold=share,
            baseline=None, window=window, n=n, note=note, status="no_data",
        )

    if reference is None:
        return no_data("no reference to compare with: pass the training data or its statistics")
    if isinstance(reference, str | Path) and not Path(reference).expanduser().exists():
        return no_data(f"the reference {str(reference)!r} does not exist")
    frame = served_rows(log.read(model_name=model_name, start=start, end=end))
    current = serving_features(frame)
    if len(current) < min_rows:
        return no_data(f"only {len(current)} served rows in the window, need {min_rows}",
                       len(current))
    if thresholds not in ("fixed", "stationary"):
        raise UserInputError(
            f"Drift thresholds must be 'fixed' or 'stationary'. Got {thresholds!r}.")
    ref, rows = _drift_reference(reference, stationary=thresholds == "stationary")
    shared = _shared_features(columns, current, ref, model_name)
    calibrated = thresholds == "stationary" and rows is not None
    if rows is not None and calibrated:
        config = stationary_thresholds(rows, shared, chunk_rows=len(current), config=config)
    report = compute_drift(ref, current[shared], columns=shared, config=config,
                           drift_share=share, exclude=exclude, weights=weights)
    details = report.summary()
    details["thresholds"] = "stationary" if calibrated else "fixed"
    if thresholds == "stationary" and not calibrated:
        details["thresholds_note"] = ("the reference is statistics without rows: its "
                                      "own motion cannot be measured; fixed thresholds")
    details["reference"] = report.reference
    details["top_drifted"] = _top_drifted(report)
    return MonitorResult(
        kind="drift", model=model_name, fired=report.dataset_drifted,
        value=report.share_drifted, threshold=share, baseline=None, window=window,
        n=len(current), details=details,
        status="fired" if report.dataset_drifted else "ok",
    )


def _drift_reference(reference: DriftReference, *, stationary: bool
                     ) -> tuple[DatasetStatistics, pd.DataFrame | None]:
    """The reference's statistics, and its rows when it has them (a frame, or a file read
    back for stationary thresholds, which measure the rows' own motion)."""
    import pandas as pd

    from ctloop.data.sources import read_table
    from ctloop.data.stats import compute_statistics

    loaded = load_reference(reference)
    rows = loaded if isinstance(loaded, pd.DataFrame) else None
    if isinstance(loaded, Path) and stationary:
        rows = read_table(loaded).to_pandas()
    ref = loaded if isinstance(loaded, DatasetStatistics) else compute_statistics(
        rows if rows is not None else loaded)
    return ref, rows


def _shared_features(columns: Iterable[str] | None, current: pd.DataFrame,
                     ref: DatasetStatistics, model_name: str) -> list[str]:
    """The wanted features (default: every served one) that the reference has too."""
    wanted = list(columns) if columns is not None else list(current.columns)
    shared = [c for c in wanted if c in ref.columns and c in current.columns]
    if not shared:
        raise UserInputError(
            f"The reference and the features served by {model_name!r} share no columns "
            f"(served: {sorted(current.columns)}; reference: {sorted(ref.columns)}). "
            "Pass the model's training data as the reference."
        )
    return shared


def _top_drifted(report: DriftReport, k: int = 5) -> list[dict[str, JSONValue]]:
    """The k features furthest beyond their thresholds (score / threshold), for reports."""
    rows: list[tuple[float, dict[str, JSONValue]]] = []
    for f in report.tested:
        if f.score is None or not f.threshold:
            continue
        ratio = (f.threshold / max(f.score, 1e-300)) if f.method in ("ks", "chisquare") else (
            f.score / f.threshold)
        rows.append((-float(ratio), {"feature": f.column, "score": f.score,
                                     "threshold": f.threshold, "ratio": float(ratio),
                                     "drifted": f.drifted}))
    rows.sort(key=lambda r: r[0])  # stable: ties keep the report's order
    return [row for _, row in rows[:k]]


# -- drift of what the model answered and of the labels ----------------------


def served_outputs(frame: pd.DataFrame, task: Task,
                   classes: list[ClassLabel] | None = None) -> pd.DataFrame:
    """A log window's ``prediction`` and ``label`` as drift reads them, for every task.

    Binary: P(positive) and the 0/1 label; regression: the values; multiclass: the
    predicted class (the likeliest of the logged probabilities) and the label, as text.
    A column the window cannot give (no probabilities, no labels yet) is left out.
    """
    import pandas as pd

    out: dict[str, npt.NDArray[np.float64] | npt.NDArray[np.object_]] = {}
    if task == "multiclass":
        scores = logged_scores(frame, "multiclass")
        if scores is not None:
            names = [str(c) for c in (classes or range(scores.shape[1]))]
            if len(names) == scores.shape[1]:
                out["prediction"] = np.asarray(names, dtype=object)[np.argmax(scores, axis=1)]
    elif "prediction" in frame.columns:
        out["prediction"] = frame["prediction"].to_numpy(dtype=np.float64)
    result = pd.DataFrame(out, index=frame.index)
    if "label" in frame.columns and frame["label"].notna().any():
        labels = frame["label"]
        result["label"] = (labels.map(lambda v: None if v is None or v != v else
                                      str(v if not isinstance(v, float) or not v.is_integer()
                                          else int(v)))
                           if task == "multiclass" else labels.astype("float64"))
    return result


def check_output_drift(
    log: PredictionLog,
    model_name: str,
    reference: pd.DataFrame,
    *,
    task: Task,
    classes: list[ClassLabel] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    min_rows: int = 100,
    config: DriftSettings | None = None,
) -> MonitorResult:
    """Did the model's answers (or the labels) in ``[start, end)`` drift from ``reference``?

    ``reference`` has ``prediction`` and/or ``label`` columns in :func:`served_outputs`'
    form: the model's answers on its holdout, or an earlier window of the log
    (``served_outputs(log.read(...), task, classes)``). Fires when either drifted, each
    judged by ``compute_drift``'s default for its type (numbers: distance, classes:
    their shares), so it means the same for every task.
    """
    from ctloop.data.drift import compute_drift

    window = _window(start, end)
    frame = served_rows(log.read(model_name=model_name, start=start, end=end, with_labels=True))
    current = served_outputs(frame, task, classes)

    def no_data(note: str, n: int = 0) -> MonitorResult:
        return MonitorResult(kind="output_drift", model=model_name, fired=False, value=None,
                             threshold=None, baseline=None, window=window, n=n, note=note,
                             status="no_data")

    shared = [c for c in ("prediction", "label") if c in current.columns
              and c in reference.columns and current[c].notna().sum() >= min_rows]
    if not shared:
        return no_data(f"fewer than {min_rows} served answers or labels in the window that the "
                       "reference also has", len(current))
    report = compute_drift(reference[shared], current[shared], columns=shared, config=config,
                           drift_share=1.0 / len(shared))
    drifted = [f.column for f in report.tested if f.drifted]
    details = {**report.summary(), "task": task, "columns": shared, "drifted": drifted}
    return MonitorResult(
        kind="output_drift", model=model_name, fired=bool(drifted),
        value=report.share_drifted, threshold=1.0 / len(shared), baseline=None, window=window,
        n=len(current), details=details, status="fired" if drifted else "ok",
    )


# -- decay ------------------------------------------------------------------


def _registry_record(store: ModelStore, model_name: str, version: int | None
                     ) -> ModelVersionRecord:
    """The version's registry record (default: the champion, else the latest)."""
    from ctloop.registry import ModelRegistry

    registry = ModelRegistry(store)
    if version is not None:
        return registry.get(f"{model_name}:{version}")
    aliases = registry.aliases(model_name) if registry.versions(model_name) else {}
    return registry.get(f"{model_name}@champion" if "champion" in aliases else model_name)


def baseline_from_registry(
    store: ModelStore, model_name: str, *, metric: str, version: int | None = None
) -> tuple[float, int]:
    """The metric recorded at evaluation for a version (default: champion, else latest)."""
    record = _registry_record(store, model_name, version)
    value = Evaluation.from_json(record.properties).metric(metric)
    if value is None:
        raise UserInputError(
            f"Model {model_name!r} version {record.version} has no recorded {metric!r} "
            "evaluation. Pass a baseline number (--baseline) or register an evaluated version."
        )
    return float(value), record.version


def task_from_registry(
    store: ModelStore, model_name: str, version: int | None = None
) -> tuple[Task | None, list[ClassLabel] | None]:
    """The task and classes a registered version's signature records, (None, None) if none."""
    from ctloop.models.tasks import class_label, normalize_task

    try:
        record = _registry_record(store, model_name, version)
    except NotFound:
        return None, None
    signature = as_object(record.properties.get("signature"))
    declared = signature.get("task")
    task = normalize_task(str(declared)) if declared else None
    classes = [class_label(c) for c in as_list(signature.get("classes"))]
    return task, (classes or None)


def task_from_log(labelled: pd.DataFrame) -> Task:
    """The task a window's labelled rows imply: per-class probabilities multiclass, 0/1
    labels binary, anything else regression."""
    if "probabilities" in labelled.columns and labelled["probabilities"].notna().any():
        return "multiclass"
    labels = labelled["label"].dropna()
    if labels.empty or set(np.unique(labels.to_numpy(dtype=object)).tolist()) <= {0, 1}:
        return "binary"
    if not all(isinstance(v, int | float | np.number) for v in labels.head(50).tolist()):
        return "multiclass"
    return "regression"


def logged_scores(frame: pd.DataFrame, task: Task) -> npt.NDArray[np.float64] | None:
    """What the model answered per row in the shape metrics take: (n,) or, multiclass, (n, k)
    from the ``probabilities`` column; None when the log holds no per-class probabilities."""
    if task != "multiclass":
        return frame["prediction"].to_numpy(dtype=np.float64)
    if "probabilities" not in frame.columns or frame["probabilities"].isna().any():
        return None
    rows = [np.asarray(p, dtype=np.float64) for p in frame["probabilities"].tolist()]
    if not rows or len({r.shape for r in rows}) != 1:
        return None
    return np.vstack(rows)


def _class_indices(labels: Iterable[object]) -> bool:
    """Whether labels are whole numbers, readable as class indices without the classes."""
    return all(isinstance(v, int | float | np.number) and float(v).is_integer()
               for v in labels)


def fires_word(metric: str) -> str:
    """``below`` or ``above``: where a decay threshold of ``metric`` lies from its baseline."""
    from ctloop.models.tasks import higher_is_better

    return "below" if higher_is_better(metric) else "above"


def check_decay(
    log: PredictionLog,
    model_name: str,
    *,
    metric: str | None = None,
    baseline: float | None = None,
    max_drop: float = 0.05,
    min_labels: int = 200,
    start: datetime | None = None,
    end: datetime | None = None,
    store: ModelStore | None = None,
    version: int | None = None,
    threshold: float = 0.5,
    classes: list[ClassLabel] | None = None,
) -> MonitorResult:
    """Did ``metric`` on labelled predictions get worse than ``baseline`` by more than ``max_drop``?

    "Worse" follows the metric: below the baseline for roc_auc or accuracy, above it for
    rmse or log loss. Without a ``metric``, the model's own headline metric (its task's:
    roc_auc, accuracy, rmse) is used. Without a ``baseline`` number, the evaluation
    recorded in the registry for the version that served most of the window is the
    baseline. Multiclass windows need the logged per-class ``probabilities`` and the
    model's ``classes`` (default: the registry's signature) to read string labels.
    """
    from ctloop.models.tasks import HIGHER_IS_BETTER, default_metric

    if metric is not None and metric not in HIGHER_IS_BETTER:
        raise UserInputError(
            f"Unknown metric {metric!r}. Use one of {', '.join(HIGHER_IS_BETTER)}."
        )
    if max_drop < 0:
        raise UserInputError(f"max_drop must be >= 0. Got {max_drop!r}.")
    window = _window(start, end)
    frame = served_rows(log.read(model_name=model_name, start=start, end=end, with_labels=True))
    labelled, served_version = _labelled(frame, version)
    if store is None and baseline is None:
        from ctloop.metadata import open_metadata_store

        store = open_metadata_store()
    task, classes = _decay_task(store, model_name, served_version, metric, labelled, classes)
    metric = metric or default_metric(task)
    base_version = None
    if baseline is None:
        assert store is not None
        baseline, base_version = baseline_from_registry(
            store, model_name, metric=metric, version=served_version)
    higher = HIGHER_IS_BETTER[metric]
    limit = baseline - max_drop if higher else baseline + max_drop
    details: dict[str, JSONValue] = {
        "metric": metric, "max_drop": max_drop, "higher_is_better": higher,
        "rows_logged": len(frame), "baseline_version": base_version,
        "served_version": served_version, "task": task,
    }
    value, note = _realised(labelled, task, metric, min_labels=min_labels,
                            threshold=threshold, classes=classes)
    fired = False
    if value is not None:
        details["drop"] = (baseline - value) if higher else (value - baseline)
        fired = value < limit if higher else value > limit
    status: MonitorStatus = "fired" if fired else ("no_data" if value is None else "ok")
    return MonitorResult(kind="decay", model=model_name, fired=fired, value=value,
                         threshold=limit, baseline=baseline, window=window,
                         n=len(labelled), details=details, note=note, status=status)


def _labelled(frame: pd.DataFrame, version: int | None) -> tuple[pd.DataFrame, int | None]:
    """The window's labelled rows (of ``version`` when given) and the version that served
    them: ``version``, else the one that served most of them."""
    labelled = frame[frame["label"].notna()]
    if version is not None:
        labelled = labelled[labelled["model_version"] == version]
    served_version = version
    if served_version is None and len(labelled):
        served_version = int(labelled["model_version"].mode().iloc[0])
    return labelled, served_version


def _decay_task(store: ModelStore | None, model_name: str, version: int | None,
                metric: str | None, labelled: pd.DataFrame,
                classes: list[ClassLabel] | None) -> tuple[Task, list[ClassLabel] | None]:
    """The task and classes the decay is judged in: the registered signature's (the metric
    checked against it), else the metric's task, else what the labelled rows imply."""
    from ctloop.models.tasks import check_metric, task_of_metric

    task, known = (task_from_registry(store, model_name, version)
                   if store is not None else (None, None))
    if task is not None:
        if metric is not None:
            check_metric(task, metric, where=f"Model {model_name!r}: the metric")
        return task, classes or known
    task = (task_of_metric(metric) if metric else None) or task_from_log(labelled)
    return task, classes or known


def _realised(labelled: pd.DataFrame, task: Task, metric: str, *, min_labels: int,
              threshold: float, classes: list[ClassLabel] | None) -> tuple[float | None, str]:
    """The metric on the labelled rows, or None and why it cannot be computed."""
    from ctloop.models.metrics import metric_value

    if len(labelled) < min_labels:
        return None, f"only {len(labelled)} labelled rows, need {min_labels}"
    score = logged_scores(labelled, task)
    if score is None:
        return None, "the log holds no per-class probabilities for these rows"
    if task == "multiclass" and classes is None and not _class_indices(labelled["label"].tolist()):
        return None, ("the model's classes are unknown (no registered signature): "
                      "pass classes to read its labels")
    y = labelled["label"].to_numpy() if task == "multiclass" else labelled["label"].to_numpy(
        dtype=np.float64)
    value = metric_value(y, score, metric, threshold=threshold, classes=classes)
    if value is None:
        return None, f"{metric} is undefined on these labels (one class only)"
    return value, ""


# -- recording --------------------------------------------------------------


def _compact(details: dict[str, JSONValue]) -> dict[str, JSONValue]:
    """The small part of a result's details worth keeping as searchable properties."""
    keep = ("metric", "band", "drifted_features", "top_drifted", "outlier_rate", "estimates",
            "missing_inputs", "realized")
    return {k: details[k] for k in keep if k in details}



def record_result(
    result: MonitorResult, store: LineageStore, artifacts: ArtifactStore
) -> ArtifactRecord:
    """Keep a result as a ``MonitorReport`` JSON artifact, listed by ``ctloop artifacts list``."""
    from ctloop.metadata.base import ArtifactRecord

    body = json.dumps(result.to_dict(), indent=2, sort_keys=True, default=str)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{result.kind}-{result.model}.json"
        path.write_text(body)
        stored = artifacts.put(path)
    props: dict[str, JSONValue] = {
        "summary": result.summary(), "kind": result.kind, "model": result.model,
        "fired": result.fired, "status": result.status, "details": _compact(result.details),
        "value": result.value, "threshold": result.threshold,
        "baseline": result.baseline, "n": result.n, "window": result.window,
        "note": result.note,
    }
    return store.add_artifact(ArtifactRecord(
        id=uuid.uuid4().hex, type="MonitorReport", uri=stored.uri, sha256=stored.sha256,
        size=stored.size, name=f"{result.kind}:{result.model}", properties=props,
        created_at=datetime.now(UTC),
    ))
