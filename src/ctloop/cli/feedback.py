"""``ctloop feedback NAME FILE``: deliver labels for served predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ctloop.cli.main import app
from ctloop.cli.output import console, print_json, warn
from ctloop.core.settings import load_settings


@app.command()
def feedback(
    name: Annotated[str, typer.Argument(help="the loop (or model) whose predictions to label")],
    file: Annotated[Path, typer.Argument(help="parquet or CSV: request_id or row_id, label")],
    strict: Annotated[bool, typer.Option(
        "--strict", help="Refuse the file if any label names no served prediction.")] = False,
    keep_unknown: Annotated[bool, typer.Option(
        "--keep-unknown", help="Store labels of ids not logged yet (requests still arriving); "
        "they join their prediction once it is logged.")] = False,
    on_duplicate: Annotated[str, typer.Option(
        help="Conflicting labels for one id: reject (the file), first or last.")] = "reject",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Deliver labels; the monitors (and the loop's next tick) see them on their next read.

    Each label must fit the version that served its row (0/1 or its two class names for a
    binary model, one of its classes, a finite number for a regression); otherwise nothing
    of the file is stored."""
    from ctloop.loop.feedback import deliver_labels

    stored = deliver_labels(name, file, load_settings(), strict_ids=strict,
                            keep_unknown=keep_unknown, on_duplicate=on_duplicate)
    if as_json:
        print_json(stored)
        return
    console.print(f"stored {stored['stored']} labels for {stored['model']} "
                  f"({stored['matched']} of {stored['rows']} matched served predictions)",
                  highlight=False)
    if stored["unknown"]:
        fate = "stored to wait for their requests" if keep_unknown else "left out"
        warn(f"{stored['unknown']} label(s) name no served prediction of {stored['model']}: "
             f"{fate} (--strict refuses such a file).")
    if stored["conflicts"]:
        warn(f"{stored['conflicts']} id(s) had conflicting labels; kept the "
             f"{stored['on_duplicate']} of each.")
