"""``ctloop serve``: the prediction service on uvicorn."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from ctloop.cli.main import app
from ctloop.cli.output import err_console
from ctloop.core.settings import load_settings


@app.command()
def serve(
    model: Annotated[
        str | None,
        typer.Argument(help="Model name to serve (default: every model holding the alias)."),
    ] = None,
    alias: Annotated[str | None, typer.Option(help="Alias answering by default.")] = None,
    canary: Annotated[
        str | None,
        typer.Option(help="ALIAS=PCT: a random share of requests to another alias or version."),
    ] = None,
    ab: Annotated[
        str | None, typer.Option(help="ALIAS=PCT: a sticky share, by a hash of --ab-key.")
    ] = None,
    ab_key: Annotated[str | None, typer.Option(help="Column keeping the A/B split sticky.")] = None,
    shadow: Annotated[
        str | None,
        typer.Option(
            help="Alias, version or NAME@ALIAS scoring every row in the background (logged only)."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    reload_interval: Annotated[
        float | None,
        typer.Option(help="Seconds between registry polls for alias moves (0: never)."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve registered models over HTTP: POST /v1/models/NAME:predict."""
    import uvicorn

    from ctloop.serving import ServingConfig, create_app

    settings = load_settings()
    config = ServingConfig.from_table(
        settings.extra.get("serving"),
        alias=alias,
        canary=canary,
        ab=ab,
        ab_key=ab_key,
        shadow=shadow,
        reload_interval=reload_interval,
    )
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    application = create_app(model, config=config, settings=settings)
    err_console.print(
        f"serving {model or 'every model with alias ' + repr(config.alias)} on "
        f"http://{host}:{port} (POST /v1/models/NAME:predict, GET /ready, GET /metrics)"
    )
    uvicorn.run(application, host=host, port=port, log_level=log_level, access_log=False)
