"""Shared fixtures: an isolated ctloop home per test."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def ctloop_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh project folder; ctloop keeps its state under ``.ctloop`` inside it."""
    monkeypatch.chdir(tmp_path)
    for var in ("CTLOOP_HOME", "CTLOOP_METADATA_URL", "CTLOOP_ARTIFACTS_URL",
                "CTLOOP_ONLINE_STORE_URL", "CTLOOP_RUNNER"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path
