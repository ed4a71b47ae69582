"""``ctloop deploy export``: deployment files for team servers and clusters."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ctloop.cli.output import console, print_json
from ctloop.core.settings import load_settings

app = typer.Typer(no_args_is_help=True)


@app.command("export")
def export(
    out_dir: Annotated[Path, typer.Argument(help="folder to write the files into")],
    target: Annotated[
        str, typer.Option(help="docker-compose (a team server) or kubernetes (a cluster)")
    ] = "docker-compose",
    host: Annotated[
        str, typer.Option(help="address the prediction service is published on")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port the prediction service is published on")] = 8000,
    force: Annotated[
        bool, typer.Option("--force", help="overwrite a previous export in the folder")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Write a Dockerfile and compose or Kubernetes files generated from the settings.

    Secrets go to secrets.env (mode 0600), never into the other files or the output.
    """
    from ctloop.deploy import PENDING_COMMANDS, export_deployment

    result = export_deployment(load_settings(), target, out_dir, host=host, port=port,
                               force=force)
    pending = [s.name for s in result.plan.services if s.pending]
    if as_json:
        print_json(
            {
                "target": result.target,
                "files": [str(p) for p in result.files],
                "services": [s.name for s in result.plan.services],
                "pending_services": pending,
                "notes": result.plan.notes,
            }
        )
        return
    for path in result.files:
        console.print(f"wrote {path}")
    for note in result.plan.notes:
        console.print(f"note: {note}")
    if pending:
        commands = ", ".join("ctloop " + " ".join(c) for c in sorted(PENDING_COMMANDS))
        console.print(
            f"note: services {', '.join(pending)} run commands not in this ctloop yet "
            f"({commands}); they start once those land."
        )
