"""What a model says about some rows, by task: the one rule every protocol encodes.

A model's ``predict`` gives, by the prediction contract of ``ctloop.models``:
binary ``(n,)`` P(positive class), regression ``(n,)`` values, multiclass ``(n, k)``
probabilities in ``signature.classes`` order. From that the service answers
class **labels** (binary: at the model's decision threshold; multiclass: the most
probable class), per-class **probabilities** ``(n, k)`` and, for binary only, the
0/1 ``decision`` kept for clients written before labels existed. A tensor model
(ONNX) answers its named output tensors as they come.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ctloop.models.flavors import LoadedModel

__all__ = ["Answer", "Kind", "answer_of", "classes_of", "is_tensor_model", "kind_of",
           "labels_of", "tensor_answer"]

Kind = Literal["binary", "multiclass", "regression", "tensor"]


@dataclass(frozen=True)
class Answer:
    """One model's answer for ``n`` rows; every array's first dimension is ``n``."""

    kind: Kind
    scores: np.ndarray  # binary (n,) P(positive); regression (n,); multiclass (n, k)
    labels: np.ndarray | None = None  # classification: (n,) class labels
    decisions: np.ndarray | None = None  # binary: (n,) 0/1 int64
    classes: tuple[str | int, ...] | None = None  # classification: probability column order
    tensors: Mapping[str, np.ndarray] | None = None  # tensor models: named outputs

    @property
    def rows(self) -> int:
        return int(self.scores.shape[0])

    def probabilities(self) -> np.ndarray | None:
        """(n, k) per-class probabilities in ``classes`` order (None for regression)."""
        if self.kind == "multiclass":
            return self.scores
        if self.kind == "binary":
            out = np.empty((len(self.scores), 2))
            np.subtract(1.0, self.scores, out=out[:, 0])
            out[:, 1] = self.scores
            return out
        return None

    def take(self, rows: np.ndarray) -> Answer:
        """The answer for a subset of rows (an index or a mask)."""
        return Answer(
            self.kind, self.scores[rows],
            None if self.labels is None else self.labels[rows],
            None if self.decisions is None else self.decisions[rows],
            self.classes,
            None if self.tensors is None else {k: v[rows] for k, v in self.tensors.items()},
        )


def kind_of(model: LoadedModel, scores: np.ndarray | None = None) -> Kind:
    """The model's task as the service answers it (a tensor model answers its tensors)."""
    if is_tensor_model(model):
        return "tensor"
    task = model.task  # a stored 'classification' already reads as binary (load_model)
    if task == "multiclass" or (scores is not None and scores.ndim == 2):
        return "multiclass"
    return "regression" if task == "regression" else "binary"


def is_tensor_model(model: LoadedModel) -> bool:
    """Served by its N-d tensors alone: tensor specs and no tabular columns (an ONNX
    image model). A tabular ONNX graph has columns too and is served like any table."""
    return bool(model.signature.tensors) and not model.signature.inputs


def classes_of(model: LoadedModel, kind: Kind, width: int | None = None) -> tuple[str | int, ...]:
    """The class labels in probability-column order: the signature's, else 0..k-1."""
    classes = model.signature.classes
    if classes is not None and (width is None or len(classes) == width):
        return tuple(classes)
    if kind == "binary":
        return (0, 1)
    return tuple(range(width or 0))


def answer_of(model: LoadedModel, scores: np.ndarray) -> Answer:
    """``model``'s answer for the scores its ``predict`` returned."""
    kind = kind_of(model, scores)
    if kind == "regression":
        return Answer(kind, _floats(scores).reshape(-1))
    if kind == "binary":
        scores = _floats(scores).reshape(-1)
        decisions = (scores >= model.decision_threshold).astype(np.int64)
        classes = classes_of(model, kind, 2)
        return Answer(kind, scores, labels_of(classes, decisions), decisions, classes)
    scores = _floats(scores)
    if scores.ndim != 2:
        raise ValueError(f"a multiclass model scored shape {scores.shape}, not (rows, classes)")
    classes = classes_of(model, kind, scores.shape[1])
    return Answer(kind, scores, labels_of(classes, scores.argmax(axis=1)), None, classes)


def tensor_answer(outputs: Mapping[str, Any], rows: int) -> Answer:
    """A tensor model's named outputs (each with ``rows`` as its first dimension)."""
    tensors: dict[str, np.ndarray] = {}
    for name, value in outputs.items():
        array = np.asarray(value)
        if array.ndim == 0 or array.shape[0] != rows:
            raise ValueError(
                f"output {name!r} has shape {list(array.shape)}, not {rows} rows first"
            )
        tensors[name] = array
    return Answer("tensor", np.full(rows, np.nan), tensors=tensors)


def _floats(scores: Any) -> np.ndarray:
    """Scores as one C-ordered float64 block, whatever layout the library returned (a
    strided ``[:, 1]`` slice of ``predict_proba``, Fortran order, float32, ints)."""
    return np.ascontiguousarray(scores, dtype=np.float64)


def labels_of(classes: tuple[str | int, ...], index: np.ndarray) -> np.ndarray:
    """Class labels for column indexes: int64 when every class is an integer, else text."""
    labels: np.ndarray = _label_table(classes)[index]
    return labels


@functools.lru_cache(maxsize=256)
def _label_table(classes: tuple[str | int, ...]) -> np.ndarray:
    """The labels by column index, built once per set of classes (not once per request)."""
    if all(isinstance(c, int | np.integer) and not isinstance(c, bool) for c in classes):
        table = np.asarray(classes, dtype=np.int64)
    else:
        table = np.asarray([str(c) for c in classes], dtype=object)
    table.flags.writeable = False
    return table
