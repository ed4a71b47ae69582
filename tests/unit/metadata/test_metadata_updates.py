"""Typed update records: only the fields given change, ``None`` is a value, typos fail early."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ctloop.metadata import UNSET, ModelVersionUpdate, RunStatus, RunUpdate


def test_a_run_update_gives_only_its_set_fields() -> None:
    ended = datetime(2026, 1, 1, tzinfo=UTC)
    assert RunUpdate().given() == {}
    assert RunUpdate(status=RunStatus.FAILED, ended_at=ended).given() == {
        "status": RunStatus.FAILED,
        "ended_at": ended,
    }
    assert RunUpdate(error=None, ended_at=None).given() == {"error": None, "ended_at": None}
    assert RunUpdate(error=UNSET).given() == {}


def test_a_model_version_update_changes_only_what_may_change() -> None:
    assert ModelVersionUpdate(tags={"a": "b"}).given() == {"tags": {"a": "b"}}
    with pytest.raises(TypeError):
        ModelVersionUpdate(artifact_id="x")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        RunUpdate(RunStatus.FAILED)  # type: ignore[call-arg]  # keyword-only: no positional mix-ups


def test_update_records_are_frozen_values() -> None:
    update = RunUpdate(status=RunStatus.SUCCEEDED)
    with pytest.raises(AttributeError):
        update.status = RunStatus.FAILED  # type: ignore[misc]
    assert update == RunUpdate(status=RunStatus.SUCCEEDED)
    assert repr(RunUpdate()).count("UNSET") == len(RunUpdate().__dataclass_fields__)
