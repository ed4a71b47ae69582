"""``ctloop feedback NAME FILE``: deliver labels for served predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ctloop.cli.main import app
from ctloop.cli.output import console, print_json
from ctloop.core.settings import load_settings


@app.command()
def feedback(
    name: Annotated[str, typer.Argument(help="the loop (or model) whose predictions to label")],
    file: Annotated[Path, typer.Argument(help="parquet or CSV: request_id or row_id, label")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Deliver labels; the monitors (and the loop's next tick) see them on their next read."""
    from ctloop.loop.feedback import deliver_labels

    stored = deliver_labels(name, file, load_settings())
    if as_json:
        print_json(stored)
        return
    console.print(f"stored {stored['stored']} labels for {stored['model']} "
                  f"({stored['matched']} of {stored['rows']} matched served predictions)",
                  highlight=False)
