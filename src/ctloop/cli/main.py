"""The ``ctloop`` command.

Command groups live in their own modules (``ctloop.cli.<group>``), each
exposing a Typer ``app``; ``_GROUPS`` mounts them. Errors meant for a person
(``CtloopError``) print as one line on stderr with a non-zero exit code and
no traceback.
"""

from __future__ import annotations

import importlib
import sys

import typer

from ctloop.core.errors import CtloopError

__all__ = ["app", "main"]

app = typer.Typer(
    name="ctloop",
    help="Continuous training: pipelines, data validation, models and registry, feature store.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# (command name, module holding a Typer `app`, help). Add a line to add a group.
_GROUPS: list[tuple[str, str, str]] = [
    ("runs", "ctloop.cli.runs", "Inspect pipeline runs."),
    ("artifacts", "ctloop.cli.artifacts", "Inspect stored artifacts."),
    ("models", "ctloop.cli.models", "Registered models, aliases, promotion and rollback."),
    ("features", "ctloop.cli.features", "Feature definitions, training sets and online features."),
    ("data", "ctloop.cli.data", "Statistics, schemas, validation and drift of datasets."),
    ("deploy", "ctloop.cli.deploy", "Export deployment files for team servers and clusters."),
    ("monitor", "ctloop.cli.monitor", "Prediction logs, drift and decay monitors."),
    ("triggers", "ctloop.cli.triggers", "Triggers and the controller that starts pipelines."),
    ("loop", "ctloop.cli.loop", "Declared continuous-training loops: replay, run, status."),
]

# Modules that register top-level commands on `app` when imported.
_COMMAND_MODULES: list[str] = [
    "ctloop.cli.run",
    "ctloop.cli.project",
    "ctloop.cli.serve",
    "ctloop.cli.feedback",
]


def _mount() -> None:
    for module_name in _COMMAND_MODULES:
        importlib.import_module(module_name)
    for name, module_name, help_text in _GROUPS:
        module = importlib.import_module(module_name)
        app.add_typer(module.app, name=name, help=help_text)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    _mount()
    try:
        # Without standalone mode click returns the code of a typer.Exit instead of exiting.
        code = app(args=argv, standalone_mode=False)
    except CtloopError as exc:
        typer.echo(exc.one_line(), err=True)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except Exception as exc:
        # Usage errors of click (typer ships its own copy, so match by shape, not class).
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None),
                                                                int):
            exc.show()
            return int(exc.exit_code)
        raise
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
