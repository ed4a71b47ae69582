"""Standard data-validation components: ``statistics``, ``schema``, ``validate``.

Thin wrappers over ``ctloop.data``. ``validate`` stops the run on schema skew
(error-level anomalies raise ``ValidationFailed`` with every anomaly listed)
and records value skew: the drift summary goes into the anomalies artifact's
metadata, which the metadata store keeps as artifact properties.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NotRequired, TypedDict

from ctloop.core.errors import UserInputError
from ctloop.core.jsontypes import JSONObject
from ctloop.data import schema as data_schema
from ctloop.data.quality import QualityStatsJson
from ctloop.data.report import write_html
from ctloop.data.skew import validate_statistics
from ctloop.data.stats import DatasetStatistics, compute_statistics
from ctloop.pipeline import Artifact, Dataset, Input, Output, component

__all__ = ["Anomalies", "Schema", "SchemaSummary", "Statistics", "StatisticsSummary",
           "ValidationSummary", "schema", "statistics", "validate"]


class StatisticsSummary(TypedDict):
    """What ``statistics`` returns: the table's size and, counted, its data quality."""

    rows: int
    columns: int
    quality: NotRequired[QualityStatsJson]


class SchemaSummary(TypedDict):
    """What ``schema`` returns: where the schema came from and its width."""

    origin: str
    columns: int


class ValidationSummary(TypedDict):
    """What ``validate`` returns (and keeps as the anomalies artifact's metadata)."""

    ok: bool
    errors: int
    warnings: int
    anomalies: list[str]
    completeness: dict[str, float]
    drift: NotRequired[JSONObject]


class Statistics(Artifact):
    """Mergeable dataset statistics (JSON with sketches)."""

    filename = "statistics.json"

    def read(self) -> DatasetStatistics:
        return DatasetStatistics.load(self.path)

    def write(self, stats: DatasetStatistics) -> None:
        stats.save(self.path)
        self.metadata.update({"rows": stats.rows, "columns": list(stats.columns)})


class Schema(Artifact):
    """The schema YAML the data is validated against."""

    filename = "schema.yaml"

    def read(self) -> data_schema.Schema:
        return data_schema.Schema.load(self.path)

    def write(self, schema: data_schema.Schema) -> None:
        schema.save(self.path)
        self.metadata["columns"] = list(schema.columns)


class Anomalies(Artifact):
    """Validation result: anomalies, drift, and a self-contained HTML report beside them."""

    filename = None  # a folder: anomalies.json + report.html

    def read(self) -> JSONObject:
        found: JSONObject = json.loads((self.path / "anomalies.json").read_text())
        return found


@component(version="3")
def statistics(
    data: Input[Dataset],
    stats: Output[Statistics],
    duplicates: bool = True,
    keys: list[str] | None = None,
) -> StatisticsSummary:
    """Statistics of a dataset, streamed from its parquet file.

    Named after the file the dataset came from when its producer recorded one
    (``metadata["source"]``), else after the artifact id, so reports say which batch.
    With ``duplicates``, duplicate rows are counted, and repeated values of the
    ``keys`` columns (default: the columns named like ids, ``id``/``*_id``) for
    the schema's ``duplicate_ids`` check.

    Args:
        data: the table to describe.
        stats: per-column counts, missing values, ranges, quantiles and top values.
        duplicates: count duplicate rows and repeated ids (8 bytes per row).
        keys: id columns whose repeated values are counted (default: named like ids).
    """
    from ctloop.data.schema import ID_NAME
    from ctloop.data.sources import iter_batches

    source = data.metadata.get("source")
    name = f"{Path(str(source)).name} ({data.id[:12]})" if source else (data.id or "dataset")
    columns = iter_batches(data.path)[0].names
    if keys is None:
        keys = [c for c in columns if ID_NAME.search(c)] if duplicates else []
    result = compute_statistics(data.path, name=name, duplicates=duplicates, keys=keys)
    stats.write(result)
    out: StatisticsSummary = {"rows": result.rows, "columns": len(result.columns)}
    if result.quality is not None:
        out["quality"] = result.quality.to_dict()
    return out


@component(version="1")
def schema(
    stats: Input[Statistics],
    schema: Output[Schema],
    pinned: str | None = None,
    max_domain_size: int = data_schema.MAX_DOMAIN_SIZE,
) -> SchemaSummary:
    """The pinned schema file if one is given and exists, else one inferred from ``stats``.

    Args:
        stats: statistics of the data the schema is inferred from.
        schema: the schema used by later validation.
        pinned: a schema file; read when it exists, else written with what was inferred.
        max_domain_size: string columns with at most this many values get a domain.
    """
    if pinned and Path(pinned).exists():
        result = data_schema.Schema.load(pinned)
        origin = f"pinned: {pinned}"
    else:
        result = data_schema.infer_schema(stats.read(), max_domain_size=max_domain_size)
        origin = "inferred"
        if pinned:
            # First run: pin what was inferred so later runs check against it.
            result.save(pinned)
            origin = f"inferred and pinned to {pinned}"
    schema.write(result)
    schema.metadata["origin"] = origin
    return {"origin": origin, "columns": len(result.columns)}


@component(version="1")
def validate(
    stats: Input[Statistics],
    schema: Input[Schema],
    anomalies: Output[Anomalies],
    reference: Input[Statistics] | None = None,
    fail_on_error: bool = True,
) -> ValidationSummary:
    """Check ``stats`` against ``schema`` (and drift from ``reference``); stop on errors.

    Args:
        stats: statistics of the new data.
        schema: what the data must look like.
        anomalies: what was found (JSON and an HTML report).
        reference: statistics of earlier data to measure drift against.
        fail_on_error: fail the step on error-level anomalies (warnings never fail).
    """
    if reference is not None and not isinstance(reference, Statistics):
        raise UserInputError("The 'reference' input of validate must be a Statistics artifact.")
    current = stats.read()
    ref = reference.read() if reference is not None else None
    result = validate_statistics(current, schema.read(), reference=ref)
    result.save(anomalies.path / "anomalies.json")
    write_html(
        anomalies.path / "report.html",
        stats=current,
        reference=ref,
        anomalies=result,
        title=f"Validation of {current.source}",
    )
    summary: ValidationSummary = {
        "ok": result.ok,
        "errors": len(result.errors),
        "warnings": len(result.warnings),
        "anomalies": [a.one_line() for a in result.anomalies],
        "completeness": {
            name: round(1 - col.missing_rate, 6) for name, col in current.columns.items()
        },
    }
    if result.drift is not None:
        summary["drift"] = result.drift.summary()
    anomalies.metadata.update(summary)
    if fail_on_error:
        result.raise_for_errors()
    return summary
