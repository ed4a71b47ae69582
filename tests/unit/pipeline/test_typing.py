"""The typed DSL: mypy sees users' pipelines with real types.

``typing_cases/good_pipeline.py`` (README-style) must type-check cleanly under
``mypy --strict``; every line of ``typing_cases/bad_pipeline.py`` marked
``# error: CODE [CODE...]`` must be reported with those codes, and nothing else.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CASES = Path(__file__).parent / "typing_cases"

pytestmark = pytest.mark.slow  # one mypy run over pandas' stubs


def _mypy(*files: Path) -> list[tuple[str, int, str]]:
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--show-error-codes",
         *[str(f.relative_to(ROOT)) for f in files]],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr
    found = []
    for line in done.stdout.splitlines():
        match = re.match(r"^(.+?):(\d+): error: .*\[([a-z-]+)\]$", line)
        if match:
            found.append((Path(match.group(1)).name, int(match.group(2)), match.group(3)))
    return found


def test_good_pipeline_is_clean_and_every_deliberate_error_is_reported() -> None:
    found = _mypy(CASES / "good_pipeline.py", CASES / "bad_pipeline.py")
    assert [f for f in found if f[0] == "good_pipeline.py"] == []
    expected = [
        ("bad_pipeline.py", number, code)
        for number, line in enumerate((CASES / "bad_pipeline.py").read_text().splitlines(), 1)
        if (match := re.search(r"# error: ([a-z -]+)$", line))
        for code in match.group(1).split()
    ]
    assert len(expected) >= 6
    assert sorted(f for f in found if f[0] == "bad_pipeline.py") == sorted(expected)
