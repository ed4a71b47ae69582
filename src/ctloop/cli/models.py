"""``ctloop models``: registered models, aliases, promotion, rollback, comparison."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ctloop.cli.bundles import export, import_bundle
from ctloop.cli.modeltest import test_model
from ctloop.cli.options import key_values
from ctloop.cli.output import console, print_json, print_table
from ctloop.cli.replays import ReplayOpt, empty_note, reading_replay
from ctloop.core.errors import UserInputError
from ctloop.core.jsontypes import (
    JSONObject,
    JSONValue,
    as_list,
    as_number,
    as_object,
    as_str,
    as_strs,
)
from ctloop.core.paths import require_stored
from ctloop.core.settings import load_settings
from ctloop.metadata import open_metadata_store, to_dict
from ctloop.metadata.base import AliasEventRecord, ModelVersionRecord

if TYPE_CHECKING:
    from ctloop.models.tasks import Task
    from ctloop.registry import ModelRegistry
    from ctloop.registry.summaries import ComparisonRow

app = typer.Typer(no_args_is_help=True)
app.command("export")(export)  # environments: a version and its evidence as one bundle
app.command("import-bundle")(import_bundle)
app.command("test")(test_model)  # the candidate served for real, before promotion

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
AliasOpt = Annotated[str, typer.Option("--alias", "-a", help="Alias to move.")]
ReasonOpt = Annotated[str, typer.Option("--reason", "-r", help="Why; kept in the history.")]


@contextmanager
def _registry() -> Iterator[ModelRegistry]:
    from ctloop.registry import ModelRegistry  # loads the model libraries: only when used

    store = open_metadata_store(load_settings().metadata_url)
    try:
        yield ModelRegistry(store)
    finally:
        store.close()


def _when(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def _event(event: AliasEventRecord) -> dict[str, JSONValue]:
    return to_dict(event)


@app.command("list")
def list_models(json_: JsonOpt = False, replay: ReplayOpt = None) -> None:
    """Registered models with their latest version and aliases."""
    with reading_replay(replay), _registry() as reg:
        models = reg.models()
    if json_:
        print_json([m.to_json() for m in models])
        return
    rows = [
        (
            m.name,
            m.latest_version,
            m.versions,
            ", ".join(f"{a}={v}" for a, v in sorted(m.aliases.items())),
            m.updated_at,
        )
        for m in models
    ]
    print_table("Models", ["name", "latest", "versions", "aliases", "updated"], rows)
    if not rows:
        with reading_replay(replay):
            console.print(empty_note("models", "models list", replay), highlight=False,
                          soft_wrap=True)


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    json_: JsonOpt = False,
) -> None:
    """One version (NAME:VERSION, NAME@ALIAS) or all versions of a model (NAME)."""
    from ctloop.registry import parse_ref

    parsed = parse_ref(ref)
    require_stored(load_settings().metadata_url, "model", parsed.name)
    with _registry() as reg:
        aliases = reg.aliases(parsed.name)
        if parsed.version is None and parsed.alias is None:
            _show_versions(parsed.name, reg.versions(parsed.name), aliases, json_)
            return
        record = reg.get(parsed)
    data = to_dict(record)
    data["aliases"] = sorted(a for a, v in aliases.items() if v == record.version)
    if json_:
        print_json(data)
        return
    _print_version(record, data)


def _show_versions(name: str, versions: list[ModelVersionRecord], aliases: dict[str, int],
                   json_: bool) -> None:
    """Every version of a model: a table with its aliases and headline metric, or JSON."""
    if json_:
        print_json(
            {
                "name": name,
                "aliases": aliases,
                "versions": [to_dict(v) for v in versions],
            }
        )
        return
    by_version: dict[int, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(version, []).append(alias)
    headline = _headline(versions[-1].properties) if versions else "roc_auc"
    rows = [
        (
            v.version,
            ", ".join(sorted(by_version.get(v.version, []))),
            _blessed(v.properties),
            _value(v.properties, headline),
            v.created_by,
            _when(v.created_at),
            v.description,
        )
        for v in versions
    ]
    print_table(
        f"Model {name}",
        ["version", "aliases", "blessed", headline, "by", "created", "description"],
        rows,
    )


def _print_version(record: ModelVersionRecord, data: dict[str, JSONValue]) -> None:
    """One version: its record, evaluation, gate verdict, provenance and promotions."""
    aliases = ", ".join(as_strs(data["aliases"])) or "-"
    console.print(f"[bold]{record.name}:{record.version}[/bold]  aliases: {aliases}")
    for key in ("description", "artifact_id", "run_id", "created_by"):
        console.print(f"  {key}: {data[key] or '-'}")
    console.print(f"  created_at: {_when(record.created_at)}")
    props = record.properties
    imported = as_object(props.get("imported"))
    if imported:  # ctloop models import: where the bytes came from
        console.print(f"  imported_from: {imported.get('source')} ({imported.get('format')}, "
                      f"sha256 {imported.get('sha256')})", highlight=False)
    if record.tags:
        console.print(f"  tags: {record.tags}")
    evaluation = as_object(as_object(props.get("evaluation")).get("overall"))
    if evaluation:
        _print_evaluation(evaluation, _task(props))
    blessing = as_object(props.get("blessing"))
    if blessing:
        console.print(
            f"  gate: {'blessed' if blessing.get('blessed') else 'NOT blessed'}"
            f" — {blessing.get('summary', '')}"
        )
    provenance = as_object(props.get("provenance"))
    if provenance:
        console.print(
            f"  imported from: {provenance.get('source_environment')} "
            f"{provenance.get('source_name')}:{provenance.get('source_version')} "
            f"(runs {', '.join(as_strs(provenance.get('run_ids'))) or '-'}; bundle sha256 "
            f"{str(provenance.get('bundle_sha256'))[:16]}...)"
        )
    for moved in map(as_object, as_list(props.get("promotions"))):
        console.print(f"  promoted to: {moved.get('environment')} {moved.get('name')}:"
                      f"{moved.get('version')} @{moved.get('alias')} ({moved.get('at')})")


def _print_evaluation(evaluation: JSONObject, task: str | None) -> None:
    """Metrics with their direction; per-class table and N x N confusion matrix for
    classifiers, residual quantiles for a regression."""
    from ctloop.models.tasks import HIGHER_IS_BETTER, better_word

    metric_rows = [
        (k, _fmt(as_number(m.get("value"))), _fmt(as_number(m.get("lo"))),
         _fmt(as_number(m.get("hi"))), better_word(k) if k in HIGHER_IS_BETTER else "")
        for k, m in ((k, as_object(m)) for k, m in as_object(evaluation.get("metrics")).items())
    ]
    title = f"Metrics ({evaluation.get('n')} rows{', ' + task if task else ''})"
    print_table(title, ["metric", "value", "lo", "hi", "better"], metric_rows)
    per_class = as_object(evaluation.get("per_class"))
    if per_class:
        print_table("Per class", ["class", "precision", "recall", "f1", "support", "predicted"], [
            (c, _fmt(as_number(r.get("precision"))), _fmt(as_number(r.get("recall"))),
             _fmt(as_number(r.get("f1"))), r.get("support"), r.get("predicted"))
            for c, r in ((c, as_object(r)) for c, r in per_class.items())
        ])
    matrix = as_list(evaluation.get("confusion_matrix"))
    if matrix:
        classes = [str(c) for c in (as_list(evaluation["classes"]) if "classes" in evaluation
                                    else range(len(matrix)))]
        print_table("Confusion matrix (rows actual, columns predicted)",
                    ["actual", *classes],
                    [(c, *as_list(row)) for c, row in zip(classes, matrix, strict=True)])
    residuals = as_object(evaluation.get("residuals"))
    q = as_object(residuals.get("quantiles"))
    if q:
        print_table("Residuals (label - prediction)",
                    ["n", "mean", "p05", "p25", "median", "p75", "p95"],
                    [(residuals["n"], *(_fmt(as_number(v)) for v in (
                        residuals["mean"], q["p05"], q["p25"], q["p50"], q["p75"], q["p95"])))])


@app.command("register")
def register(
    name: str,
    artifact_id: Annotated[str, typer.Argument(help="id (or prefix) of a Model artifact")],
    description: Annotated[str, typer.Option(help="what this version is")] = "",
    tag: Annotated[list[str] | None, typer.Option("--tag", help="KEY=VALUE (repeatable)")] = None,
    json_: JsonOpt = False,
) -> None:
    """Register a stored model artifact as the next version of NAME (no promotion)."""
    tags = key_values(tag, "--tag")
    with _registry() as reg:
        artifact = reg.store.get_artifact(artifact_id)
        if artifact.type != "Model":
            raise UserInputError(
                f"Artifact {artifact.id} is a {artifact.type}, not a Model; register the "
                "output of a training step (see `ctloop artifacts list --type Model`)."
            )
        record = reg.register(name, artifact.id, description=description, tags=tags)
    if json_:
        print_json(to_dict(record))
        return
    console.print(f"registered {name}:{record.version} from artifact {artifact.id[:12]}")


@app.command("describe")
def describe(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION or NAME@ALIAS")],
    description: Annotated[str | None, typer.Option(help="new description")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="KEY=VALUE (repeatable)")] = None,
    json_: JsonOpt = False,
) -> None:
    """Change a version's description or add tags (earlier values stay in the record)."""
    if description is None and not tag:
        raise UserInputError("Nothing to change: pass --description TEXT and/or --tag KEY=VALUE.")
    with _registry() as reg:
        record = reg.get(ref)
        record = reg.describe(record.name, record.version, description=description,
                              tags=key_values(tag, "--tag") or None)
    if json_:
        print_json(to_dict(record))
        return
    console.print(f"{record.name}:{record.version}: {record.description or '-'} "
                  f"{record.tags or ''}")


