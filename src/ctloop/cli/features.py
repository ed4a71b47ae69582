"""``ctloop features apply|list|search|show|materialize|get|serve``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ctloop.cli.options import key_values
from ctloop.cli.output import console, err_console, print_json, print_table
from ctloop.core.errors import UserInputError
from ctloop.core.jsontypes import as_str
from ctloop.core.settings import load_settings
from ctloop.metadata import open_metadata_store

if TYPE_CHECKING:
    from ctloop.features.catalog import FeatureRow
    from ctloop.features.store import FeatureStore

app = typer.Typer(no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]



def _store() -> FeatureStore:
    from ctloop.features.store import FeatureStore

    settings = load_settings()
    return FeatureStore.open(metadata=settings.metadata_url, online_store=settings.online_store_url)


@app.command("apply")
def apply(
    definitions: Annotated[Path, typer.Argument(help="a Python file defining entities and views")],
    as_json: JsonOpt = False,
) -> None:
    """Register the definitions in the catalog (unchanged ones keep their version)."""
    from ctloop.features.catalog import apply_definitions
    from ctloop.features.store import load_definitions

    defs = load_definitions(definitions)
    if not defs.views and not defs.entities:
        raise UserInputError(
            f"{definitions} defines no Entity or FeatureView at top level; nothing to apply."
        )
    store = open_metadata_store()
    try:
        report = apply_definitions(store, defs)
    finally:
        store.close()
    if as_json:
        print_json(report.to_dict())
        return
    for label, names in (
        ("created", report.created),
        ("new version", report.updated),
        ("unchanged", report.unchanged),
    ):
        for name in names:
            console.print(f"{label:>12}  {name}")
    for warning in report.warnings():
        err_console.print(f"[yellow]warning[/]: {warning}")


def _rows(query: str | None, entity: str | None, tag: str | None, owner: str | None
          ) -> list[FeatureRow]:
    from ctloop.features.catalog import feature_rows

    store = open_metadata_store()
    try:
        return feature_rows(store, query=query, entity=entity, tag=tag, owner=owner)
    finally:
        store.close()


def _print_rows(rows: list[FeatureRow], as_json: bool) -> None:
    if as_json:
        print_json({"features": rows})
        return
    print_table(
        "features",
        ["feature", "v", "entities", "dtype", "owner", "tags", "description"],
        [
            [
                r["ref"],
                r["version"],
                ",".join(r["entities"]),
                r["dtype"],
                r["owner"] or None,
                ",".join(f"{k}={v}" for k, v in r["tags"].items()) or None,
                r["description"] or None,
            ]
            for r in rows
        ],
    )


@app.command("list")
def list_features(
    entity: Annotated[str | None, typer.Option(help="only features of this entity")] = None,
    tag: Annotated[
        str | None, typer.Option(help="only views with this tag (key or key=value)")
    ] = None,
    owner: Annotated[str | None, typer.Option(help="only views of this owner")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Registered features, one per line."""
    _print_rows(_rows(None, entity, tag, owner), as_json)


@app.command("search")
def search(
    query: Annotated[
        str, typer.Argument(help="text found in a name, entity, tag, owner or description")
    ],
    entity: Annotated[str | None, typer.Option(help="only features of this entity")] = None,
    tag: Annotated[str | None, typer.Option(help="only views with this tag")] = None,
    owner: Annotated[str | None, typer.Option(help="only views of this owner")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Find features by name, entity, tag, owner or description."""
    _print_rows(_rows(query, entity, tag, owner), as_json)


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="a view name or a 'view:feature' reference")],
    as_json: JsonOpt = False,
) -> None:
    """A view: versions, source, freshness, features and which models used them."""
    from ctloop.features.catalog import describe
    from ctloop.features.online import open_online_store

    store = open_metadata_store()
    online = open_online_store(load_settings().online_store_url)
    try:
        info = describe(store, name, online=online)
    finally:
        store.close()
        online.close()
    if as_json:
        print_json(info)
        return
    console.print(f"[bold]{info['name']}[/] v{info['version']}  {info['description']}")
    console.print(f"entities: {', '.join(info['entities'])} (keys {', '.join(info['join_keys'])})")
    console.print(f"source: {info['source']}")
    console.print(f"timestamp: {info['timestamp_field'] or '-'}  ttl: {info['ttl_s'] or '-'} s")
    console.print(f"owner: {info['owner'] or '-'}  tags: {info['tags'] or '-'}")
    console.print(f"materialized until: {info['materialized_until'] or 'never'}")
    print_table(
        "features",
        ["feature", "dtype", "definition"],
        [
            [f.get("name"), f.get("dtype"),
             as_str(f.get("function")) + " " + as_str(f.get("column"))]
            for f in info["features"]
        ],
    )
    print_table(
        "versions",
        ["version", "created", "fingerprint"],
        [[v["version"], v["created_at"], v["fingerprint"]] for v in info["versions"]],
    )
    used = info["used_by"]
    models = [f"{u['model']} v{u['version']}" for u in used if "model" in u]
    datasets = [u for u in used if "dataset" in u]
    text = ", ".join(models) if models else "no recorded model"
    if datasets:
        text += f" (through {len(datasets)} training dataset(s))"
    console.print(f"used by: {text}", highlight=False)


@app.command("materialize")
def materialize(
    start: Annotated[str | None, typer.Option(help="ISO time; default: from the beginning")] = None,
    end: Annotated[str | None, typer.Option(help="ISO time; default: now")] = None,
    incremental: Annotated[bool, typer.Option(help="start at each view's last watermark")] = False,
    view: Annotated[list[str] | None, typer.Option(help="only these views (repeatable)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the latest feature values into the online store (all or nothing)."""
    if incremental and start:
        raise UserInputError("Give either --start or --incremental, not both.")
    with _store() as store:
        report = store.materialize(start, end, views=view, incremental=incremental)
    if as_json:
        print_json(report.to_dict())
        return
    print_table(
        f"materialized until {report.end.isoformat()} in {report.seconds:.2f}s",
        ["view", "rows"],
        sorted(report.views.items()),
    )


@app.command("get")
def get(
    features: Annotated[list[str], typer.Argument(help="'view:feature' references")],
    entity: Annotated[list[str], typer.Option("--entity", "-e", help="key=value (repeatable)")],
    now: Annotated[str | None, typer.Option(help="judge ttl as of this ISO time")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Online values for one entity, with their event times."""
    row: dict[str, object] = {
        key: int(value) if value.lstrip("-").isdigit() else value
        for key, value in key_values(entity, "--entity").items()
    }
    with _store() as store:
        found = store.get_online_features(features, [row], now=now)
    if as_json:
        print_json(found.to_dict())
        return

    def iso(value: object) -> object:
        return value.isoformat() if isinstance(value, datetime) else value

    print_table(
        "online features",
        ["feature", "value", "event time", "status"],
        [
            [ref, iso(vals[0]), iso(found.event_timestamps[ref][0]), found.statuses[ref][0]]
            for ref, vals in found.values.items()
        ],
    )


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 6566,
) -> None:
    """Serve online features over HTTP (POST /features/online)."""
    import uvicorn

    from ctloop.features.server import create_app

    uvicorn.run(create_app(_store()), host=host, port=port, log_level="warning")
