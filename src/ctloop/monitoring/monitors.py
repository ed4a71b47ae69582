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
import math
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ctloop.core.errors import NotFound, UserInputError
from ctloop.data.stats import DatasetStatistics
from ctloop.monitoring.base import PredictionLog

if TYPE_CHECKING:
    import pandas as pd

    from ctloop.artifacts.base import ArtifactStore
    from ctloop.metadata.base import ArtifactRecord, MetadataStore

__all__ = [
    "FEATURE_PREFIX",
    "MONITOR_STATUSES",
    "MonitorResult",
    "MonitorStatus",
    "baseline_from_registry",
    "check_decay",
    "check_drift",
    "load_reference",
    "record_result",
    "served_rows",
    "serving_features",
]

FEATURE_PREFIX = "f_"
MonitorStatus = Literal["ok", "fired", "no_data"]
MONITOR_STATUSES: tuple[MonitorStatus, ...] = ("ok", "fired", "no_data")


@dataclass(frozen=True)
class MonitorResult:
    """One monitor's verdict over one window of the prediction log.

    ``status`` is ``"fired"`` (the condition holds), ``"ok"`` (it was judged and
    does not hold) or ``"no_data"`` (it could not be judged; ``note`` says why).
    ``fired`` is ``status == "fired"``, kept for callers that only need that.
    """

    kind: str  # "drift" | "decay" | "estimate" | "outliers" | "skew"
    model: str
    fired: bool
    value: float | None  # share of drifted features / the metric on labelled rows
    threshold: float | None  # fires at or beyond this
    baseline: float | None  # decay: the metric it is compared with
    window: dict[str, str | None]  # {"start": iso, "end": iso}
    n: int  # rows (drift) or labelled rows (decay) looked at
    details: dict[str, Any] = field(default_factory=dict)
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

    def summary(self) -> str:
        """One line for people and logs."""
        state = {"fired": "FIRED", "ok": "ok", "no_data": "NO DATA"}[self.status]
        span = f"{self.window.get('start') or '…'} → {self.window.get('end') or '…'}"
        if self.no_data:
            return f"{self.kind} {self.model}: {state}: {self.note}; n={self.n}; {span}"
        if self.kind == "drift":
            body = (f"{_fmt(self.value)} of features drifted (fires at {_fmt(self.threshold)})"
                    f"; drifted: {', '.join(self.details.get('drifted_features', [])) or 'none'}")
        elif self.kind in ("decay", "estimate"):
            metric = self.details.get("metric", "metric")
            side = "below" if self.details.get("higher_is_better", True) else "above"
            prefix = "estimated " if self.kind == "estimate" else ""
            band = self.details.get("band")
            band_text = f" [{_fmt(band[0])}, {_fmt(band[1])}]" if band else ""
            body = (f"{prefix}{metric} {_fmt(self.value)}{band_text} vs baseline "
                    f"{_fmt(self.baseline)} (fires {side} {_fmt(self.threshold)})")
        else:
            body = f"{_fmt(self.value)} (fires above {_fmt(self.threshold)})"
        note = f" [{self.note}]" if self.note else ""
        return f"{self.kind} {self.model}: {state}: {body}; n={self.n}; {span}{note}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary()}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _window(start: datetime | None, end: datetime | None) -> dict[str, str | None]:
    def iso(v: datetime | None) -> str | None:
        if v is None:
            return None
        return (v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)).isoformat()

    return {"start": iso(start), "end": iso(end)}


# -- drift ------------------------------------------------------------------


def load_reference(reference: Any) -> DatasetStatistics | pd.DataFrame | Path:
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
    reference: Any,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    columns: Iterable[str] | None = None,
    share: float = 0.5,
    config: Mapping[str, Mapping[str, Any]] | None = None,
    min_rows: int = 100,
    exclude: Iterable[str] = (),
    weights: Mapping[str, float] | None = None,
) -> MonitorResult:
    """Did the features served in ``[start, end)`` drift from ``reference``?

    Fires when at least ``share`` of the tested features drifted (each judged
    by ``compute_drift``'s default method unless ``config`` says otherwise;
    ``weights``, e.g. the model's feature importance, weigh the share).
    ``no_data`` without a reference or with fewer than ``min_rows`` served rows.
    """
    from ctloop.data.drift import compute_drift
    from ctloop.data.stats import compute_statistics

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
    ref = load_reference(reference)
    if not isinstance(ref, DatasetStatistics):
        ref = compute_statistics(ref)
    wanted = list(columns) if columns is not None else list(current.columns)
    shared = [c for c in wanted if c in ref.columns and c in current.columns]
    if not shared:
        raise UserInputError(
            f"The reference and the features served by {model_name!r} share no columns "
            f"(served: {sorted(current.columns)}; reference: {sorted(ref.columns)}). "
            "Pass the model's training data as the reference."
        )
    report = compute_drift(ref, current[shared], columns=shared, config=config,
                           drift_share=share, exclude=exclude, weights=weights)
    details = report.summary()
    details["reference"] = report.reference
    details["top_drifted"] = _top_drifted(report)
    return MonitorResult(
        kind="drift", model=model_name, fired=report.dataset_drifted,
        value=report.share_drifted, threshold=share, baseline=None, window=window,
        n=len(current), details=details,
        status="fired" if report.dataset_drifted else "ok",
    )