@app.command("promote")
def promote(
    name: str,
    version: int,
    alias: AliasOpt = "champion",
    reason: ReasonOpt = "",
    json_: JsonOpt = False,
) -> None:
    """Point an alias at a version (recorded with who, when and why)."""
    with _registry() as reg:
        event = reg.promote(name, version, alias=alias, reason=reason)
    if json_:
        print_json(_event(event))
        return
    console.print(f"{name}@{alias}: {event.previous_version or '-'} -> {event.version}")


@app.command("rollback")
def rollback(
    name: str,
    alias: AliasOpt = "champion",
    reason: ReasonOpt = "",
    json_: JsonOpt = False,
) -> None:
    """Return an alias to the version that held it before the current one."""
    with _registry() as reg:
        event = reg.rollback(name, alias=alias, reason=reason)
    if json_:
        print_json(_event(event))
        return
    console.print(f"{name}@{alias} rolled back: {event.previous_version} -> {event.version}")


@app.command("history")
def history(
    name: str,
    alias: Annotated[str | None, typer.Option("--alias", "-a", help="Only this alias.")] = None,
    json_: JsonOpt = False,
) -> None:
    """Every alias move of a model, oldest first."""
    with _registry() as reg:
        events = reg.history(name, alias)
    if json_:
        print_json([_event(e) for e in events])
        return
    rows = [
        (_when(e.created_at), e.alias, e.previous_version, e.version, e.actor, e.reason)
        for e in events
    ]
    print_table(f"Alias history of {name}", ["when", "alias", "from", "to", "by", "reason"], rows)


