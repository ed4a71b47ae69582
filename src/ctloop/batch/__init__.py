"""Offline batch scoring: a parquet or CSV file in, predictions out, recorded with lineage.

It sits above ``serving`` (it scores chunks exactly as the service scores a
request: the same feature filling and signature checks) and below the CLI,
and runs no server, so it lives beside the service rather than inside it.
"""

from ctloop.batch.scoring import FORMATS, BatchResult, predict_file, resolve_ref

__all__ = ["FORMATS", "BatchResult", "predict_file", "resolve_ref"]
