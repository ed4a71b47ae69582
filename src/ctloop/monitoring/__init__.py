"""Prediction logs and the monitors that read them (drift, decay).

Names load on first use, so the prediction service (which needs only the log)
starts without importing the monitors' statistics stack.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ctloop.monitoring.base import PredictionLog, PredictionRecord
    from ctloop.monitoring.log import ParquetPredictionLog, open_prediction_log
    from ctloop.monitoring.monitors import (
        MonitorResult,
        check_decay,
        check_drift,
        record_result,
    )

_WHERE = {
    "PredictionLog": "base", "PredictionRecord": "base",
    "ParquetPredictionLog": "log", "open_prediction_log": "log",
    "MonitorResult": "monitors", "check_decay": "monitors", "check_drift": "monitors",
    "record_result": "monitors",
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


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"ctloop.monitoring.{_WHERE[name]}"), name)
    raise AttributeError(name)
