"""Data validation: statistics, schemas, schema skew and drift (pure functions).

Statistics stream over Arrow record batches and merge (DataSketches for
quantiles, frequencies and distinct counts); schemas are inferred from them and
pinned as YAML; validation and drift work on statistics, never on rows.
"""

from ctloop.data.drift import DriftReport, FeatureDrift, compute_drift
from ctloop.data.schema import ANOMALY_KINDS, ColumnSchema, Schema, infer_schema
from ctloop.data.skew import Anomalies, Anomaly, validate, validate_statistics
from ctloop.data.stats import (
    ColumnStatistics,
    DatasetStatistics,
    compute_statistics,
    merge_statistics,
)

__all__ = [
    "ANOMALY_KINDS",
    "Anomalies",
    "Anomaly",
    "ColumnSchema",
    "ColumnStatistics",
    "DatasetStatistics",
    "DriftReport",
    "FeatureDrift",
    "Schema",
    "compute_drift",
    "compute_statistics",
    "infer_schema",
    "merge_statistics",
    "validate",
    "validate_statistics",
]
