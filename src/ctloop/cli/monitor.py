"""``ctloop monitor drift|outputs|decay|estimate|...``: read the prediction log and judge it.

Exit codes: 0 judged and fine, 1 fired, 3 could not judge (``no_data``: no rows in
the window, too few labels, no reference), so a script never mistakes silence for health.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from ctloop.cli.output import console, print_json, print_table
from ctloop.core.errors import CtloopError, UserInputError
from ctloop.core.settings import load_settings

app = typer.Typer(no_args_is_help=True)

EXIT_FIRED = 1
EXIT_NO_DATA = 3

SinceOpt = Annotated[str | None, typer.Option(
    "--since", help="start of the window: ISO date/time or a duration back from now (7d, 24h)")]
UntilOpt = Annotated[str | None, typer.Option(
    "--until", help="end of the window (exclusive): ISO date/time or a duration back from now")]
LogOpt = Annotated[str | None, typer.Option(
    "--log", help="prediction log folder (default: predictions/ under the project home)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the result as JSON")]
RecordOpt = Annotated[bool, typer.Option(
    "--record", help="keep the result as a MonitorReport artifact")]


def parse_when(text: str | None, option: str) -> datetime | None:
    """``2013-07-01``, ``2013-07-01T12:00`` or a duration back from now (``7d``)."""
    if text is None:
        return None
    from ctloop.triggers.definitions import parse_duration

    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        try:
            seconds = parse_duration(text, option)
        except UserInputError:
            raise UserInputError(
                f"{option} must be an ISO date/time (2013-07-01) or a duration such as 7d or "
                f"24h. Got {text!r}."
            ) from None
        return datetime.now(UTC) - timedelta(seconds=seconds or 0)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _log(path: str | None):  # type: ignore[no-untyped-def]
    from ctloop.requestlog.log import open_prediction_log

    return open_prediction_log(path, settings=load_settings())


def _finish(result: Any, as_json: bool, record: bool) -> None:
    if record:
        from ctloop.artifacts import open_artifact_store
        from ctloop.metadata import open_metadata_store
        from ctloop.monitoring.monitors import record_result

        settings = load_settings()
        record_result(result, open_metadata_store(settings.metadata_url),
                      open_artifact_store(settings.artifacts_url))
    if as_json:
        print_json(result.to_dict())
    else:
        style = {"fired": "bold red", "ok": "green", "no_data": "yellow"}[result.status]
        console.print(result.summary(), style=style, highlight=False, soft_wrap=True)
        if result.kind == "drift" and result.details.get("scores"):
            print_table(None, ["feature", "method", "score", "drifted"], [
                [name, s["method"], f"{s['score']:.4g}", "yes" if s["drifted"] else "no"]
                for name, s in result.details["scores"].items()
            ])
    if result.fired:
        raise typer.Exit(EXIT_FIRED)
    if result.no_data:
        raise typer.Exit(EXIT_NO_DATA)


@app.command("drift")
def drift(
    model: Annotated[str, typer.Argument(help="model name as logged by the server")],
    reference: Annotated[str | None, typer.Option(
        "--reference", help="training data (parquet/CSV) or a statistics JSON file")] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    share: Annotated[float, typer.Option(help="fires when this share of features drifted")] = 0.5,
    min_rows: Annotated[int, typer.Option(help="judge only with at least this many rows")] = 100,
    log: LogOpt = None,
    record: RecordOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Did the served features drift from the reference? Exit 1 when they did, 3 without data."""
    from ctloop.monitoring.monitors import check_drift

    result = check_drift(_log(log), model, reference, start=parse_when(since, "--since"),
                         end=parse_when(until, "--until"), share=share, min_rows=min_rows)
    _finish(result, as_json, record)


