"""Prediction logs and the monitors that read them (drift, decay)."""

from ctloop.monitoring.base import PredictionLog, PredictionRecord
from ctloop.monitoring.log import ParquetPredictionLog, open_prediction_log
from ctloop.monitoring.monitors import MonitorResult, check_decay, check_drift, record_result

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
