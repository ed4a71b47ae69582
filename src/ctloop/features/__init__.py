"""The feature store: definitions, point-in-time training sets, online features.

Definitions (:mod:`ctloop.features.definitions`) are plain frozen values;
:class:`FeatureStore` turns them into training sets (DuckDB as-of joins),
materializes them into an online store (SQLite or Redis) and serves them.
"""

from ctloop.features.definitions import (
    Aggregation,
    AggregationView,
    DataFrameSource,
    Entity,
    Feature,
    FeatureView,
    FileSource,
    PythonSource,
    SqlSource,
)
from ctloop.features.store import (
    Definitions,
    FeatureStore,
    MaterializationReport,
    OnlineFeatures,
    TrainingSet,
    load_definitions,
)

__all__ = [
    "Aggregation",
    "AggregationView",
    "DataFrameSource",
    "Definitions",
    "Entity",
    "Feature",
    "FeatureStore",
    "FeatureView",
    "FileSource",
    "MaterializationReport",
    "OnlineFeatures",
    "PythonSource",
    "SqlSource",
    "TrainingSet",
    "load_definitions",
]
