"""Calibration and decision settings stored with a model, as plain JSON in its manifest.

Label-free performance estimation (:mod:`ctloop.monitoring.estimate`) reads a
score as the probability that the label is 1, which holds only for calibrated
scores; gradient boosting's often are not. An isotonic map fitted on the
evaluation holdout fixes that and is stored with the model as its knots
(``metadata.calibration``), never as a pickle, so it loads anywhere.

:func:`finalize_model` writes the holdout-derived settings into a saved model
folder before it is stored as an artifact: the calibration, the cost-minimising
``decision_threshold`` (read by ``LoadedModel.decision_threshold`` and applied
by the service) and the outlier detector (:mod:`ctloop.models.outliers`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import numpy as np
import numpy.typing as npt
import pandas as pd

from ctloop.core.arrays import Floats
from ctloop.core.errors import IntegrityError, UserInputError
from ctloop.core.hashing import stable_json
from ctloop.core.jsontypes import JSONObject, JSONValue, as_list, as_number, as_object
from ctloop.models.flavors import MANIFEST, read_manifest
from ctloop.models.metrics import Costs, binary_labels, optimal_threshold
from ctloop.models.outliers import OutlierDetectorJSON
from ctloop.models.tasks import ClassLabel

__all__ = [
    "Calibration",
    "FinalSettings",
    "apply_class_calibrations",
    "calibration_of",
    "finalize_model",
    "fit_calibration",
    "fit_class_calibrations",
]

MIN_ROWS = 200  # fewer holdout rows than this: no calibration is fitted
MAX_KNOTS = 200


@dataclass(frozen=True)
class Calibration:
    """A monotone map from raw score to probability, as knots joined linearly."""

    x: tuple[float, ...]
    y: tuple[float, ...]
    method: str = "isotonic"
    n: int = 0

    def apply(self, scores: npt.ArrayLike) -> Floats:
        return np.interp(np.asarray(scores, dtype=np.float64), self.x, self.y)

    def to_dict(self) -> dict[str, JSONValue]:
        return {"method": self.method, "x": list(self.x), "y": list(self.y), "n": self.n}

    @classmethod
    def from_dict(cls, data: JSONObject) -> Calibration:
        return cls(
            x=_knots(data["x"]),
            y=_knots(data["y"]),
            method=str(data.get("method", "isotonic")),
            n=int(as_number(data.get("n")) or 0),
        )


def _knots(value: JSONValue) -> tuple[float, ...]:
    """A stored array of knots as floats; anything but numbers is a damaged manifest."""
    knots = [as_number(v) for v in as_list(value)]
    numbers = tuple(v for v in knots if v is not None)
    if len(numbers) != len(knots):
        raise IntegrityError(f"A calibration map holds a knot that is not a number: {value!r}.")
    return numbers


class FinalSettings(TypedDict, total=False):
    """What :func:`finalize_model` stores in a manifest's ``metadata`` (each when it applies)."""

    calibration: dict[str, JSONValue]
    class_calibration: list[dict[str, JSONValue]]
    decision_threshold: float
    costs: dict[str, float]
    holdout_expected_cost: float
    outliers: OutlierDetectorJSON


def fit_calibration(y_true: npt.ArrayLike, y_score: npt.ArrayLike) -> Calibration:
    """Isotonic regression of labels on scores (scikit-learn), kept as at most 200 knots."""
    from sklearn.isotonic import IsotonicRegression

    y = np.asarray(y_true, dtype=np.float64)
    s = np.asarray(y_score, dtype=np.float64)
    if len(y) < MIN_ROWS or len(np.unique(y)) < 2:
        raise UserInputError(
            f"Calibration needs at least {MIN_ROWS} labelled rows of both classes; "
            f"got {len(y)} rows."
        )
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(s, y)
    x, fy = np.asarray(iso.X_thresholds_), np.asarray(iso.y_thresholds_)
    if len(x) > MAX_KNOTS:
        grid = np.quantile(s, np.linspace(0, 1, MAX_KNOTS))
        x, fy = np.unique(grid), iso.predict(np.unique(grid))
    return Calibration(x=tuple(map(float, x)), y=tuple(map(float, fy)), n=len(y))


