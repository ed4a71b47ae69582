"""Shared fixtures: an isolated ctloop home per test, and scenarios run once per session."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ctloop.testing.projects import DemoRun
from ctloop.testing.services import user_environment

# No background LLVM compiles of served models in the suite (compiled = "auto" is the
# default): tests of compilation turn it on themselves. Kept by user_environment().
os.environ.setdefault("CTLOOP_SERVING_COMPILED", "false")

_PROJECT_VARIABLES = ("CTLOOP_HOME", "CTLOOP_METADATA_URL", "CTLOOP_ARTIFACTS_URL",
                      "CTLOOP_ONLINE_STORE_URL", "CTLOOP_RUNNER")
"""What would point ctloop away from the project folder a test works in."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a pytest-xdist worker (``-n 2 --dist loadfile --no-loadscope-reorder``), files
    with slow tests come first, so no long test starts last while the other worker idles.
    Each file stays one unit of work (its module fixtures are built once)."""
    if not hasattr(config, "workerinput"):
        return
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)  # stable: a file stays in one piece


@pytest.fixture
def ctloop_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh project folder; ctloop keeps its state under ``.ctloop`` inside it."""
    monkeypatch.chdir(tmp_path)
    for var in _PROJECT_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.fixture(scope="session")
def flights_demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """``ctloop demo --months 4-5 --defective-month 5 --json`` run once per session.

    The browser tests' dashboard and ``test_demo_flights`` read the same run (it
    costs ~25 s of CPU, minutes on a loaded machine); each works on a copy. Run in
    an empty folder without ``CTLOOP_*`` variables, as a user runs it.
    """
    from ctloop.cli.main import main

    home = tmp_path_factory.mktemp("demo-flights")
    keep = os.getcwd()
    allowed = user_environment()
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k not in allowed}
    out, err = io.StringIO(), io.StringIO()
    try:
        os.chdir(home)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["demo", "--months", "4-5", "--defective-month", "5", "--json"])
    finally:
        os.chdir(keep)
        os.environ.update(saved)
    return DemoRun(home=home, code=code, out=out.getvalue(), err=err.getvalue())


@pytest.fixture(scope="session")
def readme_demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """``ctloop demo`` exactly as the README runs it (every month, March to December), once
    per session, in a fresh process at 80 columns, in an empty folder without ``CTLOOP_*``.

    Its story (``test_demo_story``) and its outcome (``test_demo_flights``: ``demo --json``
    in the same folder prints this run's replay, reused) are read from the same run, so
    the suite replays the ten months once. Both tests only read the folder: a second demo
    there replays nothing and moves no alias, which the story test asserts.
    """
    home = tmp_path_factory.mktemp("demo-readme")
    env = user_environment()
    env["COLUMNS"] = "80"
    done = subprocess.run([sys.executable, "-m", "ctloop", "demo"], cwd=home, env=env,
                          capture_output=True, text=True, timeout=3600, check=False)
    return DemoRun(home=home, code=done.returncode, out=done.stdout, err=done.stderr)


@pytest.fixture
def in_readme_demo(readme_demo: DemoRun, monkeypatch: pytest.MonkeyPatch) -> DemoRun:
    """The README demo's folder as the working directory (as ``ctloop_home`` sets one up)."""
    assert readme_demo.code == 0, readme_demo.err
    monkeypatch.chdir(readme_demo.home)
    for var in _PROJECT_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    return readme_demo

