"""Cache keys in the engine: exact for arrays and frames, off (and said so) for the rest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctloop.core.jsontypes import as_str
from ctloop.pipeline import run
from ctloop.testing.cli import cli

PIPES = Path(__file__).parent / "defect_pipelines.py"


def _runs(box: Path) -> int:
    path = box / "weighed"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_one_changed_array_value_is_a_cache_miss(box: Path) -> None:
    weights = np.zeros(50_000)
    first = run(f"{PIPES}:weighing", {"weights": weights})
    again = run(f"{PIPES}:weighing", {"weights": weights.copy()})
    assert first.ok and again.steps["weigh"].status == "cached"
    nudged = weights.copy()
    nudged[25_000] = 1.0  # repr() of both arrays is the same
    changed = run(f"{PIPES}:weighing", {"weights": nudged})
    assert changed.steps["weigh"].status == "succeeded"
    assert changed.steps["weigh"].outputs["return"] == 1.0 and _runs(box) == 2


def test_one_changed_frame_value_is_a_cache_miss(box: Path) -> None:
    frame = pd.DataFrame({"w": np.zeros(5_000)})
    assert run(f"{PIPES}:weighing", {"weights": frame}).ok
    nudged = frame.copy()
    nudged.loc[2_500, "w"] = 2.0
    assert run(f"{PIPES}:weighing", {"weights": nudged}).steps["weigh"].status == "succeeded"
    assert run(f"{PIPES}:weighing", {"weights": nudged.copy()}).steps["weigh"].status == "cached"


class Opaque:
    v = 1


def test_a_value_without_exact_fingerprint_runs_uncached_with_a_note(
    box: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = run(f"{PIPES}:weighing", {"weights": Opaque()})
    second = run(f"{PIPES}:weighing", {"weights": Opaque()})
    assert first.ok and second.ok
    step = second.steps["weigh"]
    assert step.status == "succeeded" and step.cache_key is None and _runs(box) == 2
    note = as_str(step.executor["cache"])
    assert "not cached" in note and "'weights'" in note and "Opaque" in note
    assert second.run.environment["uncached_steps"] == {"weigh": note}
    code, out, _ = cli(capsys, "runs", "show", second.run.id)
    assert code == 0 and "not cached: parameter 'weights'" in out
