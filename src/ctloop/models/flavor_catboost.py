"""The CatBoost flavor: CatBoost's own ``.cbm`` format, its categorical features and TreeSHAP.

CatBoost reads string columns as categorical features itself (ordered target
statistics), so they are passed as text, never one-hot encoded; a missing
category is the category ``"nan"``, at training and at prediction alike, since
CatBoost refuses NaN there. Numbers keep NaN, which CatBoost scores natively.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import numpy.typing as npt

from ctloop.core.hashing import hash_file
from ctloop.core.lazy import lazy_module
from ctloop.core.plugins import require
from ctloop.models.tasks import Task, shaped

if TYPE_CHECKING:
    import catboost as cb  # untyped (ignore_missing_imports): a name for the reader
    import pandas as pd

    from ctloop.core.arrays import Floats
    from ctloop.core.jsontypes import JSONValue
else:
    pd = lazy_module("pandas", globals(), "pd")

__all__ = ["CatBoostFlavor", "catboost_frame", "fit_catboost", "shap_values"]

MISSING_CATEGORY = "nan"
# Losses whose raw formula value is a log: their predictions are exp(raw).
_EXPONENT_LOSSES = ("Poisson", "Tweedie")
# Metadata CatBoost fills differently on every fit of the same data.
_VOLATILE = ("model_guid", "train_finish_time")


def catboost_frame(frame: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """``frame`` with its categorical columns as text, missing values as ``"nan"``."""
    out = frame.copy()
    for column in categorical:
        values = out[column]
        text = values.astype(str).to_numpy(dtype=object)
        text[values.isna().to_numpy()] = MISSING_CATEGORY
        out[column] = text
    return out


def _pool(model: cb.CatBoost, frame: pd.DataFrame) -> cb.Pool:
    cb = require("catboost", "catboost", "Scoring a CatBoost model")
    indices = list(model.get_cat_feature_indices())
    categorical = [str(frame.columns[i]) for i in indices]
    return cb.Pool(catboost_frame(frame, categorical), cat_features=indices)


def fit_catboost(
    frame: pd.DataFrame, y: npt.ArrayLike, *, task: str, params: Mapping[str, JSONValue],
    seed: int, categorical: list[str],
) -> tuple[cb.CatBoost, dict[str, JSONValue]]:
    """A fitted CatBoost classifier or regressor, and the parameters it used.

    One thread and the seed by default (deterministic); no files written beside the
    process (CatBoost's ``catboost_info`` folder).
    """
    cb = require("catboost", "catboost", "Training a CatBoost model")
    used = {"random_seed": seed, "verbose": False, "thread_count": 1,
            "allow_writing_files": False, **params}
    cls = cb.CatBoostRegressor if task == "regression" else cb.CatBoostClassifier
    model = cls(**used, cat_features=categorical or None)
    model.fit(catboost_frame(frame, categorical), y)
    return model, used


def shap_values(model: cb.CatBoost, frame: pd.DataFrame) -> Floats:
    """CatBoost's own TreeSHAP: (rows, features + 1), the last column the base value.

    Multiclass models answer (rows, classes, features + 1).
    """
    values = model.get_feature_importance(data=_pool(model, frame), type="ShapValues",
                                          thread_count=1)
    return np.asarray(values, dtype=np.float64)


class CatBoostFlavor:
    """A CatBoost model (classifier, regressor or the generic ``CatBoost``) as ``.cbm``."""

    name: ClassVar[str] = "catboost"
    packages: ClassVar[tuple[str, ...]] = ("catboost", "numpy", "pandas")
    file_name: ClassVar[str] = "model.cbm"

    def save(self, model: cb.CatBoost, path: Path) -> None:
        """The .cbm file, with CatBoost's random model guid and finish time made reproducible.

        Those two fields differ on every fit, so the same fit would hash differently;
        the guid becomes a digest of the file written without them, the time is blanked.
        """
        metadata = model.get_metadata()
        kept = {k: metadata[k] for k in _VOLATILE if k in metadata}
        try:
            for key in _VOLATILE:
                metadata[key] = ""
            model.save_model(str(path), format="cbm")
            metadata["model_guid"] = hash_file(path)[:32]
            model.save_model(str(path), format="cbm")
        finally:
            for key in _VOLATILE:
                if key in kept:
                    metadata[key] = kept[key]

    def load(self, data: bytes) -> cb.CatBoost:
        cb = require("catboost", "catboost", "Loading a CatBoost model")
        model = cb.CatBoost()
        model.load_model(blob=data)
        return model

    def predict(self, model: cb.CatBoost, frame: pd.DataFrame, task: Task) -> Floats:
        if task == "regression":
            loss = str(model.get_all_params().get("loss_function", ""))
            kind = "Exponent" if loss.startswith(_EXPONENT_LOSSES) else "RawFormulaVal"
        else:
            kind = "Probability"
        return shaped(model.predict(_pool(model, frame), prediction_type=kind, thread_count=1),
                      task)
