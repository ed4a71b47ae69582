"""The ``ctloop`` entry point itself."""

from __future__ import annotations

import pytest

from ctloop.cli import main as cli_main
from ctloop.testing.cli import cli


def test_groups_are_mounted_once_however_often_main_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for _ in range(3):
        code, out, _ = cli(capsys, "--help")
        assert code == 0
    names = [g.name for g in cli_main.app.registered_groups]
    assert len(names) == len(set(names)) == len(cli_main._GROUPS)
    assert out.count(" runs ") == 1
