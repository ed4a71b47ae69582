"""``ctloop run`` and ``ctloop resume``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ctloop.cli.main import app
from ctloop.cli.options import key_values
from ctloop.cli.output import console, err_console, escape, print_json
from ctloop.cli.progress import LiveProgress
from ctloop.core.errors import UserInputError
from ctloop.core.settings import load_settings
from ctloop.metadata.base import to_dict

if TYPE_CHECKING:
    from ctloop.pipeline.engine import RunResult

__all__ = ["parse_params"]

_RUNNER_HELP = "local | subprocess | dask | tcp://HOST:PORT"


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``["a=1", "b=[1,2]", "c=text"]`` -> values; JSON when it parses, else the string."""
    out: dict[str, Any] = {}
    for key, raw in key_values(pairs, "--param").items():
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
        except ValueError as exc:  # e.g. an integer beyond Python's int-to-text limit
            raise UserInputError(
                f"The --param {key} value cannot be read: {exc}. Pass it as a quoted JSON "
                "string or in an artifact."
            ) from None
    return out


def _report(result: RunResult, as_json: bool) -> None:
    if as_json:
        print_json({
            "run": to_dict(result.run),
            "steps": [to_dict(s) for s in result.steps.values()],
        })
    else:
        cached = sum(1 for s in result.steps.values() if s.status == "cached")
        total = len(result.steps)
        if result.ok:
            console.print(
                f"[green]✔ run {result.run.id} succeeded[/] ({total} steps, {cached} cached)"
            )
        else:
            err_console.print(f"[red]✘ run {result.run.id} failed:[/] "
                              f"{escape(result.run.error or '')}")
            err_console.print(f"  resume with: ctloop resume {result.run.id}", markup=False)
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def run(
    pipeline: Annotated[str, typer.Argument(help="path/to/file.py:pipeline_name")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p",
                                                    help="KEY=VALUE (JSON values)")] = None,
    runner: Annotated[str | None, typer.Option(help=_RUNNER_HELP)] = None,
    max_workers: Annotated[int | None, typer.Option(help="steps run at the same time")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="rerun every step")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the run as JSON")] = False,
) -> None:
    """Run a pipeline and show each step live."""
    from ctloop.pipeline.api import make_engine
    from ctloop.pipeline.loader import load_pipeline

    if max_workers is not None and max_workers < 1:
        raise UserInputError(f"The '--max-workers' option must be an int >= 1. Got {max_workers}.")
    params = parse_params(param or [])
    settings = load_settings()
    definition, source = load_pipeline(pipeline)
    progress = LiveProgress(err_console, enabled=not as_json and err_console.is_terminal)
    engine = make_engine(settings, runner=runner, max_workers=max_workers,
                         cache=False if no_cache else None, observer=progress)
    result = engine.run(definition, params, source=source)
    if not progress.enabled and not as_json:
        _print_steps(result)
    _report(result, as_json)


def _print_steps(result: RunResult) -> None:
    for step in result.steps.values():
        duration = f"{step.duration_s:.2f}s" if step.duration_s is not None else ""
        console.print(f"  {step.name:<28} {step.status.value:<10} {duration}", markup=False,
                      highlight=False)


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(help="run id or unique prefix")],
    runner: Annotated[str | None, typer.Option(
        help=_RUNNER_HELP + " (default: the runner the run was started on)")] = None,
    max_workers: Annotated[int | None, typer.Option()] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="resume a run marked running on another host")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Finish a failed or killed run: only failed and never-run steps execute."""
    from ctloop.pipeline.api import resume as resume_run

    progress = LiveProgress(err_console, enabled=not as_json and err_console.is_terminal)
    result = resume_run(run_id, settings=load_settings(), runner=runner,
                        max_workers=max_workers, observer=progress, force=force)
    if not progress.enabled and not as_json:
        _print_steps(result)
    _report(result, as_json)
