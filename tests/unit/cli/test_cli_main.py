"""The ``ctloop`` entry point itself."""

from __future__ import annotations

import pytest

from ctloop.cli import main as cli_main
from ctloop.testing.cli import cli


def test_groups_are_mounted_once_however_often_main_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli(capsys, "runs", "--help")
    registered = len(cli_main.app.registered_commands)
    for _ in range(3):
        code, out, _ = cli(capsys, "--help")
        assert code == 0
    assert len(cli_main.app.registered_commands) == registered
    names = [c.name or c.callback.__name__ for c in cli_main.app.registered_commands
             if c.callback is not None]
    assert len(names) == len(set(names))
    listed = [line.split()[1] for line in out.splitlines() if line.startswith("│ ")]
    assert sorted(set(listed)) == sorted(listed)  # every command listed once
    assert {"run", "resume", "runs", "models", "data"} <= set(listed)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import ctloop

    code, out, _ = cli(capsys, "--version")
    assert code == 0 and out.strip() == f"ctloop {ctloop.__version__}"


def test_flags_show_no_type_placeholder(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "run", "--help")
    assert code == 0
    assert "<bool>" not in out and "--no-cache" in out and "--json" in out
    assert "<int>" in out  # options that take a value still say what kind


def test_unknown_command_suggests_lazy_ones_too(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "runz")
    assert code == 2 and "'runs'" in err and "'run'" in err


_HEAVY = ("numpy", "pandas", "pyarrow", "sqlalchemy", "sklearn", "duckdb", "fastapi",
          "lightgbm", "ctloop.pipeline.engine", "ctloop.registry", "ctloop.models")


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["runs", "--help"],
                                  ["run", "--help"], ["models", "--help"], ["data", "--help"],
                                  ["features", "--help"], ["triggers", "--help"]])
def test_help_and_light_commands_import_no_heavy_library(argv: list[str]) -> None:
    """What keeps start-up fast (measured by bench/bench_cli_startup.py, not timed here)."""
    import json
    import subprocess
    import sys

    script = (
        "import sys, json\n"
        "from ctloop.cli.main import main\n"
        f"code = main({argv!r})\n"
        "print(json.dumps([code, sorted(sys.modules)]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=True)
    code, modules = json.loads(done.stdout.strip().splitlines()[-1])
    assert code == 0
    assert [m for m in modules if m in _HEAVY] == []
