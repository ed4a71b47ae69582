"""``ctloop models export / import-bundle``: move a version between environments as a bundle.

Registered on the ``ctloop models`` group by
``ctloop.cli.models``; the bundle format and its checks live in
:mod:`ctloop.registry.bundle`.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from ctloop.cli.output import console, print_json
from ctloop.core.settings import load_settings

__all__ = ["export", "import_bundle"]

EnvOpt = Annotated[str | None, typer.Option(
    "--env", help="Environment to use (default: the global --env / CTLOOP_ENV).")]


def export(
    ref: Annotated[str, typer.Argument(help="NAME@ALIAS, NAME:VERSION or NAME@VERSION.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Bundle file to write.")],
    env: EnvOpt = None,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Write one version, its evidence and the hash of every file into one bundle file."""
    from ctloop.registry.bundle import export_bundle, open_environment

    store, artifacts, name = open_environment(load_settings(env=env))
    try:
        manifest = export_bundle(store, artifacts, ref, output, environment=name)
    finally:
        store.close()
    if json_:
        print_json({**asdict(manifest), "path": str(output)})
        return
    console.print(f"exported {manifest.name}:{manifest.version} from {name} to {output} "
                  f"({len(manifest.files)} files, model sha256 {manifest.model_sha256[:16]}...)")


def import_bundle(
    bundle: Annotated[Path, typer.Argument(help="A file written by `ctloop models export`.")],
    env: EnvOpt = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="Register under this model name (default: the bundle's).")] = None,
    alias: Annotated[str | None, typer.Option(
        "--alias", help="Then move this alias (e.g. champion) to the imported version.")] = None,
    existing_ok: Annotated[bool, typer.Option(
        "--existing-ok", help="These exact bytes already registered: use that version, "
        "exit 0 (a deployment's start-up import, run on every start).")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check every hash of a bundle, then register it with its provenance (nothing is run)."""
    from ctloop.registry import ModelRegistry
    from ctloop.registry.bundle import import_bundle as run_import
    from ctloop.registry.bundle import open_environment

    store, artifacts, target = open_environment(load_settings(env=env))
    try:
        result = run_import(store, artifacts, bundle, environment=target, name=name,
                            existing_ok=existing_ok)
        if alias is not None:
            registry = ModelRegistry(store, artifacts=artifacts)
            if registry.aliases(result.name).get(alias) != result.version:
                registry.promote(result.name, result.version, alias=alias,
                                 reason=f"imported from {bundle.name}")
    finally:
        store.close()
    if json_:
        print_json(asdict(result))
        return
    p = result.provenance
    verb = "already had" if result.outcome == "already present" else "imported"
    console.print(f"{verb} {result.name}:{result.version} into {target} from "
                  f"{p.source_environment} {p.source_name}:{p.source_version} "
                  f"(runs {', '.join(p.run_ids) or '-'}; every hash checked)"
                  + (f"; alias {alias} -> {result.version}" if alias else ""))
