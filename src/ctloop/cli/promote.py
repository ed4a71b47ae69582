"""``ctloop promote``: move a version from one environment to another with its evidence."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import asdict
from typing import Annotated

import typer

from ctloop.cli.main import app
from ctloop.cli.output import console, print_json
from ctloop.core.errors import UserInputError
from ctloop.core.settings import load_settings

__all__ = ["promote"]


@app.command("promote")
def promote(
    ref: Annotated[str, typer.Argument(
        help="NAME (the source's holder of --alias), NAME:VERSION or NAME@ALIAS.")],
    source: Annotated[str, typer.Option("--from", help="Environment to take the version from.")],
    target: Annotated[str, typer.Option("--to", help="Environment to promote it into.")],
    alias: Annotated[str, typer.Option("--alias", "-a", help="Alias to move there.")] = "champion",
    reason: Annotated[str, typer.Option("--reason", "-r", help="Kept in both histories.")] = "",
    test: Annotated[bool, typer.Option(
        "--test", help="First serve the version in --from and check it (`ctloop models test` "
        "with its defaults); promote only if it passes.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Export from --from, verify and import into --to, move the alias; both sides record it."""
    from ctloop.registry.bundle import open_environment, promote_between
    from ctloop.registry.refs import parse_version_ref

    if source == target:
        raise UserInputError(f"--from and --to are both {source!r}; name two environments.")
    if test:
        from ctloop.cli.modeltest import test_model

        parsed = parse_version_ref(ref)
        candidate = ref if parsed.version is not None or parsed.alias else f"{ref}@{alias}"
        with contextlib.redirect_stdout(sys.stderr if json_ else sys.stdout):
            test_model(candidate, env=source, url=None, grpc_address=None, data=None,
                       concurrency=None, duration=None, p99_ms=None, max_error_rate=None,
                       no_load=False, api_key=None, json_=False)  # typer.Exit(1): failed
    src = open_environment(load_settings(env=source))
    try:
        dst = open_environment(load_settings(env=target))
        try:
            moved = promote_between(src, dst, ref, alias=alias, reason=reason)
        finally:
            dst[0].close()
    finally:
        src[0].close()
    if json_:
        print_json(asdict(moved))
        return
    how = "imported" if moved.imported else "already there"
    console.print(
        f"{moved.name}: {source} v{moved.source_version} -> {target} v{moved.target_version} "
        f"({how}); {target} @{alias}: {moved.previous_version or '-'} -> "
        f"{moved.target_version}"
    )
