"""The monitors that read the request log (drift, decay); the log is ``ctloop.requestlog``.

Names load on first use, so the prediction service (which needs only the log)
starts without importing the monitors' statistics stack.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ctloop.monitoring.monitors import (
        MonitorResult,
        check_decay,
        check_drift,
        record_result,
    )
    from ctloop.requestlog.log import ParquetPredictionLog, open_prediction_log
    from ctloop.requestlog.records import PredictionLog, PredictionRecord

_WHERE = {
    "PredictionLog": "ctloop.requestlog.records",
    "PredictionRecord": "ctloop.requestlog.records",
    "ParquetPredictionLog": "ctloop.requestlog.log",
    "open_prediction_log": "ctloop.requestlog.log",
    "MonitorResult": "ctloop.monitoring.monitors",
    "check_decay": "ctloop.monitoring.monitors",
    "check_drift": "ctloop.monitoring.monitors",
    "record_result": "ctloop.monitoring.monitors",
}

__all__ = [
    "MonitorResult",
    "ParquetPredictionLog",
    "PredictionLog",
    "PredictionRecord",
    "check_decay",
    "check_drift",
    "open_prediction_log",
    "record_result",
]


def __getattr__(name: str) -> object:  # the names above are typed by TYPE_CHECKING
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(name)
