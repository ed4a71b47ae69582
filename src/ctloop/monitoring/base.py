"""Old home of the prediction log's interface, kept for one merge: use ``ctloop.requestlog``."""

from ctloop.requestlog.records import PredictionLog, PredictionRecord

__all__ = ["PredictionLog", "PredictionRecord"]
