"""The typed DSL: mypy sees users' pipelines with real types.

``typing_cases/good_pipeline.py`` (README-style) must type-check cleanly under
``mypy --strict``; every line of ``typing_cases/bad_pipeline.py`` marked
``# error: CODE [CODE...]`` must be reported with those codes, and nothing else.
mypy runs in a folder outside the repository, as a user's does: ctloop is found as an
installed package (its ``py.typed`` marker), not as source on mypy's path.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CASES = Path(__file__).parent / "typing_cases"

pytestmark = pytest.mark.slow  # one mypy run over pandas' stubs


def _mypy(folder: Path, *files: Path) -> list[tuple[str, int, str]]:
    """mypy --strict over copies of ``files`` in ``folder`` (no project config there)."""
    for f in files:
        shutil.copy(f, folder / f.name)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--show-error-codes",
         "--cache-dir", str(folder / ".mypy_cache"), *[f.name for f in files]],
        cwd=folder, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr
    found = []
    for line in done.stdout.splitlines():
        match = re.match(r"^(.+?):(\d+): error: .*\[([a-z-]+)\]$", line)
        if match:
            found.append((Path(match.group(1)).name, int(match.group(2)), match.group(3)))
    return found


def test_good_pipeline_is_clean_and_every_deliberate_error_is_reported(tmp_path: Path) -> None:
    found = _mypy(tmp_path, CASES / "good_pipeline.py", CASES / "bad_pipeline.py")
    assert not [f for f in found if f[2] == "import-untyped"], found
    assert [f for f in found if f[0] == "good_pipeline.py"] == []
    expected = [
        ("bad_pipeline.py", number, code)
        for number, line in enumerate((CASES / "bad_pipeline.py").read_text().splitlines(), 1)
        if (match := re.search(r"# error: ([a-z -]+)$", line))
        for code in match.group(1).split()
    ]
    assert len(expected) >= 6
    assert sorted(f for f in found if f[0] == "bad_pipeline.py") == sorted(expected)
