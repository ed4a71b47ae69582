"""A newcomer's mistakes answer before the heavy stack loads (issue 23.4).

Each mistake runs in a fresh interpreter in an empty project folder (or one with a
mistyped ctloop.toml); the test asserts one clear line, exit code 2, and that
pandas, pyarrow, lightgbm, SQLAlchemy and scikit-learn were never imported.
Speed itself is measured by ``bench/bench_cli_startup.py``, never timed here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

_HEAVY = ("pandas", "pyarrow", "lightgbm", "sqlalchemy", "sklearn")

_LOOP_TYPO = """
[ctloop.loops.shop]
model = "shop"
data = "data/*.parquet"
label = "bought"
event_tme = "ts"
"""

# (argv, ctloop.toml text or None, a phrase the one line must hold)
MISTAKES: list[tuple[list[str], str | None, str]] = [
    (["loop", "replay", "nosuch"], None, "No loop named 'nosuch'"),
    (["loop", "run", "nosuch", "--once"], None, "No loop named 'nosuch'"),
    (["loop", "status", "nosuch"], None, "No loop named 'nosuch'"),
    (["loop", "replay", "shop"], _LOOP_TYPO, "did you mean 'event_time'"),
    (["loop", "replay", "typo"],
     _LOOP_TYPO.replace("event_tme", "event_time") + _LOOP_TYPO.replace("shop", "typo"),
     "did you mean 'event_time'"),
    (["loop", "replay", "shpo"], _LOOP_TYPO.replace("event_tme", "event_time"),
     "No loop named 'shpo'"),
    (["data", "validate", "nosuch.parquet", "--schema", "schema.yaml"], None,
     "No file at nosuch.parquet"),
    (["data", "stats", "nosuch.parquet"], None, "No file at nosuch.parquet"),
    (["data", "schema", "nosuch.parquet"], None, "No file at nosuch.parquet"),
    (["data", "drift", "nosuch.parquet", "other.parquet"], None, "No file at nosuch.parquet"),
    (["predict", "nosuch", "in.parquet", "out.parquet"], None, "in.parquet does not exist"),
    (["predict", "nosuch", "in.txt", "out.parquet"], None, "must end in .parquet"),
    (["explain", "nosuch", "in.parquet"], None, "No file at in.parquet"),
    (["runs", "show", "nosuch"], None, "No run with id 'nosuch'"),
    (["models", "show", "nosuch"], None, "No model named 'nosuch'"),
]


def _run(argv: list[str], cwd: Path) -> tuple[int, str, list[str]]:
    script = (
        "import sys, json\n"
        "from ctloop.cli.main import main\n"
        f"code = main({argv!r})\n"
        "print(json.dumps([code, sorted(sys.modules)]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=cwd, check=True)
    code, modules = json.loads(done.stdout.strip().splitlines()[-1])
    return code, done.stderr, modules


@pytest.mark.parametrize(("argv", "toml", "phrase"), MISTAKES,
                         ids=[" ".join(m[0]) + (" (toml)" if m[1] else "") for m in MISTAKES])
def test_mistake_answers_in_one_line_without_heavy_imports(
        tmp_path: Path, argv: list[str], toml: str | None, phrase: str) -> None:
    (tmp_path / "schema.yaml").write_text("columns: {}\n")
    if toml is not None:
        (tmp_path / "ctloop.toml").write_text(toml)
    code, err, modules = _run(argv, tmp_path)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and phrase in lines[0], err
    assert [m for m in modules if m.split(".")[0] in _HEAVY] == []
    assert not (tmp_path / ".ctloop" / "metadata.db").exists()  # a lookup stores nothing


def test_a_project_with_stores_still_looks_up(tmp_path: Path) -> None:
    """Once something is stored the lookup goes to the store, with the store's own message."""
    from ctloop.metadata import open_metadata_store

    (tmp_path / "ctloop.toml").write_text("[ctloop]\n")
    store = open_metadata_store(f"sqlite:///{tmp_path / '.ctloop' / 'metadata.db'}")
    store.close()
    code, err, _ = _run(["runs", "show", "nosuch1234567"], tmp_path)
    assert code == 2 and "No run with id 'nosuch1234567'" in err and "ctloop runs list" in err
