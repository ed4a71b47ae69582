"""`ctloop demo` tells its story (issue 23.1): a named first-run phase, the benefit of
retraining with its interval, the time it took, next steps, 80 columns, and a second
run in the same folder that reuses the first and moves no alias.

The first run is the session's README demo (``readme_demo``: ``ctloop demo``, every
month, in a fresh process at 80 columns), whose outcome ``test_demo_flights`` reads too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ctloop.cli.main import main
from ctloop.testing.projects import DemoRun
from ctloop.testing.services import patience, user_environment


def _demo(folder: Path) -> subprocess.CompletedProcess[str]:
    env = user_environment()
    env["COLUMNS"] = "80"
    return subprocess.run([sys.executable, "-m", "ctloop", "demo"],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=3600)


def _aliases(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    assert main(["models", "history", "flights-delay", "--json"]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


@pytest.mark.slow
@pytest.mark.timeout(patience(300))  # the README demo's ten months, when this test runs it
def test_demo_end_lines_fit_80_columns_and_a_second_run_moves_no_alias(
    in_readme_demo: DemoRun, capsys: pytest.CaptureFixture[str]
) -> None:
    first, folder = in_readme_demo, in_readme_demo.home
    assert "preparing NYC flights 2013: 10 monthly spans (first run only)" in first.err
    lines = first.out.splitlines()
    assert all(len(line) <= 80 for line in lines), [x for x in lines if len(x) > 80]
    text = " ".join(first.out.split())  # lines wrap at word boundaries
    assert "retraining pays: mean live roc_auc " in text
    # April to December, each scored by the served and the never-retrained model
    assert "against the never-retrained first model (9 months, 95% interval " in text
    assert "done in " in text and "10 monthly spans prepared (first run only)" in text
    next_lines = first.out[first.out.index("next:"):].splitlines()
    assert next_lines[1].split()[:2] == ["ctloop", "ui"]
    assert any("ctloop loop status flights" in line for line in next_lines)
    # The loop command the end lines name works in this folder.
    assert main(["loop", "status", "flights", "--json"]) == 0
    capsys.readouterr()
    history = _aliases(capsys)
    runs_before = main(["runs", "list", "--json", "--limit", "100"]), capsys.readouterr().out

    second = _demo(folder)
    assert second.returncode == 0, second.stderr
    assert "preparing" not in second.stderr
    again = " ".join(second.stdout.split())
    assert "reused: the replay of " in again and "no alias moved" in again
    assert "retraining pays" in again and "(first run only)" not in again
    assert all(len(line) <= 80 for line in second.stdout.splitlines())
    assert _aliases(capsys) == history  # nothing moved away and back
    assert (main(["runs", "list", "--json", "--limit", "100"]),
            capsys.readouterr().out) == runs_before
