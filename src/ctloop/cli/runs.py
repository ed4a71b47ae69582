"""``ctloop runs list|show``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from ctloop.cli.output import console, escape, is_wide, print_json, print_table
from ctloop.cli.progress import status_text
from ctloop.cli.replays import ReplayOpt, empty_note, reading_replay
from ctloop.core.jsontypes import as_str
from ctloop.metadata import open_metadata_store
from ctloop.metadata.base import to_dict

app = typer.Typer(no_args_is_help=True)


def _duration(start, end) -> str:  # type: ignore[no-untyped-def]
    if start is None or end is None:
        return "-"
    return f"{(end - start).total_seconds():.2f}s"


def _started(at: datetime | None) -> str | None:
    """``12-07 10:03`` in a table (``--wide``: the whole timestamp); --json keeps it whole."""
    if at is None:
        return None
    return at.strftime("%Y-%m-%d %H:%M:%S" if is_wide() else "%m-%d %H:%M")


@app.command("list")
def list_runs(
    pipeline: Annotated[str | None, typer.Option(help="only this pipeline")] = None,
    status: Annotated[str | None, typer.Option(help="only runs in this state")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    replay: ReplayOpt = None,
) -> None:
    """Recent runs, newest first."""
    with reading_replay(replay):
        runs = open_metadata_store().list_runs(pipeline=pipeline, status=status, limit=limit)
    if as_json:
        print_json({"runs": [to_dict(r) for r in runs]})
        return
    print_table(
        "runs",
        ["run", "pipeline", "status", "trigger", "started", "duration"],
        [
            [r.id, r.pipeline, status_text(r.status), r.trigger,
             _started(r.started_at),
             _duration(r.started_at, r.ended_at)]
            for r in runs
        ],
    )
    if not runs:
        with reading_replay(replay):
            console.print(empty_note("runs", "runs list", replay), highlight=False,
                          soft_wrap=True)


@app.command("show")
def show_run(
    run_id: Annotated[str, typer.Argument(help="run id or unique prefix")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One run: parameters, environment, steps with their artifacts and errors."""
    from ctloop.core.paths import require_stored
    from ctloop.core.settings import load_settings

    require_stored(load_settings().metadata_url, "run", run_id)  # before SQLAlchemy loads
    store = open_metadata_store()
    run = store.get_run(run_id)
    steps = store.get_steps(run.id)
    events = {s.id: store.get_events(step_id=s.id) for s in steps}
    if as_json:
        print_json({
            "run": to_dict(run),
            "steps": [
                {**to_dict(s), "events": [to_dict(e) for e in events[s.id]]} for s in steps
            ],
        })
        return
    console.print(f"[bold]run {run.id}[/]  pipeline [bold]{escape(run.pipeline)}[/] "
                  f"(version {run.pipeline_version})")
    console.print("status  ", status_text(run.status), f"  trigger {escape(run.trigger)}")
    console.print(f"source   {run.source}", markup=False)
    console.print(f"params   {run.parameters}", markup=False)
    ex = run.executor
    console.print(f"executor {ex.get('user')}@{ex.get('host')} "
                  f"runner={ex.get('runner_spec') or ex.get('runner')}", markup=False)
    env = run.environment
    console.print(f"env      python {env.get('python')}"
                  + (f" git {as_str(env.get('git_commit'))[:10]}" if env.get("git_commit")
                     else ""))
    console.print(f"time     {run.started_at} → {run.ended_at} "
                  f"({_duration(run.started_at, run.ended_at)})")
    if run.error:
        console.print(f"[red]error    {escape(run.error)}[/]")
    rows = []
    for s in steps:
        outs = ", ".join(f"{e.name}={e.artifact_id}" for e in events[s.id]
                         if e.kind == "output")
        rows.append([s.name, status_text(s.status), s.attempts,
                     f"{s.duration_s:.3f}s" if s.duration_s is not None else None,
                     outs or None, (s.error or "").splitlines()[0][:80] if s.error else None])
    print_table("steps", ["step", "status", "attempts", "duration", "outputs", "error"], rows)
    for s in steps:
        if s.executor.get("cache"):
            console.print(f"{s.name}: {s.executor['cache']}", markup=False, highlight=False)
    for s in steps:
        if s.status == "failed" and s.traceback:
            console.print(f"[red]traceback of {escape(s.name)}:[/]")
            console.print(s.traceback.rstrip(), markup=False, highlight=False)
