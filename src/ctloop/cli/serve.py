"""``ctloop serve``: the prediction service on uvicorn."""

from __future__ import annotations

import gc
import getpass
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from ctloop.cli.main import app
from ctloop.cli.output import NO_KEYS_EXPOSED, err_console, warn
from ctloop.core.errors import UserInputError
from ctloop.core.net import is_loopback
from ctloop.core.paths import require_writable
from ctloop.core.settings import Settings, load_settings

if TYPE_CHECKING:
    from ctloop.registry import ModelRegistry


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
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
    grpc_port: Annotated[
        int | None,
        typer.Option(min=1, max=65535,
                     help="Also serve the Open Inference Protocol over gRPC on this port "
                     "(on --host; needs the grpc extra)."),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes behind the port (metrics are summed).")
    ] = 1,
    reload_interval: Annotated[
        float | None,
        typer.Option(help="Seconds between registry polls for alias moves (0: never)."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    request_log: Annotated[
        str | None,
        typer.Option(help="Where this service logs requests (folder or URL; '' turns the log "
                     "off); default: prediction_log of [ctloop.serving]."),
    ] = None,
    hash_key: Annotated[
        bool,
        typer.Option(
            "--hash-key",
            help="Read an API key from stdin and print the hash to put in "
            "[ctloop.serving.keys]; serves nothing.",
        ),
    ] = False,
) -> None:
    """Serve registered models over HTTP: KServe v1 and Open Inference Protocol v2 (also gRPC)."""
    if hash_key:
        _print_hash()
        return
    with _collector_paused():  # everything up to the server's start
        import uvicorn

        from ctloop.serving import ServingConfig, create_app

        settings = load_settings()
        require_writable(settings.home, "state folder")  # a root-owned volume: say so, first
        overrides = {
            "alias": alias, "canary": canary, "ab": ab, "ab_key": ab_key, "shadow": shadow,
            "reload_interval": reload_interval, "grpc_port": grpc_port,
            "grpc_host": host,  # gRPC listens where HTTP does
            "prediction_log": request_log,
        }
        config = ServingConfig.from_table(settings.tables.serving, **overrides)
        logging.basicConfig(level=log_level.upper(),
                            format="%(levelname)s %(name)s: %(message)s")
        if log_level.lower() != "debug":  # library chatter (migrations each start): debug only
            logging.getLogger("alembic").setLevel(logging.WARNING)
        banner = (
            f"serving {model or 'every model with alias ' + repr(config.alias)} on "
            f"http://{host}:{port} with {workers} worker(s) (POST /v1/models/NAME:predict, "
            "POST /v2/models/NAME/infer, GET /ready, GET /metrics)"
        )
        if config.grpc_port:
            _check_port_free(config.grpc_host, config.grpc_port)
        if config.grpc_port is not None:
            banner += (f"; gRPC inference.GRPCInferenceService on {config.grpc_host}:"
                       f"{config.grpc_port}")
        application = None
        if workers > 1:
            _announce(settings, model, config.alias, host, config.keys)
        else:
            application = create_app(model, config=config, settings=settings, preload=True)
            _announce(settings, model, config.alias, host, config.keys,
                      registry=application.state.serving.pool.registry)
        _print_banner(banner)  # after the stores opened: a bad setting is the only line
    if application is not None:
        uvicorn.run(application, host=host, port=port, log_level=log_level, access_log=False)
        return
    from ctloop.serving.workers import worker_environment

    with worker_environment(model, {k: v for k, v in overrides.items() if v is not None}):
        uvicorn.run("ctloop.serving.workers:app_from_environment", factory=True,
                    host=host, port=port, workers=workers, log_level=log_level,
                    access_log=False)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while the service starts; what the start built
    frozen out of later collections (``gc.freeze``) when it succeeds.

    A start allocates hundreds of thousands of objects that live as long as the server
    (modules, classes, the app, the models) and next to no garbage cycles, yet the collector
    walked them ~250 times: ~11 % of a cold start's CPU. The app freezes what it holds once
    it serves anyway (``serving.app``); a failed start turns the collector back on as it was.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        gc.enable()


def _print_banner(banner: str) -> None:
    # Plain text, past Rich: no markup to parse, no emoji table to load (~1 % of a cold start).
    typer.echo(banner, err=True)


def _announce(settings: Settings, model: str | None, alias: str, host: str,
              keys: Mapping[str, object], *, registry: ModelRegistry | None = None) -> None:
    """One line per model and alias the service will answer for; a warning for a name that
    is not registered (with the nearest registered one): a typo must not look like success;
    a warning when it listens beyond this machine without API keys. ``registry``: the
    service's own, else the settings' metadata store is opened for the look-up."""
    import difflib

    from ctloop.serving.auth import keys_from_env

    if not is_loopback(host) and not (keys or keys_from_env()):
        warn(NO_KEYS_EXPOSED)

    if registry is not None:
        models = registry.models()
    else:
        from ctloop.metadata import open_metadata_store
        from ctloop.registry import ModelRegistry

        store = open_metadata_store(settings.metadata_url)
        try:
            models = ModelRegistry(store).models()
        finally:
            store.close()
    names = [m.name for m in models]
    if model is not None and model not in names:
        near = difflib.get_close_matches(model, names, n=1)
        hint = (f"did you mean {near[0]!r}?" if near
                else f"registered: {', '.join(names) or 'none'}")
        warn(f"no model named {model!r} is registered ({hint}); the service answers 503 for "
             "it until a version is registered and given the alias.")
        return
    chosen = [m for m in models if model is None or m.name == model]
    for m in chosen:
        aliases = m.aliases
        if alias in aliases:
            err_console.print(Text(f"  {m.name}@{alias} -> version {aliases[alias]}"))
        elif model is not None:
            warn(f"{m.name} has no version with the alias {alias!r}; promote one with "
                 f"`ctloop models promote {m.name} VERSION --alias {alias}`.")
    if model is None and not any(alias in m.aliases for m in chosen):
        warn(f"no registered model holds the alias {alias!r}; nothing is served until one does.")


def _check_port_free(host: str, port: int) -> None:
    """A taken gRPC port fails here in one line, not later in a lifespan traceback."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UserInputError(
                f"The gRPC port {host}:{port} cannot be listened on ({exc.strerror}); "
                "choose another --grpc-port (grpc_port in [ctloop.serving])."
            ) from None


def _print_hash() -> None:
    from ctloop.serving.auth import hash_key as digest

    key = getpass.getpass("API key: ") if sys.stdin.isatty() else sys.stdin.readline()
    key = key.strip()
    if len(key) < 16:
        raise UserInputError(
            "An API key needs at least 16 characters; make one with "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'."
        )
    typer.echo(f'hash = "{digest(key)}"')
