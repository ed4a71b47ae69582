"""The request log (prediction log): every request a service answers, durable, read by monitors.

One write path, one package::

    entries (a request's arrays)  ->  writer (one Arrow table per drain)
        ->  spool (local write-ahead chunks, survive a crash)
        ->  segments (parquet per model, indexed in SQL)  <-  log.read (DuckDB)

``serving`` writes it; ``monitoring``, ``loop``, ``triggers`` and the CLI read it
through :class:`PredictionLog` (``open_prediction_log``). Names load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ctloop.requestlog.log import LogOptions, SegmentedPredictionLog, open_prediction_log
    from ctloop.requestlog.records import PredictionLog, PredictionRecord

_WHERE = {
    "LogOptions": "log", "SegmentedPredictionLog": "log", "open_prediction_log": "log",
    "PredictionLog": "records", "PredictionRecord": "records",
}

__all__ = [
    "LogOptions",
    "PredictionLog",
    "PredictionRecord",
    "SegmentedPredictionLog",
    "open_prediction_log",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"ctloop.requestlog.{_WHERE[name]}"), name)
    raise AttributeError(name)
