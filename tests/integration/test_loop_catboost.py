"""A declared loop with ``train.flavor = "catboost"`` replayed end to end: trained by
``fit_model``, gated, served, monitored; the models it registers are CatBoost's .cbm."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ctloop.loop.sample import write_sample_spans
from ctloop.testing.cli import cli
from ctloop.testing.loops import churn_loop

pytestmark = pytest.mark.slow

LOOP = churn_loop(
    'id = "customer"',
    'window = "auto"',
    'retrain_on = ["decay"]',
    'train = { flavor = "catboost", params = { iterations = 30 } }',
    'decay = { max_drop = 0.1 }',
)


def test_a_catboost_loop_trains_serves_and_retrains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("CTLOOP_HOME", "CTLOOP_METADATA_URL", "CTLOOP_ARTIFACTS_URL"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "ctloop.toml").write_text(LOOP)
    write_sample_spans(tmp_path / "landing", spans=5, rows=600, change_at=3, shift_at=None)
    code, out, err = cli(capsys, "loop", "replay", "churn", "--json")
    assert code == 0, err
    replay = json.loads(out)
    spans = replay["spans"]
    assert [s["span"] for s in spans] == [f"week-{i:02d}" for i in range(5)]
    assert spans[0]["bootstrap"] and spans[0]["promoted"] == 1
    assert spans[0]["gate"]["candidate"] > 0.75  # roc_auc of the CatBoost candidate
    assert all(s["live"]["roc_auc"] is not None for s in spans[1:])  # served and scored
    manifests = [
        json.loads(p.read_text())
        for p in (tmp_path / ".ctloop" / "replays" / "churn").rglob("ctloop-model.json")
    ]
    assert manifests and {m["flavor"] for m in manifests} == {"catboost"}
    assert {m["model_file"] for m in manifests} == {"model.cbm"}
