"""Scoring typed columns without a DataFrame where the flavor allows it.

A LightGBM booster reads a float matrix: numeric columns as floats, each
categorical column as the index of its value in the categories seen at
training (``pandas_categorical``; unseen values become NaN), which is exactly
what LightGBM's own DataFrame conversion does. One thread per predict call:
LightGBM's OpenMP threads spin between requests, and a micro-batch of a few
rows gains nothing from more.

scikit-learn estimators that take a NumPy matrix as they take the frame, and
ONNX graphs with a tabular input, get their arrays straight from the columns
too (the flavor's ``columns_predictor``: ``models.flavors.numpy_estimator``,
``models.flavor_onnx.OnnxModel.column_feeds``); values those cannot take as
pandas would (nulls in an object column, text for a number) go through the
frame path for that batch, so its conversions and errors stay the only ones.
Other flavors go through ``LoadedModel.predict`` on one DataFrame per
micro-batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ctloop.core.lazy import lazy_module
from ctloop.models.flavors import FLAVORS, ColumnsScorer, LoadedModel
from ctloop.models.signature import Signature
from ctloop.models.tasks import Task

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas", globals(), "pd")

__all__ = ["Predictor", "predictor_for"]

Columns = Mapping[str, np.ndarray]
_SMALL = 64  # rows up to which categories are mapped with a dict


@dataclass(frozen=True)
class Predictor:
    """``predict(columns) -> scores`` for one loaded model; ``fast`` says which path.

    ``matrix``, when the model reads plain numbers, scores a float64 ``[n, k]`` block whose
    columns are the signature's inputs in order, exactly as ``predict`` scores those
    columns: a request that arrived as that block skips building it again.
    """

    predict: Callable[[Columns], np.ndarray]
    fast: bool
    matrix: Callable[[np.ndarray], np.ndarray] | None = None


def predictor_for(model: LoadedModel, *, threads: int = 1) -> Predictor:
    """The quickest exact scorer for ``model``: NumPy arrays where its flavor allows."""
    booster = model.model
    if model.flavor == "lightgbm" and hasattr(booster, "pandas_categorical"):
        lightgbm = _lightgbm(model, threads)
        if lightgbm is not None:
            columns_scorer, block_scorer = lightgbm
            return Predictor(columns_scorer, fast=True, matrix=block_scorer)

    def generic(columns: Columns) -> np.ndarray:
        return model.predict(pd.DataFrame(dict(columns)), what="The request rows")

    build: Callable[[Any, Signature, Task], ColumnsScorer] | None = getattr(
        FLAVORS.get(model.flavor), "columns_predictor", None
    )
    arrays = None if build is None else build(booster, model.signature, model.task)
    if arrays is not None:
        direct = arrays

        def predict(columns: Columns) -> np.ndarray:
            out = direct(columns)
            return generic(columns) if out is None else out

        return Predictor(predict, fast=True)
    return Predictor(generic, fast=False)


def _lightgbm(model: LoadedModel, threads: int) -> tuple[
        Callable[[Columns], np.ndarray], Callable[[np.ndarray], np.ndarray] | None] | None:
    """(columns scorer, block scorer: only without categorical columns), or None."""
    booster = model.model
    specs = model.signature.inputs
    categorical = [s.name for s in specs if s.type not in ("integer", "float", "boolean")]
    cats = booster.pandas_categorical or []
    if len(cats) != len(categorical) or booster.num_feature() != len(specs):
        return None  # trained some other way: let LightGBM's DataFrame path decide
    indexes: dict[str, Any] = {}  # pd.Index for large batches, built on first need
    codes_of = {name: {v: float(i) for i, v in enumerate(c)}
                for name, c in zip(categorical, cats, strict=True)}
    names = [s.name for s in specs]
    library: list[Callable[[np.ndarray], np.ndarray]] = []  # built on first need

    def score(matrix: np.ndarray) -> np.ndarray:
        compiled = model.compiled  # set by a background compile once checked
        if compiled is not None:
            return compiled.predict(matrix)
        if not library:  # LightGBM imported only now: compiled trees never need it
            library.append(_scorer(booster, threads))
        return library[0](matrix)

    def predict(columns: Columns) -> np.ndarray:
        n = len(columns[names[0]])
        matrix = np.empty((n, len(names)), dtype=np.float64)
        for j, name in enumerate(names):
            values = columns[name]
            lookup = codes_of.get(name)
            if lookup is None:
                matrix[:, j] = values if values.dtype != object else _floats(values)
            elif n <= _SMALL:  # a dict lookup beats pandas' hashing setup for a few rows
                matrix[:, j] = [lookup.get(v, np.nan) for v in values.tolist()]
            else:
                index = indexes.get(name)
                if index is None:
                    index = indexes[name] = pd.Index(list(lookup))
                codes = index.get_indexer(values).astype(np.float64)
                codes[codes < 0] = np.nan
                matrix[:, j] = codes
        return np.asarray(score(matrix), dtype=np.float64)

    def whole(matrix: np.ndarray) -> np.ndarray:
        return np.asarray(score(matrix), dtype=np.float64)

    return predict, (None if categorical else whole)


def _scorer(booster: Any, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    """``booster.predict`` without re-creating LightGBM's predictor on every call.

    ``Booster.predict`` builds an ``_InnerPredictor`` (parameters copied,
    several C calls) each time, which costs as much as scoring one row; the
    predictor is built once here. Falls back to ``Booster.predict`` if
    LightGBM's internals moved.
    """
    try:
        from lightgbm.basic import _InnerPredictor

        inner = _InnerPredictor.from_booster(booster, {"num_threads": threads})
        inner.predict(np.zeros((1, booster.num_feature())))
        return cast(Callable[[np.ndarray], np.ndarray], inner.predict)
    except Exception:  # a LightGBM without the private predictor: the public call
        return lambda matrix: booster.predict(matrix, num_threads=threads)


def _floats(values: np.ndarray) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