def _top_drifted(report: Any, k: int = 5) -> list[dict[str, Any]]:
    """The k features furthest beyond their thresholds (score / threshold), for reports."""
    rows = []
    for f in report.tested:
        if f.score is None or not f.threshold:
            continue
        ratio = (f.threshold / max(f.score, 1e-300)) if f.method in ("ks", "chisquare") else (
            f.score / f.threshold)
        rows.append({"feature": f.column, "score": f.score, "threshold": f.threshold,
                     "ratio": float(ratio), "drifted": f.drifted})
    rows.sort(key=lambda r: -r["ratio"])
    return rows[:k]


# -- decay ------------------------------------------------------------------


def baseline_from_registry(
    store: MetadataStore, model_name: str, *, metric: str, version: int | None = None
) -> tuple[float, int]:
    """The metric recorded at evaluation for a version (default: champion, else latest)."""
    from ctloop.registry import ModelRegistry

    registry = ModelRegistry(store)
    if version is not None:
        record = registry.get(f"{model_name}:{version}")
    else:
        aliases = registry.aliases(model_name) if registry.versions(model_name) else {}
        record = registry.get(f"{model_name}@champion" if "champion" in aliases else model_name)
    try:
        value = record.properties["evaluation"]["overall"]["metrics"][metric]["value"]
    except (KeyError, TypeError):
        value = None
    if value is None:
        raise UserInputError(
            f"Model {model_name!r} version {record.version} has no recorded {metric!r} "
            "evaluation. Pass a baseline number (--baseline) or register an evaluated version."
        )
    return float(value), record.version


def check_decay(
    log: PredictionLog,
    model_name: str,
    *,
    metric: str = "roc_auc",
    baseline: float | None = None,
    max_drop: float = 0.05,
    min_labels: int = 200,
    start: datetime | None = None,
    end: datetime | None = None,
    store: MetadataStore | None = None,
    version: int | None = None,
    threshold: float = 0.5,
) -> MonitorResult:
    """Did ``metric`` on labelled predictions fall more than ``max_drop`` below ``baseline``?

    Without a ``baseline`` number, the evaluation recorded in the registry for
    the version that served most of the window is the baseline.
    """
    from ctloop.models.metrics import (
        CLASSIFICATION_METRICS,
        HIGHER_IS_BETTER,
        metric_matrix,
    )

    if metric not in HIGHER_IS_BETTER:
        raise UserInputError(
            f"Unknown metric {metric!r}. Use one of {', '.join(HIGHER_IS_BETTER)}."
        )
    if max_drop < 0:
        raise UserInputError(f"max_drop must be >= 0. Got {max_drop!r}.")
    task = "classification" if metric in CLASSIFICATION_METRICS else "regression"
    window = _window(start, end)
    frame = served_rows(log.read(model_name=model_name, start=start, end=end, with_labels=True))
    labelled = frame[frame["label"].notna()]
    if version is not None:
        labelled = labelled[labelled["model_version"] == version]
    served_version = version
    if served_version is None and len(labelled):
        served_version = int(labelled["model_version"].mode().iloc[0])
    base_version = None
    if baseline is None:
        if store is None:
            from ctloop.metadata import open_metadata_store

            store = open_metadata_store()
        baseline, base_version = baseline_from_registry(
            store, model_name, metric=metric, version=served_version)
    higher = HIGHER_IS_BETTER[metric]
    limit = baseline - max_drop if higher else baseline + max_drop
    details: dict[str, Any] = {
        "metric": metric, "max_drop": max_drop, "higher_is_better": higher,
        "rows_logged": len(frame), "baseline_version": base_version,
        "served_version": served_version,
    }

    def result(fired: bool, value: float | None, note: str = "") -> MonitorResult:
        status: MonitorStatus = "fired" if fired else ("no_data" if value is None else "ok")
        return MonitorResult(kind="decay", model=model_name, fired=fired, value=value,
                             threshold=limit, baseline=baseline, window=window,
                             n=len(labelled), details=details, note=note, status=status)

    if len(labelled) < min_labels:
        return result(False, None, f"only {len(labelled)} labelled rows, need {min_labels}")
    y = labelled["label"].to_numpy(dtype=np.float64)
    score = labelled["prediction"].to_numpy(dtype=np.float64)
    ones = np.ones((1, len(y)))
    value = float(metric_matrix(ones, y, score, task=task, threshold=threshold)[metric][0])
    if math.isnan(value):
        return result(False, None, f"{metric} is undefined on these labels (one class only)")
    details["drop"] = (baseline - value) if higher else (value - baseline)
    fired = value < limit if higher else value > limit
    return result(fired, value)


# -- recording --------------------------------------------------------------


def _compact(details: dict[str, Any]) -> dict[str, Any]:
    """The small part of a result's details worth keeping as searchable properties."""
    keep = ("metric", "band", "drifted_features", "top_drifted", "outlier_rate", "estimates",
            "missing_inputs", "realized")
    return {k: details[k] for k in keep if k in details}



def record_result(
    result: MonitorResult, store: MetadataStore, artifacts: ArtifactStore
) -> ArtifactRecord:
    """Keep a result as a ``MonitorReport`` JSON artifact, listed by ``ctloop artifacts list``."""
    from ctloop.metadata.base import ArtifactRecord

    body = json.dumps(result.to_dict(), indent=2, sort_keys=True, default=str)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{result.kind}-{result.model}.json"
        path.write_text(body)
        stored = artifacts.put(path)
    props = {
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
