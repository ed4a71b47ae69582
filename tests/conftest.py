"""Shared fixtures: an isolated ctloop home per test, and scenarios run once per session."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest

from ctloop.testing.projects import DemoRun


@pytest.fixture
def ctloop_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh project folder; ctloop keeps its state under ``.ctloop`` inside it."""
    monkeypatch.chdir(tmp_path)
    for var in ("CTLOOP_HOME", "CTLOOP_METADATA_URL", "CTLOOP_ARTIFACTS_URL",
                "CTLOOP_ONLINE_STORE_URL", "CTLOOP_RUNNER"):
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
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("CTLOOP_")}
    out, err = io.StringIO(), io.StringIO()
    try:
        os.chdir(home)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["demo", "--months", "4-5", "--defective-month", "5", "--json"])
    finally:
        os.chdir(keep)
        os.environ.update(saved)
    return DemoRun(home=home, code=code, out=out.getvalue(), err=err.getvalue())