@app.command("compare")
def compare(name: str, a: int, b: int, json_: JsonOpt = False) -> None:
    """Recorded metrics of two versions side by side, overall and per slice."""
    with _registry() as reg:
        result = reg.compare(name, a, b)
    if json_:
        print_json(result.to_json())
        return
    columns = ["metric", f"v{a}", f"v{b}", "delta", "better"]

    def rows(entries: list[ComparisonRow]) -> list[tuple[Any, ...]]:
        return [
            (
                r.metric,
                _fmt(r.a),
                _fmt(r.b),
                _fmt(r.delta),
                {"a": f"v{a}", "b": f"v{b}"}.get(r.better or "", ""),
            )
            for r in entries
        ]

    print_table(f"{name}: v{a} vs v{b} (overall)", columns, rows(result.overall))
    for column, values in result.slices.items():
        for value, entries in values.items():
            print_table(f"{column} = {value}", columns, rows(entries))


def _fmt(value: float | None) -> str | None:
    return None if value is None else f"{value:.4f}"


def _blessed(properties: JSONObject) -> str | None:
    blessing = properties.get("blessing")
    return None if blessing is None else ("yes" if as_object(blessing).get("blessed") else "no")


def _task(properties: JSONObject) -> Task | None:
    from ctloop.models.tasks import normalize_task

    task = as_str(as_object(properties.get("signature")).get("task"))
    return normalize_task(task) if task else None


