"""Fixtures the integration tests share (a module's own fixture of the same name wins)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctloop.loop.sample import write_sample_spans


@pytest.fixture
def box(ctloop_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder the test pipelines write their traces into (``CTLOOP_TEST_DIR``)."""
    folder = ctloop_home / "box"
    folder.mkdir()
    monkeypatch.setenv("CTLOOP_TEST_DIR", str(folder))
    return folder


@pytest.fixture
def project(ctloop_home: Path) -> Path:
    """A project with three weekly churn spans of 300 rows, no change, in ``landing/``."""
    write_sample_spans(ctloop_home / "landing", spans=3, rows=300, change_at=None,
                       shift_at=None)
    return ctloop_home
