"""``ctloop ui``: the web dashboard on uvicorn (127.0.0.1 unless told otherwise)."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from ctloop.cli.main import app
from ctloop.cli.output import NO_KEYS_EXPOSED, err_console, warn
from ctloop.cli.replays import ReplayOpt
from ctloop.core.errors import UserInputError
from ctloop.core.net import is_loopback
from ctloop.core.settings import load_settings


@app.command()
def ui(
    host: Annotated[str, typer.Option(help="Interface to listen on; 0.0.0.0 exposes it.")] =
        "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
    replay: ReplayOpt = None,
) -> None:
    """Open the dashboard: runs, models, artifacts, lineage, features, monitoring."""
    import uvicorn

    from ctloop.ui import create_app
    from ctloop.ui.access import AccessPolicy, load_keys

    if not 0 < port < 65536:
        raise UserInputError(f"The --port must be between 1 and 65535. Got {port}.")
    settings = load_settings()
    if replay is not None:  # the dashboard over a replay's sandbox
        from ctloop.loop.sandbox import replay_settings

        settings = replay_settings(settings, replay)
    policy = AccessPolicy(load_keys(settings.tables))
    application = create_app(settings, policy=policy)
    access = (f"{len(policy.keys)} API key(s): read-only until signed in" if policy.enabled
              else "no API keys: anyone who can reach it may promote and roll back")
    err_console.print(f"ctloop ui on http://{host}:{port}  ({access})")
    if not is_loopback(host) and not policy.enabled:
        warn(NO_KEYS_EXPOSED)
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    uvicorn.run(application, host=host, port=port, log_level=log_level)