@app.command("outputs")
def outputs(
    model: Annotated[str, typer.Argument(help="model name as logged by the server")],
    reference_since: Annotated[str, typer.Option(
        "--reference-since", help="start of the reference window (ISO date/time or 7d)")],
    reference_until: Annotated[str, typer.Option(
        "--reference-until", help="end of the reference window (exclusive)")],
    since: SinceOpt = None,
    until: UntilOpt = None,
    min_rows: Annotated[int, typer.Option(help="judge only with this many answers")] = 100,
    log: LogOpt = None,
    record: RecordOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Did the model's answers or the labels drift from an earlier window? Every task:
    values, P(positive) or the predicted class. Exit 1 when they did, 3 without data."""
    from ctloop.monitoring.monitors import (
        check_output_drift,
        served_outputs,
        served_rows,
        task_from_log,
        task_from_registry,
    )

    prediction_log = _log(log)
    start, end = (parse_when(reference_since, "--reference-since"),
                  parse_when(reference_until, "--reference-until"))
    earlier = served_rows(prediction_log.read(model_name=model, start=start, end=end,
                                              with_labels=True))
    task, classes = None, None
    try:
        from ctloop.metadata import open_metadata_store

        task, classes = task_from_registry(open_metadata_store(load_settings().metadata_url),
                                           model)
    except CtloopError:  # no registry: the log says what the task is
        pass
    if task is None:
        task = task_from_log(earlier[earlier["label"].notna()])
    result = check_output_drift(prediction_log, model, served_outputs(earlier, task, classes),
                                task=task, classes=classes, start=parse_when(since, "--since"),
                                end=parse_when(until, "--until"), min_rows=min_rows)
    _finish(result, as_json, record)


@app.command("decay")
def decay(
    model: Annotated[str, typer.Argument(help="model name as logged by the server")],
    metric: Annotated[str | None, typer.Option(
        help="roc_auc, accuracy, macro_f1, log_loss, ... rmse (default: the model's own: "
             "its task's headline metric)")] = None,
    baseline: Annotated[float | None, typer.Option(
        help="compare with this value (default: the registry's evaluation)")] = None,
    max_drop: Annotated[float, typer.Option(help="fires when worse than baseline by more")] = 0.05,
    min_labels: Annotated[int, typer.Option(help="judge only with this many labels")] = 200,
    since: SinceOpt = None,
    until: UntilOpt = None,
    log: LogOpt = None,
    record: RecordOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Did the metric on labelled predictions fall? Exit 1 when it did, 3 without enough labels."""
    from ctloop.metadata import open_metadata_store
    from ctloop.monitoring.monitors import check_decay

    store = None if baseline is not None else open_metadata_store(load_settings().metadata_url)
    result = check_decay(_log(log), model, metric=metric, baseline=baseline, max_drop=max_drop,
                         min_labels=min_labels, start=parse_when(since, "--since"),
                         end=parse_when(until, "--until"), store=store)
    _finish(result, as_json, record)


@app.command("estimate")
def estimate(
    model: Annotated[str, typer.Argument(help="model name as logged by the server")],
    metric: Annotated[str | None, typer.Option(
        help="binary: roc_auc, accuracy, precision, recall, f1 or expected_cost; multiclass: "
             "accuracy, macro_f1, weighted_f1 or roc_auc (default: the model's own)")] = None,
    baseline: Annotated[float | None, typer.Option(
        help="compare with this value (default: the registry's evaluation)")] = None,
    max_drop: Annotated[float, typer.Option(help="fires when worse than baseline by more")] = 0.05,
    model_path: Annotated[str | None, typer.Option(
        "--model", help="the served model's folder (default: the registry's version)")] = None,
    min_rows: Annotated[int, typer.Option(help="judge only with this many served rows")] = 200,
    since: SinceOpt = None,
    until: UntilOpt = None,
    log: LogOpt = None,
    record: RecordOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Estimated (label-free) performance of the window; exit 1 when it fell, 3 without data."""
    from ctloop.monitoring.estimate import check_estimated_performance

    manifest = None
    store = artifacts = None
    if model_path is not None:
        from ctloop.models.flavors import read_manifest

        manifest = read_manifest(model_path)
    if manifest is None or baseline is None:
        from ctloop.artifacts import open_artifact_store
        from ctloop.metadata import open_metadata_store

        settings = load_settings()
        store = open_metadata_store(settings.metadata_url)
        artifacts = open_artifact_store(settings.artifacts_url)
    result = check_estimated_performance(
        _log(log), model, manifest=manifest, metric=metric, baseline=baseline,
        max_drop=max_drop, min_rows=min_rows, start=parse_when(since, "--since"),
        end=parse_when(until, "--until"), store=store, artifacts=artifacts,
    )
    _finish(result, as_json, record)


@app.command("outliers")
def outliers(
    model: Annotated[str, typer.Argument(help="model name as logged by the server")],
    max_rate: Annotated[float, typer.Option(
        help="fires when more served rows than this share are outliers")] = 0.05,
    min_rows: Annotated[int, typer.Option(help="judge only with this many scored rows")] = 100,
    since: SinceOpt = None,
    until: UntilOpt = None,
    log: LogOpt = None,
    record: RecordOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Share of served rows the model's detector scores as outliers; exit 1 above --max-rate."""
    from ctloop.monitoring.serving_checks import check_outliers

    result = check_outliers(_log(log), model, max_rate=max_rate, min_rows=min_rows,
                            start=parse_when(since, "--since"), end=parse_when(until, "--until"))
    _finish(result, as_json, record)


@app.command("skew")
def skew(
    model: Annotated[str, typer.Argument(help="model name as logged by the server")],
    schema_path: Annotated[str, typer.Option("--schema", help="the training data's schema YAML")],
    reference: Annotated[str | None, typer.Option(
        "--reference", help="training data or statistics JSON, to report drift too")] = None,
    min_rows: Annotated[int, typer.Option(help="judge only with this many served rows")] = 100,
    since: SinceOpt = None,
    until: UntilOpt = None,
    log: LogOpt = None,
    record: RecordOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Served features against the training schema, and inputs the store left empty."""
    from ctloop.data.schema import Schema
    from ctloop.monitoring.serving_checks import check_serving_skew

    result = check_serving_skew(_log(log), model, Schema.load(schema_path), reference=reference,
                                min_rows=min_rows, start=parse_when(since, "--since"),
                                end=parse_when(until, "--until"))
    if not as_json:
        for line in result.strings("anomalies"):
            console.print(line, highlight=False, soft_wrap=True)
    _finish(result, as_json, record)


@app.command("report")
def report(
    model: Annotated[str, typer.Argument(help="model name as logged by the server")],
    html_path: Annotated[str, typer.Option("--html", help="write the page here")],
    reference: Annotated[str | None, typer.Option(
        "--reference", help="training data or statistics JSON, for the drift chart")] = None,
    model_path: Annotated[str | None, typer.Option(
        "--model", help="the served model's folder, for the estimated metric")] = None,
    metric: Annotated[str | None, typer.Option(
        help="metric charted live and estimated (default: the model's own)")] = None,
    windows: Annotated[int, typer.Option(min=1, help="number of windows")] = 12,
    since: SinceOpt = None,
    until: UntilOpt = None,
    log: LogOpt = None,
) -> None:
    """An offline HTML page of the model's signals over time (inline SVG, no scripts)."""
    from pathlib import Path

    from ctloop.monitoring.report import firings, monitor_timeline, render_report, report_metric

    manifest = None
    if model_path is not None:
        from ctloop.models.flavors import read_manifest

        manifest = read_manifest(model_path)
    metric, _ = report_metric(_log(log), model, manifest, metric)
    timeline = monitor_timeline(_log(log), model, reference=reference, manifest=manifest,
                                metric=metric, windows=windows,
                                start=parse_when(since, "--since"),
                                end=parse_when(until, "--until"))
    marks: list[tuple[datetime, str]] = []
    try:
        from ctloop.metadata import open_metadata_store

        marks = firings(open_metadata_store(load_settings().metadata_url), model)
    except CtloopError as exc:  # the page is still useful without firings
        console.print(f"(trigger firings not shown: {exc})", style="yellow")
    Path(html_path).write_text(render_report(model, timeline, metric=metric, marks=marks))
    console.print(f"wrote {html_path}: {len(timeline)} windows, {len(marks)} firings")
    if not timeline:
        raise typer.Exit(EXIT_NO_DATA)


@app.command("log")
def show_log(
    model: Annotated[str, typer.Argument(help="model name as logged by the server")],
    limit: Annotated[int, typer.Option(min=1, help="newest rows to show")] = 20,
    since: SinceOpt = None,
    until: UntilOpt = None,
    labels: Annotated[bool, typer.Option("--labels", help="join the labels")] = False,
    every: Annotated[bool, typer.Option(
        "--all", help="also refused requests, explanations and shadow rows (what monitors "
        "skip)")] = False,
    log: LogOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The newest logged predictions of a model."""
    frame = _log(log).read(model_name=model, start=parse_when(since, "--since"),
                           end=parse_when(until, "--until"), with_labels=labels,
                           include_rejected=every, include_unserved=every)
    frame = frame.tail(limit)
    if as_json:
        rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
        print_json({"model": model, "rows": rows})
        return
    cols = ["request_id", "ts", "model_version", "route", "prediction", "latency_ms"]
    cols += ["protocol", "status", "served"] if every else []
    cols += ["label"] if labels else []
    cols += [c for c in frame.columns if c.startswith("f_")][:4]
    print_table(f"predictions of {model} (newest {len(frame)})", cols,
                frame[cols].astype(object).where(frame[cols].notna(), None).values.tolist())
