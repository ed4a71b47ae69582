"""Labels are numbers (binary, regression) or class names (multiclass), and the latest wins."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ctloop.requestlog.batches import LogBatch
from ctloop.requestlog.log import open_prediction_log
from ctloop.requestlog.records import PredictionLog


def _served(path: Path) -> PredictionLog:
    log = open_prediction_log(path)
    batch = LogBatch(model_name="m", model_version=1, route="champion", ts=datetime.now(UTC),
                     request_ids=["a", "b", "c"], predictions=np.array([0.1, 0.2, 0.3]),
                     features=pd.DataFrame({"x": [1, 2, 3]}),
                     entity=pd.DataFrame(index=range(3)), latency_ms=1.0, protocol="v1")
    log.append(batch.records())
    log.flush()
    return log


def test_numeric_labels_read_back_as_floats(tmp_path: Path) -> None:
    log = _served(tmp_path / "log")
    log.add_labels(pd.DataFrame({"request_id": ["a", "b"], "label": [1, 0]}))
    frame = log.read(model_name="m", with_labels=True).set_index("request_id")
    assert frame["label"].dtype == np.float64
    assert frame.loc["a", "label"] == 1.0 and np.isnan(frame["label"]["c"])


def test_class_names_are_labels_and_the_latest_label_wins(tmp_path: Path) -> None:
    log = _served(tmp_path / "log")
    log.add_labels(pd.DataFrame({"request_id": ["a"], "label": [1]}))
    log.add_labels(pd.DataFrame({"request_id": ["a", "b"], "label": ["dog", "cat"]}))
    frame = log.read(model_name="m", with_labels=True).set_index("request_id")
    assert frame.loc["a", "label"] == "dog" and frame.loc["b", "label"] == "cat"
    assert pd.isna(frame["label"]["c"])