def fit_class_calibrations(
    proba: Floats, labels: npt.ArrayLike, classes: Sequence[ClassLabel] | None
) -> list[dict[str, JSONValue]] | None:
    """One-vs-rest isotonic maps, one per class column of a multiclass model's probabilities,
    or None when some class has too few holdout rows of both kinds to fit one."""
    from ctloop.models.metrics import encode_labels

    index, _ = encode_labels(labels, classes)
    maps = []
    for c in range(proba.shape[1]):
        y = (index == c).astype(np.float64)
        if len(y) < MIN_ROWS or len(np.unique(y)) < 2:
            return None
        maps.append(fit_calibration(y, proba[:, c]).to_dict())
    return maps


def apply_class_calibrations(proba: Floats, maps: Sequence[JSONObject]) -> Floats:
    """Each class column through its map, rows renormalised to sum to 1."""
    out = np.column_stack([Calibration.from_dict(m).apply(proba[:, c])
                           for c, m in enumerate(maps)])
    total = out.sum(axis=1, keepdims=True)
    return np.where(total > 0, out / np.where(total > 0, total, 1.0), 1.0 / out.shape[1])


def calibration_of(manifest: JSONObject) -> Calibration | None:
    """The calibration stored in a model's manifest, if any."""
    data = as_object(as_object(manifest.get("metadata")).get("calibration"))
    return Calibration.from_dict(data) if data else None


def finalize_model(
    path: str | Path,
    holdout: pd.DataFrame,
    *,
    label: str,
    costs: Costs | dict[str, float] | None = None,
    calibrate: bool = True,
    training: pd.DataFrame | None = None,
    outlier_features: Sequence[str] | None = None,
) -> FinalSettings:
    """Store holdout-derived settings in the model folder's manifest; returns what was set.

    - ``calibration`` (isotonic, when ``calibrate`` and the holdout is large enough);
      multiclass: ``class_calibration``, one one-vs-rest map per class column;
    - ``decision_threshold`` minimising expected ``costs`` on the holdout, with the costs;
    - ``outliers``: a detector fitted on ``training`` (the model's inputs).

    Call it before the folder is stored as an artifact: it rewrites the manifest.
    """
    from ctloop.models.flavors import load_model

    model = load_model(path)
    settings: FinalSettings = {}
    if model.task == "multiclass" and calibrate and label in holdout.columns:
        per_class = fit_class_calibrations(model.predict(holdout, what="The holdout"),
                                           holdout[label].to_numpy(), model.signature.classes)
        if per_class is not None:
            settings["class_calibration"] = per_class
    if model.task != "binary" and (costs is not None or calibrate):
        costs, calibrate = None, False
    if costs is not None or calibrate:
        if label not in holdout.columns:
            raise UserInputError(f"The holdout has no label column {label!r}.")
        y = binary_labels(holdout[label].to_numpy(), model.signature.classes)
        scores = model.predict(holdout, what="The holdout")
        if calibrate and len(y) >= MIN_ROWS and len(np.unique(y)) == 2:
            settings["calibration"] = fit_calibration(y, scores).to_dict()
        if costs is not None:
            cost_model = Costs.from_dict(costs)
            threshold, expected = optimal_threshold(y, scores, cost_model)
            settings["decision_threshold"] = threshold
            settings["costs"] = cost_model.to_dict()
            settings["holdout_expected_cost"] = expected
    if training is not None:
        from ctloop.models.outliers import fit_outlier_detector

        features = list(outlier_features or model.signature.columns)
        settings["outliers"] = fit_outlier_detector(training[features]).to_dict()
    if settings:
        _update_metadata(Path(path), settings)
    return settings


def _update_metadata(folder: Path, settings: FinalSettings) -> None:
    manifest = read_manifest(folder)
    manifest["metadata"] = {**manifest.get("metadata", {}), **settings}
    # same serialisation as save_model, so the folder's bytes depend only on its content
    (folder / MANIFEST).write_text(stable_json(json.loads(json.dumps(manifest))))
