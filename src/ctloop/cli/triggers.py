"""``ctloop triggers list|run|fire``: the controller that starts pipelines."""

from __future__ import annotations

import signal
import threading
from typing import Annotated, Any

import typer

from ctloop.cli.output import console, print_json, print_table
from ctloop.core.paths import require_writable
from ctloop.core.settings import load_settings

app = typer.Typer(no_args_is_help=True)


def _controller(on_event: Any = None):  # type: ignore[no-untyped-def]
    from ctloop.triggers.controller import Controller

    settings = load_settings()
    require_writable(settings.home, "state folder")
    return Controller(settings=settings, on_event=on_event)


def _say(kind: str, firing: Any) -> None:
    if kind == "start":
        detail = firing.info.get("path") or firing.info.get("scheduled") or \
            firing.info.get("summary") or ""
        console.print(f"▶ {firing.trigger} ({firing.kind}) {detail}", highlight=False)
    elif kind == "end":
        style = "green" if firing.status == "succeeded" else "bold red"
        tail = f" run {firing.run_id}" if firing.run_id else ""
        error = f": {firing.error}" if firing.error else ""
        console.print(f"  {firing.trigger}: {firing.status}{tail}{error}", style=style,
                      highlight=False)
    else:
        console.print(f"! {firing.trigger}: {firing.error}", style="yellow", highlight=False)


@app.command("list")
def list_triggers(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The triggers of ctloop.toml and what they last did."""
    controller = _controller()
    from ctloop.triggers.state import TriggerEntry

    entries = controller.entries()
    rows = []
    for t in controller.triggers.values():
        s = entries.get(t.name) or TriggerEntry()
        rows.append({
            "name": t.name, "kind": t.kind, "condition": t.describe(),
            "pipeline": t.pipeline_ref, "params": t.params, "cooldown": t.cooldown,
            "enabled": t.enabled, "last_fired": s.last_fired,
            "last_status": s.last_status, "last_run_id": s.last_run_id,
            "last_error": s.last_error, "running": s.running is not None,
            "files_seen": len(s.seen),
        })
    if as_json:
        print_json({"triggers": rows})
        return
    print_table("triggers", ["name", "condition", "pipeline", "cooldown", "last fired",
                             "last status"],
                [[r["name"], r["condition"], r["pipeline"], f"{r['cooldown']:g}s",
                  r["last_fired"], r["last_status"] or r["last_error"]] for r in rows])


@app.command("run")
def run_controller(
    once: Annotated[bool, typer.Option("--once", help="evaluate every trigger once, then exit")]
    = False,
    interval: Annotated[float, typer.Option(min=0.1, help="seconds between evaluations")] = 30.0,
    as_json: Annotated[bool, typer.Option("--json", help="with --once: print firings as JSON")]
    = False,
) -> None:
    """The controller loop: evaluate triggers, start pipelines. Ctrl-C stops it cleanly."""
    controller = _controller(None if as_json else _say)
    if once:
        firings = controller.tick()
        if as_json:
            print_json({"firings": [f.to_json() for f in firings]})
        elif not firings:
            console.print("nothing to do")
        if any(f.status != "succeeded" for f in firings):
            raise typer.Exit(1)
        return
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    console.print(f"controller: {len(controller.triggers)} triggers, every {interval:g}s "
                  "(Ctrl-C to stop)")
    try:
        controller.run(interval=interval, stop=stop)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    console.print("controller stopped")


@app.command("fire")
def fire(
    name: Annotated[str, typer.Argument(help="trigger name")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Start a trigger's pipeline now (recorded as a manual run)."""
    controller = _controller(None if as_json else _say)
    firing = controller.fire(name)
    if as_json:
        print_json(firing.to_json())
    if firing.status != "succeeded":
        raise typer.Exit(1)
