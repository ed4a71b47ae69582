"""Stored labels as the loop's monitors may trust them: those that fit the model.

A label stored for a prediction can be wrong for the model it labels (``7`` or
``0.5`` for a binary model, a class it does not know, text for a regression).
Such a label must never break a loop tick: :class:`FittingLabels` reads the
prediction log like any other reader and leaves those labels out (the row
counts as unlabelled), counting what it left out so the span says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd

from ctloop.models.labels import label_fits
from ctloop.requestlog.records import PredictionLog, PredictionRecord

__all__ = ["FittingLabels", "label_fits"]


class FittingLabels:
    """A read-only view of a prediction log whose labels all fit the model."""

    def __init__(self, log: PredictionLog, task: str, classes: Sequence[Any] | None = None
                 ) -> None:
        self.log = log
        self.url = log.url
        self.task = task
        self.classes = list(classes) if classes else None
        self.skipped = 0
        self.examples: list[str] = []

    def read(self, *, model_name: str | None = None, start: datetime | None = None,
             end: datetime | None = None, with_labels: bool = False) -> pd.DataFrame:
        frame = self.log.read(model_name=model_name, start=start, end=end,
                              with_labels=with_labels)
        if not with_labels or "label" not in frame.columns or frame.empty:
            return frame
        fits = label_fits(frame["label"], self.task, self.classes)
        if bool(fits.all()):
            return frame
        bad = frame.loc[~fits, "label"]
        self.skipped = max(self.skipped, len(bad))
        for value in bad.astype(str).unique()[:3]:
            if value not in self.examples:
                self.examples.append(value)
        frame = frame.copy()
        if not pd.api.types.is_object_dtype(frame["label"].dtype):
            frame["label"] = frame["label"].astype(object)
        frame.loc[~fits, "label"] = None
        if frame["label"].notna().any() and self.task != "multiclass":
            frame["label"] = pd.to_numeric(frame["label"])
        return frame

    def anomaly(self) -> str:
        """One line for the span: how many labels were left out, and what they were."""
        named = self.classes and len(self.classes) == 2 and {str(c) for c in self.classes} \
            != {"0", "1"}
        expected = {"binary": "0 or 1" + (f" (or {self.classes[0]!r}/{self.classes[1]!r})"
                                          if named and self.classes else ""),
                    "regression": "a finite number",
                    "multiclass": f"one of {self.classes}"}.get(self.task, "a valid label")
        return (f"[warning] labels: {self.skipped} stored labels do not fit the {self.task} "
                f"model (e.g. {', '.join(self.examples[:3])}; expected {expected}): skipped")

    # The rest of the protocol, for monitors that only read.
    def append(self, records: Sequence[PredictionRecord]) -> None:
        self.log.append(records)

    def flush(self) -> None:
        self.log.flush()

    def add_labels(self, labels: pd.DataFrame) -> int:
        return self.log.add_labels(labels)

    def close(self) -> None:
        return None
