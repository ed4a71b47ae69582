"""``ctloop data``: statistics, schemas, validation and drift of datasets.

Every FILE may be a parquet file, a folder of parquet files, a CSV file, or a
statistics JSON written by ``ctloop data stats FILE -o stats.json`` (so saved
statistics can stand in for data they describe).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ctloop.cli.output import console, print_json, print_table
from ctloop.core.errors import ValidationFailed
from ctloop.core.paths import require_path

if TYPE_CHECKING:
    from ctloop.data.drift import DriftReport
    from ctloop.data.skew import Anomalies
    from ctloop.data.stats import DatasetStatistics

app = typer.Typer(no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON document instead of tables.")]
HtmlOpt = Annotated[
    Path | None, typer.Option("--html", help="Also write a self-contained HTML report here.")
]


def _statistics(
    path: Path, *, duplicates: bool = False, keys: tuple[str, ...] = ()
) -> DatasetStatistics:
    from ctloop.data.sources import iter_batches
    from ctloop.data.stats import DatasetStatistics, compute_statistics

    if path.suffix.lower() == ".json":
        return DatasetStatistics.load(path)
    if keys or duplicates:
        from ctloop.data.schema import ID_NAME

        names = iter_batches(path)[0].names
        # Repeated ids are counted for the given keys and, when counting duplicates, for
        # every column named like an id (id, *_id), as the statistics component does.
        keys = tuple(k for k in names if k in keys or (duplicates and ID_NAME.search(k)))
    return compute_statistics(path, name=str(path), duplicates=duplicates, keys=keys)


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _print_statistics(stats: DatasetStatistics) -> None:
    rows = []
    for col in stats.columns.values():
        summary = ""
        if col.type == "datetime" and col.numeric is not None and col.numeric.finite:
            times = col.to_dict(sketches=False)["numeric"]
            summary = f"from {times['min_time']}  to {times['max_time']}"
        elif col.numeric is not None and col.numeric.finite:
            num = col.numeric
            summary = (
                f"min {_fmt(num.min)}  max {_fmt(num.max)}  mean {_fmt(num.mean)}  "
                f"std {_fmt(num.std)}" + (f"  inf {num.inf}" if num.inf else "")
            )
        elif col.categorical is not None and col.categorical.total:
            cat = col.categorical
            top = ", ".join(f"{v} ({c})" for v, c in cat.top(3))
            summary = f"distinct {cat.distinct}" + (f"  top {top}" if top else "")
        rows.append([col.name, col.type, col.count, _share(col.missing, col.missing_rate), summary])
    print_table(
        f"{stats.source}: {stats.rows} rows",
        ["column", "type", "count", "missing", "summary"],
        rows,
    )


def _print_anomalies(result: Anomalies) -> None:
    if result.anomalies:
        print_table(
            "Anomalies",
            ["severity", "column", "kind", "expected", "found"],
            [[a.severity, a.column, a.kind, a.expected, a.found] for a in result.anomalies],
        )
    verdict = "[green]ok[/green]" if result.ok else "[red]failed[/red]"
    console.print(
        f"validation {verdict}: {len(result.errors)} error(s), {len(result.warnings)} warning(s)"
    )


def _print_drift(report: DriftReport) -> None:
    print_table(
        f"Drift: {report.reference} -> {report.current}",
        ["feature", "type", "method", "score", "threshold", "drifted", "note"],
        [
            [
                f.column,
                f.type,
                f.method,
                _fmt(f.score),
                _fmt(f.threshold) if f.score is not None else None,
                "yes" if f.drifted else "no",
                f.note or None,
            ]
            for f in report.features
        ],
    )
    verdict = "[yellow]drifted[/yellow]" if report.dataset_drifted else "[green]no drift[/green]"
    weighted = ", weighted by importance" if report.weighted else ""
    left_out = [f.column for f in report.features if not f.in_share]
    console.print(
        f"dataset {verdict}: {len(report.drifted)} of {len(report.tested)} features drifted "
        f"({report.share_drifted:.0%}{weighted}, threshold {report.drift_share:.0%})"
        + (f"; not in the share: {', '.join(left_out)}" if left_out else "")
    )


@app.command("stats")
def stats_command(
    file: Annotated[Path, typer.Argument(help="Data file (parquet, CSV) or folder of parquet.")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Save mergeable statistics (JSON).")
    ] = None,
    json_: JsonOpt = False,
    html_path: HtmlOpt = None,
) -> None:
    """Statistics of a dataset: types, missing values, ranges, quantiles, frequencies."""
    require_path(file)
    from ctloop.data.report import report_dict, write_html

    stats = _statistics(file)
    if output is not None:
        stats.save(output)
    if html_path is not None:
        write_html(html_path, stats=stats, title=f"Statistics of {stats.source}")
    if json_:
        print_json(report_dict(stats=stats))
    else:
        _print_statistics(stats)


def _batches(paths: list[Path], ids: tuple[str, ...] = ()) -> list[DatasetStatistics]:
    """One statistics per batch: each FILE, and each data file directly inside a FOLDER.

    A folder without such files (e.g. a hive-partitioned parquet dataset) is one batch.
    Duplicate rows and repeated ``ids`` are counted, so an inferred schema carries its
    ``quality:`` rules (data quality checks are on by default).
    """
    out: list[DatasetStatistics] = []
    for path in paths:
        files = (
            sorted(
                p
                for p in path.iterdir()
                if p.is_file() and p.suffix.lower() in (".parquet", ".csv", ".json")
            )
            if path.is_dir()
            else []
        )
        if files:
            out.extend(_statistics(p, duplicates=True, keys=ids) for p in files)
        else:
            out.append(_statistics(path, duplicates=True, keys=ids))
    return out


@app.command("schema")
def schema_command(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Data (or statistics JSON) to infer from; several files, or a folder, are "
            "read as batches so the schema allows their spread."
        ),
    ],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write the schema YAML here.")
    ] = None,
    max_domain_size: Annotated[
        int, typer.Option(min=0, help="Largest number of distinct values kept as a domain.")
    ] = 50,
    label: Annotated[
        str | None, typer.Option("--label", help="The label column (left out of drift).")
    ] = None,
    ids: Annotated[
        list[str] | None, typer.Option("--id", help="An id column (repeatable).")
    ] = None,
    json_: JsonOpt = False,
    html_path: HtmlOpt = None,
) -> None:
    """Infer a schema to edit and pin; later runs validate against it."""
    for path in files:
        require_path(path)
    from ctloop.data.report import write_html
    from ctloop.data.schema import infer_schema_batches
    from ctloop.data.stats import merge_statistics

    batches = _batches(files, tuple(ids or ()))
    schema = infer_schema_batches(
        batches, max_domain_size=max_domain_size, label=label, ids=ids or ()
    )
    if output is not None:
        schema.save(output)
    if html_path is not None:
        stats = merge_statistics(batches)
        write_html(html_path, stats=stats, title=f"Schema source {stats.source}")
    if json_:
        print_json(schema.to_dict())
    elif output is None:
        typer.echo(schema.to_yaml(), nl=False)
    else:
        console.print(
            f"wrote schema of {len(schema.columns)} columns from {len(batches)} batch(es) "
            f"to {output}"
        )


@app.command("validate")
def validate_command(
    file: Annotated[Path, typer.Argument(help="Data (or statistics JSON) to check.")],
    schema_path: Annotated[Path, typer.Option("--schema", help="The pinned schema YAML.")],
    reference: Annotated[
        Path | None,
        typer.Option("--reference", help="Reference data (or statistics) to measure drift from."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Save the anomalies (JSON).")
    ] = None,
    arrived: Annotated[
        str | None,
        typer.Option(
            "--arrived",
            help="When the batch arrived (ISO time), for the schema's timeliness rules; "
            "default: now.",
        ),
    ] = None,
    json_: JsonOpt = False,
    html_path: HtmlOpt = None,
) -> None:
    """Check data against a schema; exit code 1 when error-level anomalies are found.

    Besides the schema's columns: duplicate rows and ids, complete rows and
    timeliness, against the schema's ``quality`` rules.
    """
    from datetime import UTC, datetime

    from ctloop.core.errors import UserInputError

    for path in (file, schema_path, reference):
        if path is not None:
            require_path(path)  # before the data libraries load
    arrived_at = None
    if arrived is not None:
        try:
            arrived_at = datetime.fromisoformat(arrived)
        except ValueError:
            raise UserInputError(
                f"--arrived must be an ISO date/time such as 2013-02-01T06:00. Got {arrived!r}."
            ) from None
        arrived_at = arrived_at if arrived_at.tzinfo else arrived_at.replace(tzinfo=UTC)
    from ctloop.data.report import report_dict, write_html
    from ctloop.data.schema import Schema
    from ctloop.data.skew import validate_statistics

    schema = Schema.load(schema_path)
    stats = _statistics(file, duplicates=True, keys=tuple(schema.columns_with_role("id")))
    ref = _statistics(reference) if reference is not None else None
    result = validate_statistics(stats, schema, reference=ref, arrived_at=arrived_at)
    if output is not None:
        result.save(output)
    if html_path is not None:
        write_html(
            html_path, stats=stats, reference=ref, anomalies=result, title=f"Validation of {file}"
        )
    if json_:
        print_json(report_dict(anomalies=result))
    else:
        _print_anomalies(result)
        if result.drift is not None:
            _print_drift(result.drift)
    if not result.ok:
        # A CtloopError (not typer.Exit) so every entry point exits with code 1.
        raise ValidationFailed(
            f"{len(result.errors)} error-level anomalies in {file} (listed above)."
        )


@app.command("drift")
def drift_command(
    reference: Annotated[Path, typer.Argument(help="Reference data or statistics JSON.")],
    current: Annotated[Path, typer.Argument(help="Current data or statistics JSON.")],
    drift_share: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Share of drifted features that makes dataset drift."),
    ] = 0.5,
    schema_path: Annotated[
        Path | None,
        typer.Option(
            "--schema",
            help="Schema YAML: its ids, labels, event times, calendar and ignored columns are "
            "left out of the share, its drift settings applied.",
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", help="A column to leave out of the share (repeatable)."),
    ] = None,
    weights_path: Annotated[
        Path | None,
        typer.Option(
            "--weights",
            help="JSON object of feature -> weight (e.g. the model's feature importance).",
        ),
    ] = None,
    json_: JsonOpt = False,
    html_path: HtmlOpt = None,
) -> None:
    """Per-feature drift between two datasets and the dataset verdict."""
    import json

    for path in (reference, current, schema_path, weights_path):
        if path is not None:
            require_path(path)  # before the data libraries load

    from ctloop.core.errors import UserInputError
    from ctloop.data.drift import compute_drift
    from ctloop.data.report import report_dict, write_html
    from ctloop.data.schema import Schema

    ref, cur = _statistics(reference), _statistics(current)
    excluded = set(exclude or ())
    config = None
    if schema_path is not None:
        schema = Schema.load(schema_path)
        excluded |= schema.drift_excluded()
        config = {k: v for k, v in schema.drift_config().items() if k in ref.columns}
    weights = None
    if weights_path is not None:
        try:
            weights = json.loads(weights_path.read_text())
        except (OSError, ValueError) as exc:
            raise UserInputError(f"Cannot read weights from {weights_path}: {exc}") from exc
        if not isinstance(weights, dict) or not all(
            isinstance(v, int | float) for v in weights.values()
        ):
            raise UserInputError(
                f"{weights_path} must hold a JSON object of feature name -> number."
            )
    shared = [n for n in ref.columns if n in cur.columns]
    report = compute_drift(
        ref,
        cur,
        drift_share=drift_share,
        config=config,
        exclude=[n for n in shared if n in excluded],
        weights=weights,
    )
    if html_path is not None:
        write_html(
            html_path,
            stats=cur,
            reference=ref,
            drift=report,
            title=f"Drift {reference.name} -> {current.name}",
        )
    if json_:
        print_json(report_dict(drift=report))
    else:
        _print_drift(report)


def _share(count: int, rate: float) -> str:
    """A percentage that never rounds a few missing values down to 0.0%."""
    if count and rate < 0.001:
        return f"<0.1% ({count})"
    return f"{rate:.1%}"
