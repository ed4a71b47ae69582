"""Drive the ``ctloop`` command line in-process from tests."""

from __future__ import annotations

import pytest

from ctloop.cli.main import main

__all__ = ["cli", "one_error_line"]


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``ctloop ARGS``; returns (exit code, stdout, stderr)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    """The single line a failing command printed (asserting there is one, without traceback)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]
