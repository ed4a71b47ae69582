"""``ctloop artifacts list|show`` and ``ctloop lineage``."""

from __future__ import annotations

from typing import Annotated

import typer

from ctloop.cli.main import app as root_app
from ctloop.cli.output import console, print_json, print_table
from ctloop.cli.replays import ReplayOpt, reading_replay
from ctloop.core.settings import load_settings
from ctloop.metadata import open_metadata_store
from ctloop.metadata.base import to_dict

app = typer.Typer(no_args_is_help=True)



def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


@app.command("list")
def list_artifacts(
    type: Annotated[str | None, typer.Option(help="Dataset, Model, Metrics, ...")] = None,
    run: Annotated[str | None, typer.Option(help="only artifacts of this run")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recent artifacts, newest first."""
    store = open_metadata_store()
    run_id = store.get_run(run).id if run else None
    arts = store.list_artifacts(type=type, run_id=run_id, limit=limit)
    if as_json:
        print_json({"artifacts": [to_dict(a) for a in arts]})
        return
    print_table("artifacts", ["artifact", "type", "name", "size", "sha256", "created"],
                [[a.id[:12], a.type, a.name, _size(a.size), a.sha256[:12],
                  a.created_at.strftime("%Y-%m-%d %H:%M:%S") if a.created_at else None]
                 for a in arts])


@app.command("show")
def show_artifact(
    artifact_id: Annotated[str, typer.Argument(help="artifact id or unique prefix")],
    verify: Annotated[
        bool, typer.Option(help="re-hash the stored bytes and the unpacked copy of a folder")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One artifact: type, URI, size, hash, properties, producer and readers."""
    store = open_metadata_store()
    art = store.get_artifact(artifact_id)
    producer = store.get_step(art.producer_step_id) if art.producer_step_id else None
    readers = [e for e in store.get_events(artifact_id=art.id) if e.kind == "input"]
    verified = None
    unpacked = None
    if verify:
        from ctloop.artifacts import open_artifact_store

        # Raises IntegrityError (one line, exit 1) when the stored bytes or, for a
        # folder, the unpacked copy loads read no longer hash to the recorded sha256.
        path = open_artifact_store(load_settings().artifacts_url).get(
            art.uri, art.sha256, name=art.id
        )
        verified = True
        unpacked = str(path) if path.is_dir() else None
    if as_json:
        print_json({
            "artifact": to_dict(art),
            "producer": to_dict(producer) if producer else None,
            "read_by": [to_dict(e) for e in readers],
            "verified": verified,
            "unpacked_verified": unpacked,
        })
        return
    console.print(f"[bold]{art.type}[/] {art.id}")
    console.print(f"uri      {art.uri}")
    console.print(f"sha256   {art.sha256}" + ("  [green]verified[/]" if verified else ""))
    if unpacked:
        console.print(f"unpacked {unpacked}  [green]verified[/]", highlight=False)
    console.print(f"size     {_size(art.size)}")
    if producer:
        console.print(f"producer step {producer.name} ({producer.component}) of run "
                      f"{producer.run_id[:12]}")
    for key, value in art.properties.items():
        console.print(f"  {key}: {str(value)[:200]}", markup=False, highlight=False)
    for e in readers:
        console.print(f"read by step {e.step_id[:12]} as {e.name}")


@root_app.command("lineage")
def lineage_cmd(
    artifact_id: Annotated[str, typer.Argument(help="artifact id or unique prefix")],
    downstream: Annotated[bool, typer.Option(help="follow readers instead of producers")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    replay: ReplayOpt = None,
) -> None:
    """What produced an artifact, from which inputs, back to the raw data."""
    from ctloop.metadata.lineage import lineage

    with reading_replay(replay):
        graph = lineage(open_metadata_store(), artifact_id,
                        direction="downstream" if downstream else "upstream")
    if as_json:
        print_json(graph.to_dict())
        return
    from rich.tree import Tree

    arts = {a.id: a for a, _ in graph.artifacts.values()}
    steps = {s.id: s for s, _ in graph.steps.values()}
    children: dict[str, list[str]] = {}
    for e in graph.edges:  # an edge runs from what was read to what read it (see to_dict)
        source, target = (e.artifact_id, e.step_id) if e.kind == "input" else (e.step_id,
                                                                              e.artifact_id)
        src, dst = (target, source) if not downstream else (source, target)
        children.setdefault(src, []).append(dst)

    def label(node: str) -> str:
        if node in arts:
            a = arts[node]
            return f"[cyan]{a.type}[/] {a.id[:12]} ({a.name}, {_size(a.size)})"
        s = steps[node]
        return f"[bold]{s.name}[/] step of run {s.run_id[:12]} ({s.status.value})"

    tree = Tree(label(graph.root))
    seen = {graph.root}

    def grow(node: str, branch: Tree) -> None:
        for child in children.get(node, []):
            if child in seen:
                continue
            seen.add(child)
            grow(child, branch.add(label(child)))

    grow(graph.root, tree)
    console.print(tree)
