"""``ctloop predict`` (batch scoring of a file) and ``ctloop explain`` (why a row scored so).

Both resolve ``NAME`` to the alias the service answers with (``champion``
unless ``[ctloop.serving] alias`` says otherwise), load the version checked
against its recorded sha256, and fill missing model inputs from the online
feature store exactly as ``ctloop serve`` does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ctloop.cli.main import app
from ctloop.cli.output import console, err_console, print_json
from ctloop.core.errors import CtloopError, NotFound, UserInputError
from ctloop.core.settings import Settings, load_settings

if TYPE_CHECKING:
    import pandas as pd

    from ctloop.features import FeatureStore
    from ctloop.metadata.base import MetadataStore
    from ctloop.requestlog.records import PredictionLog
    from ctloop.serving.config import ServingConfig

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


@contextmanager
def _stores(settings: Settings) -> Iterator[tuple[MetadataStore, Any]]:
    from ctloop.artifacts import open_artifact_store
    from ctloop.metadata import open_metadata_store

    store = open_metadata_store(settings.metadata_url)
    try:
        yield store, open_artifact_store(settings.artifacts_url)
    finally:
        store.close()


def _serving_config(settings: Settings) -> ServingConfig:
    from ctloop.serving.config import ServingConfig

    return ServingConfig.from_table(settings.tables.serving)


def _feature_store(
    config: ServingConfig, settings: Settings, store: MetadataStore, enabled: bool
) -> FeatureStore | None:
    """The feature store the service would use, or None (no catalog, no views, or disabled)."""
    if not enabled:
        return None
    from ctloop.features import FeatureStore

    if config.features:
        return FeatureStore.from_file(
            config.features, online_store=settings.online_store_url, metadata=store
        )
    try:
        fs = FeatureStore.open(metadata=store, online_store=settings.online_store_url)
    except CtloopError:
        return None
    if not fs.views:
        fs.close()
        return None
    return fs


def _prediction_log(config: ServingConfig, settings: Settings) -> PredictionLog:
    """The prediction log the service writes to (``[ctloop.serving] prediction_log``)."""
    from ctloop.requestlog.log import open_prediction_log

    if config.prediction_log == "":
        raise UserInputError(
            '--log needs a prediction log, but [ctloop.serving] prediction_log is "" (off).'
        )
    return open_prediction_log(config.prediction_log or None, settings=settings)


FeaturesOpt = Annotated[
    bool,
    typer.Option(
        "--features/--no-features",
        help="Fill missing model inputs from the online feature store, as the service does.",
    ),
]
NowOpt = Annotated[str | None, typer.Option(help="As-of time (ISO) for online feature lookups.")]


@app.command("predict")
def predict(
    model: Annotated[
        str, typer.Argument(metavar="MODEL", help="NAME (its serving alias), NAME@ALIAS or NAME:V.")
    ],
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="Parquet or CSV file.")],
    output_path: Annotated[
        Path, typer.Argument(metavar="OUTPUT", help="Parquet or CSV file to write.")
    ],
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace OUTPUT if it exists.")
    ] = False,
    chunk_rows: Annotated[
        int, typer.Option(min=1, help="Rows per chunk (parquet); memory is one chunk.")
    ] = 65_536,
    features: FeaturesOpt = True,
    now: NowOpt = None,
    log: Annotated[
        bool, typer.Option(help="Also append every scored row to the prediction log.")
    ] = False,
    id_column: Annotated[
        str | None, typer.Option(help="Column logged as each row's id, for joining labels.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Draw a progress bar on stderr.")] = True,
    on_invalid: Annotated[str, typer.Option(
        help="Rows the prediction service would refuse (a null where training had none, an "
        "infinity, a wrong type): fail (nothing written), skip, or flag (an 'invalid' "
        "column, unscored).")] = "fail",
    json_: JsonOpt = False,
) -> None:
    """Score every row of INPUT into OUTPUT (input columns + score + decision), with lineage.

    Rows are checked exactly as the prediction service checks a request."""
    from ctloop.core.paths import batch_paths, require_stored

    batch_paths(input_path, output_path, overwrite)  # before the model libraries load
    settings = load_settings()
    require_stored(settings.metadata_url, "model", model.split("@")[0].split(":")[0])
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from ctloop.batch import predict_file, resolve_ref
    from ctloop.registry import ModelRegistry

    config = _serving_config(settings)
    ref = resolve_ref(model, config.alias)
    with _stores(settings) as (store, artifacts):
        fs = _feature_store(config, settings, store, features)
        plog = _prediction_log(config, settings) if log else None
        bar = Progress(
            TextColumn("[bold]scoring[/] {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err_console,
            disable=not progress,
            transient=True,
        )
        task = bar.add_task(input_path.name, total=None)
        try:
            with bar:
                result = predict_file(
                    ModelRegistry(store, artifacts=artifacts),
                    artifacts,
                    ref,
                    input_path,
                    output_path,
                    feature_store=fs,
                    feature_refs=config.feature_refs.get(ref.split("@")[0].split(":")[0]),
                    overwrite=overwrite,
                    chunk_rows=chunk_rows,
                    now=now,
                    prediction_log=plog,
                    id_column=id_column,
                    on_start=lambda total: bar.update(task, total=total),
                    on_progress=lambda n: bar.advance(task, n),
                    on_invalid=on_invalid,
                )
        finally:
            if fs is not None:
                fs.close()
            if plog is not None:
                plog.close()
    if json_:
        print_json(result.to_dict())
        return
    summary = result.to_dict()
    decided = (
        f", {result.positives} at or above {result.threshold:g}"
        if result.threshold is not None
        else ""
    )
    console.print(
        f"scored {result.rows} rows with {result.model}:{result.version} in "
        f"{result.seconds:.1f} s ({summary['rows_per_second']} rows/s){decided} -> "
        f"{result.output}",
        highlight=False,
    )
    console.print(
        f"run {result.run_id[:12]}; lineage: ctloop lineage {result.output_artifact_id[:12]}",
        highlight=False,
    )


def _read_rows(path: Path, limit: int) -> pd.DataFrame:
    """The first ``limit`` rows of a parquet, CSV or JSON file."""
    import pandas as pd

    if not path.is_file():
        raise NotFound(f"The input file {path} does not exist.")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            batch = next(pq.ParquetFile(path).iter_batches(batch_size=limit), None)
            return batch.to_pandas() if batch is not None else pd.DataFrame()
        if suffix == ".csv":
            return pd.read_csv(path, nrows=limit)
        if suffix in (".json", ".jsonl"):
            return _json_rows(path, suffix, limit)
    except (OSError, ValueError) as exc:
        raise UserInputError(f"Cannot read {path}: {' '.join(str(exc).split())}") from None
    raise UserInputError(f"The input {path} must be a .parquet, .csv, .json (rows) or .jsonl file.")


def _json_rows(path: Path, suffix: str, limit: int) -> pd.DataFrame:
    import pandas as pd

    if suffix == ".jsonl":
        return pd.read_json(path, lines=True, nrows=limit)
    body = json.loads(path.read_text())
    if isinstance(body, dict):
        body = body.get("instances", body.get("rows", body))
    if isinstance(body, dict):  # {"columns": {...}} or a column mapping
        body = body.get("columns", body)
        return pd.DataFrame(body).head(limit)
    if not isinstance(body, list) or not all(isinstance(r, dict) for r in body):
        raise UserInputError(
            f"{path} must hold a list of row objects, or {{'instances': [...]}} / "
            "{'rows': [...]} / {'columns': {...}}."
        )
    return pd.DataFrame.from_records(body[:limit])


@app.command("explain")
def explain_cmd(
    model: Annotated[
        str, typer.Argument(metavar="MODEL", help="NAME (its serving alias), NAME@ALIAS or NAME:V.")
    ],
    input_path: Annotated[
        Path, typer.Argument(metavar="INPUT", help="Parquet, CSV, JSON or JSONL rows.")
    ],
    top: Annotated[int, typer.Option(min=1, help="Features shown per row, largest first.")] = 5,
    limit: Annotated[int, typer.Option(min=1, help="Explain at most this many rows.")] = 10,
    features: FeaturesOpt = True,
    now: NowOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Per-feature contributions to the first rows of INPUT: why each scored as it did."""
    from ctloop.core.paths import require_input, require_stored

    require_input(input_path)  # before the model libraries load
    settings = load_settings()
    require_stored(settings.metadata_url, "model", model.split("@")[0].split(":")[0])
    from ctloop.batch import resolve_ref
    from ctloop.registry import ModelRegistry
    from ctloop.serving.pool import Served, feature_refs_of
    from ctloop.serving.routes.explain import explain_rows

    config = _serving_config(settings)
    ref = resolve_ref(model, config.alias)
    frame = _read_rows(input_path, limit)
    if frame.empty:
        raise UserInputError(f"The input {input_path} has no rows to explain.")
    with _stores(settings) as (store, artifacts):
        registry = ModelRegistry(store, artifacts=artifacts)
        record = registry.get(ref)
        loaded = registry.load(f"{record.name}:{record.version}", artifacts)
        refs = feature_refs_of(store, record, config.feature_refs.get(record.name))
        fs = _feature_store(config, settings, store, features)
        try:
            served = Served("cli", record.name, record.version, loaded, refs)
            result = explain_rows(served, frame, fs, now)
        finally:
            if fs is not None:
                fs.close()
    rows = result.to_rows(top)
    if json_:
        print_json(
            {
                "model": record.name,
                "version": record.version,
                "space": result.space,
                "method": result.method,
                "features": list(result.features),
                "explanations": rows,
            }
        )
        return
    _print_explanations(record.name, record.version, result.space, frame, rows)


def _print_explanations(
    name: str, version: int, space: str, frame: pd.DataFrame, rows: list[dict[str, Any]]
) -> None:
    from rich.table import Table

    scale = max((abs(c["value"]) for r in rows for c in r["contributions"]), default=1.0) or 1.0
    for i, row in enumerate(rows):
        table = Table(
            title=(
                f"row {i}: {name}:{version} predicts {row['prediction']:.4g} "
                f"(base {row['base_value']:.3f} + contributions = {row['raw_score']:.3f} {space})"
            ),
            title_justify="left",
        )
        for column in ("feature", "value", "contribution", ""):
            table.add_column(column, justify="right" if column == "contribution" else "left")
        for item in row["contributions"]:
            value = item["value"]
            shown = frame[item["feature"]].iloc[i] if item["feature"] in frame.columns else "—"
            width = max(1, round(abs(value) / scale * 20))
            bar = f"[red]{'█' * width}[/]" if value > 0 else f"[green]{'█' * width}[/]"
            table.add_row(item["feature"], str(shown), f"{value:+.4f}", bar)
        console.print(table)
