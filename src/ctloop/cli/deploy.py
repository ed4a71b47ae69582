"""``ctloop deploy export / build / up / down / probe``: deployment files for team servers
and clusters, built and run with the container engine found on this machine."""

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
    rotate_secrets: Annotated[bool, typer.Option(
        "--rotate-secrets", help="make new passwords instead of keeping the previous export's "
        "(the database volume keeps the old one: change it there too)")] = False,
    image: Annotated[str | None, typer.Option(
        help="the project image's name (default: image in [ctloop.deploy], else "
        "ctloop-PROJECT:latest)")] = None,
    model: Annotated[Path | None, typer.Option(
        "--model", help="a bundle (`ctloop models export`) the deployment starts serving at "
        "once and imports as its first champion (default: the previous export's, if any)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Write a Dockerfile and compose or Kubernetes files generated from the settings.

    Secrets go to secrets.env (mode 0600), never into the other files or the output.
    """
    from ctloop.deploy import PENDING_COMMANDS, export_deployment

    result = export_deployment(load_settings(), target, out_dir, host=host, port=port,
                               force=force, rotate_secrets=rotate_secrets, image=image,
                               model=model)
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


Folder = Annotated[Path, typer.Argument(help="the folder `ctloop deploy export` wrote")]


@app.command("build")
def build(out_dir: Folder) -> None:
    """Build the project image with the container engine found here (docker, else podman)."""
    from ctloop.deploy.engine import build_image

    image = build_image(out_dir)
    console.print(f"built {image}")


@app.command("up")
def up(out_dir: Folder) -> None:
    """Start the deployment with compose (building the image first when it is missing)."""
    from ctloop.deploy.engine import compose
    from ctloop.deploy.firstmodel import BUNDLE_FILE

    compose(out_dir, "up")
    if (out_dir / BUNDLE_FILE).is_file():
        console.print("started; the replicas answer from the first model's bundle, which the "
                      "first-model service imports into the registry")
    else:
        console.print(f"started; see {out_dir / 'README.md'} to bring in the first model")


@app.command("down")
def down(
    out_dir: Folder,
    volumes: Annotated[bool, typer.Option(
        "--volumes", help="also delete the data volumes (database, artifacts, state)")] = False,
) -> None:
    """Stop the deployment (its data volumes are kept unless --volumes)."""
    from ctloop.deploy.engine import compose

    compose(out_dir, "down", volumes=volumes)
    console.print("stopped")


@app.command("probe", hidden=True)
def probe() -> None:
    """Health probe of a deployed controller: the state folder is writable and the metadata
    store answers (exit 0), else one line naming which."""
    from ctloop.deploy.health import check_health

    check_health(load_settings())


@app.command("serve", hidden=True)
def serve(
    bundle: Annotated[Path | None, typer.Option(help="the export's first-model bundle")] = None,
    host: Annotated[str, typer.Option()] = "0.0.0.0",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    log_level: Annotated[str, typer.Option()] = "info",
) -> None:
    """A deployed serving replica: answers from the first model's bundle at once while the
    deployment's registry does not hold it yet, then follows the registry."""
    import logging

    import uvicorn

    from ctloop.core.paths import require_writable
    from ctloop.deploy.firstmodel import serving_app

    settings = load_settings()
    require_writable(settings.home, "state folder")
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    application = serving_app(settings, bundle)
    uvicorn.run(application, host=host, port=port, log_level=log_level, access_log=False)


@app.command("first-model", hidden=True)
def first_model(
    bundle: Annotated[Path, typer.Argument(help="the export's first-model bundle")],
) -> None:
    """The deployment's one-shot import of its first model: hashes checked, registered with
    its provenance, champion only when nothing holds the alias yet; exit 0 on every start."""
    from ctloop.deploy.firstmodel import import_first_model

    done = import_first_model(load_settings(), bundle)
    verb = "imported" if done.outcome == "imported" else "already had"
    console.print(f"{verb} {done.name}:{done.version} (every hash checked); champion is "
                  f"version {done.champion}")