def _headline(properties: JSONObject) -> str:
    """The version's own headline metric (its task's), roc_auc for versions without a task."""
    from ctloop.models.tasks import default_metric

    task = _task(properties)
    return default_metric(task) if task else "roc_auc"


def _value(properties: JSONObject, metric: str) -> str | None:
    from ctloop.models.evaluation_record import Evaluation

    return _fmt(Evaluation.from_json(properties).metric(metric))


@app.command("import")
def import_(
    name: str,
    path: Annotated[Path, typer.Argument(help="A model file (joblib/pickle, LightGBM, XGBoost, "
                                              "CatBoost .cbm, .onnx) or an MLflow model folder.")],
    flavor: Annotated[str | None, typer.Option(
        help="How to read the file: sklearn, python, lightgbm, xgboost, catboost, onnx "
             "(or which flavor of an MLflow folder); default, what the file says.")] = None,
    sample: Annotated[Path | None, typer.Option(
        help="Rows like the training data (.parquet or .csv): the input columns and types.")
    ] = None,
    task: Annotated[str | None, typer.Option(
        help="binary, multiclass or regression; default, what the model (or --label) says.")
    ] = None,
    label: Annotated[str | None, typer.Option(
        help="A column of --sample holding the label: decides the task and names a "
             "booster's classes.")] = None,
    classes: Annotated[str | None, typer.Option(
        help="Comma-separated class names in the order of the model's probability columns, "
             "for a model that does not record them (an exported network).")] = None,
    description: Annotated[str, typer.Option(help="what this version is")] = "",
    json_: JsonOpt = False,
) -> None:
    """Register a model file or MLflow folder as the next version of NAME (no promotion).

    The version records where it came from ("imported from ...") and the sha256 of the
    bytes read; it is then promoted, served, monitored and replaced like any other.
    """
    import tempfile

    from ctloop.artifacts import open_artifact_store
    from ctloop.data.sources import read_table
    from ctloop.metadata import ArtifactRecord, new_id
    from ctloop.models.importing import import_model

    rows = read_table(sample).to_pandas() if sample is not None else None
    with tempfile.TemporaryDirectory(prefix="ctloop-import-") as tmp:
        imported = import_model(path, Path(tmp) / "model", flavor=flavor, sample=rows,
                                label=label, task=task, classes=_class_names(classes))
        settings = load_settings()
        stored = open_artifact_store(settings.artifacts_url).put(imported.folder)
    provenance = imported.provenance
    with _registry() as reg:
        artifact = reg.store.add_artifact(ArtifactRecord(
            new_id(), "Model", stored.uri, stored.sha256, stored.size, name=name,
            properties={"imported": provenance.to_dict()},
        ))
        record = reg.register(name, artifact.id, description=description or provenance.describe(),
                              properties={"imported": provenance.to_dict()})
    manifest = imported.manifest
    if json_:
        print_json({**to_dict(record), "flavor": manifest["flavor"], "task": manifest["task"],
                    "signature": manifest["signature"]})
        return
    classes = manifest["signature"].get("classes")
    console.print(
        f"registered {name}:{record.version} ({manifest['flavor']}, {manifest['task']}"
        f"{f', classes {classes}' if classes else ''}) {provenance.describe()}",
        highlight=False,
    )


def _class_names(text: str | None) -> list[str | int] | None:
    """``--classes a,b,c`` as names; integers stay integers (``0,1,2``)."""
    if text is None:
        return None
    names = [part.strip() for part in text.split(",") if part.strip()]
    return [int(n) if n.lstrip("-").isdigit() else n for n in names]
