"""Prediction logs and the monitors that read them (drift, decay)."""

from ctloop.monitoring.base import PredictionLog, PredictionRecord
from ctloop.monitoring.log import ParquetPredictionLog, open_prediction_log

__all__ = ["ParquetPredictionLog", "PredictionLog", "PredictionRecord", "open_prediction_log"]
