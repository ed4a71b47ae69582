"""The ``ctloop`` command.

Command groups live in their own modules (``ctloop.cli.<group>``), each
exposing a Typer ``app``; ``_GROUPS`` names them and they are imported only when
used, so ``ctloop --help`` and light commands start without loading pandas,
SQLAlchemy or the pipeline engine. ``_LAZY_COMMANDS`` does the same for
top-level commands that a module registers on ``app``; ``_COMMAND_MODULES`` are
imported up front (keep them light: heavy imports go inside the commands).
Errors meant for a person (``CtloopError``) print as one line on stderr with a
non-zero exit code and no traceback.
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated, Any

import typer
import typer.core
import typer.main

from ctloop.core.errors import CtloopError

__all__ = ["app", "main"]

# (command name, module holding a Typer `app`, help). Add a line to add a group.
_GROUPS: list[tuple[str, str, str]] = [
    ("runs", "ctloop.cli.runs", "Inspect pipeline runs."),
    ("artifacts", "ctloop.cli.artifacts", "Inspect stored artifacts."),
    ("models", "ctloop.cli.models", "Registered models, aliases, promotion and rollback."),
    ("features", "ctloop.cli.features", "Feature definitions, training sets and online features."),
    ("data", "ctloop.cli.data", "Statistics, schemas, validation and drift of datasets."),
    ("deploy", "ctloop.cli.deploy", "Export deployment files for team servers and clusters."),
    ("monitor", "ctloop.cli.monitor", "Prediction logs, drift and decay monitors."),
    ("predictions", "ctloop.cli.predictions",
     "The prediction log's segments: status, compaction, retention."),
    ("triggers", "ctloop.cli.triggers", "Triggers and the controller that starts pipelines."),
    ("loop", "ctloop.cli.loop", "Declared continuous-training loops: replay, run, status."),
]

# (command name, module that registers it on `app` when imported, short help).
_LAZY_COMMANDS: list[tuple[str, str, str]] = [
    ("run", "ctloop.cli.run", "Run a pipeline and show each step live."),
    ("resume", "ctloop.cli.run", "Finish a failed or killed run: only failed and never-run "
     "steps execute."),
    ("lineage", "ctloop.cli.artifacts", "Where an artifact came from and where it went."),
    ("promote", "ctloop.cli.promote", "Move a model version from one environment to another "
     "(staging -> prod) with its evidence."),
]

# Modules that register top-level commands on `app` when imported (imported at start).
_COMMAND_MODULES: list[str] = [
    "ctloop.cli.project",
    "ctloop.cli.serve",
    "ctloop.cli.feedback",
    "ctloop.cli.ui",
    "ctloop.cli.predict",
]


class _LazyGroup(typer.core.TyperGroup):
    """The root group: lists every command, imports a command's module only to run it.

    Commands not imported yet are stand-ins carrying their name and short help
    (enough for ``--help`` and typo suggestions); resolving one for a run
    imports its module and swaps in the real command.
    """

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        loaded = dict(self.commands)
        ordered: dict[str, Any] = {}
        for name, _, help_text in _LAZY_COMMANDS:
            ordered[name] = loaded.pop(name, None) or _stand_in(name, help_text)
        ordered.update(loaded)
        for name, _, help_text in _GROUPS:
            ordered.setdefault(name, _stand_in(name, help_text))
        self.commands = ordered

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and getattr(self.commands.get(args[0]), "_ctloop_stand_in", False):
            self._load(args[0])
        return super().resolve_command(ctx, args)

    def _load(self, cmd_name: str) -> None:
        for name, module_name, help_text in _GROUPS:
            if name == cmd_name:
                group = typer.main.get_group(importlib.import_module(module_name).app)
                group.name = name
                group.help = group.help or help_text
                self.commands[name] = group
                return
        for name, module_name, _ in _LAZY_COMMANDS:
            if name == cmd_name:
                importlib.import_module(module_name)  # registers the command on `app`
                self.commands[name] = typer.main.get_group(app).commands[name]
                return


def _stand_in(name: str, help_text: str) -> typer.core.TyperGroup:
    stand_in = typer.core.TyperGroup(name=name, help=help_text)
    stand_in._ctloop_stand_in = True  # type: ignore[attr-defined]  # marks a not-yet-imported command
    return stand_in


app = typer.Typer(
    name="ctloop",
    help="Continuous training: pipelines, data validation, models and registry, feature store.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=_LazyGroup,
)


def _version(value: bool) -> None:
    if value:
        from ctloop import __version__

        typer.echo(f"ctloop {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.",
    )] = False,
    wide: Annotated[bool, typer.Option(
        "--wide", help="Tables show whole ids and every column (also CTLOOP_WIDE=1).",
    )] = False,
    env: Annotated[str | None, typer.Option(
        "--env", envvar="CTLOOP_ENV", show_envvar=True,
        help="Environment of ctloop.toml ([ctloop.environments.NAME]) whose stores to use.",
    )] = None,
) -> None:
    """Continuous training: pipelines, data validation, models and registry, feature store."""
    from ctloop.cli.output import set_wide

    set_wide(wide)  # every call chooses afresh (tests run many calls in one process)
    _choose_environment(env)


def _choose_environment(name: str | None) -> None:
    """Check ``--env`` names a declared environment and hand it to everything via ``CTLOOP_ENV``.

    The variable, not a parameter, carries the choice so the processes ctloop
    starts (serving workers, subprocess runners) read the same stores.
    """
    import os

    if not name:
        os.environ.pop("CTLOOP_ENV", None)
        return
    from ctloop.core.settings import load_settings

    load_settings(env=name)  # an unknown name: one ConfigError line naming the declared ones
    os.environ["CTLOOP_ENV"] = name


def _hide_flag_types() -> None:
    """Show ``--json`` rather than ``--json <bool>``: a flag takes no value to describe."""
    original = typer.core.TyperOption.display_type_rich
    if getattr(original, "_ctloop", False):
        return

    def display_type_rich(self: typer.core.TyperOption, ctx: Any) -> str | None:
        if self.is_flag or self.count:
            return None
        return original(self, ctx)

    display_type_rich._ctloop = True  # type: ignore[attr-defined]  # marks the patch as applied
    typer.core.TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]  # no public hook for the type column


_mounted = False


def _mount() -> None:
    """Import the eager command modules and patch the help format, once per process."""
    global _mounted
    if _mounted:
        return
    _mounted = True
    _hide_flag_types()
    for module_name in _COMMAND_MODULES:
        importlib.import_module(module_name)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    from ctloop.core.secrets import install_log_masking

    install_log_masking()
    _mount()
    import os

    chosen_env = os.environ.get("CTLOOP_ENV")  # --env sets it for this call only
    try:
        # Without standalone mode click returns the code of a typer.Exit instead of exiting.
        code = app(args=argv, standalone_mode=False)
    except CtloopError as exc:
        typer.echo(exc.one_line(), err=True)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except PermissionError as exc:  # a folder of another user (a root-owned volume, say)
        from ctloop.core.paths import denied

        typer.echo(denied(exc).one_line(), err=True)
        return 2
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except Exception as exc:
        # Usage errors of click (typer ships its own copy, so match by shape, not class).
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            return exit_code
        import traceback

        from ctloop.core.secrets import mask_secrets

        # An unexpected error: its traceback helps a bug report, but never shows a secret.
        typer.echo(mask_secrets(traceback.format_exc()), err=True)
        return 1
    finally:
        if chosen_env is None:
            os.environ.pop("CTLOOP_ENV", None)
        else:
            os.environ["CTLOOP_ENV"] = chosen_env
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
