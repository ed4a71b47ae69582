"""A declared loop replayed on a generated history: a concept change, a defective span,
then a covariate shift (not flights: a story whose right answers are known).

    week-00 bootstrap · 01-02 calm · 03 concept flips · 04 recovered · 05 defective
    · 06-07 covariate shift (tenure and spend move; the concept does not)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ctloop.loop.sample import write_sample_spans
from ctloop.testing.cli import cli
from ctloop.testing.loops import churn_loop

pytestmark = pytest.mark.slow

LOOP = churn_loop(
    'id = "customer"',
    'window = "auto"',
    'retrain_on = ["decay", "drift"]',
    'train = {{ flavor = "lightgbm", params = {{ n_estimators = 30 }} }}',
    'decay = {{ max_drop = 0.1 }}',
    'drift = {{ columns = ["usage", "tenure", "spend"] }}',
    '{extra}',
)


def _project(root: Path, extra: str = "", **story: Any) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "ctloop.toml").write_text(LOOP.format(extra=extra))
    write_sample_spans(root / "landing", **{"spans": 8, "rows": 800, "change_at": 3,
                                            "defective_at": 5, "shift_at": 6, **story})
    return root


def _replay(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code, out, err = cli(capsys, "loop", "replay", "churn", "--json", *args)
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def replays(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    import os

    monkey = pytest.MonkeyPatch()
    root = _project(tmp_path_factory.mktemp("loop"))
    monkey.chdir(root)
    for var in ("CTLOOP_HOME", "CTLOOP_METADATA_URL", "CTLOOP_ARTIFACTS_URL"):
        monkey.delenv(var, raising=False)
    from ctloop.cli.main import main

    outs = []
    try:
        for _ in range(2):
            import contextlib
            import io

            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                assert main(["loop", "replay", "churn", "--json", "--baseline", "--html",
                             str(root / "replay.html")]) == 0
            outs.append(json.loads(buffer.getvalue()))
        assert (root / "replay.html").read_text().count("<tr>") == 9
        assert os.path.isdir(root / ".ctloop" / "replays" / "churn")
    finally:
        monkey.undo()
    return outs


def _by_span(replay: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["span"]: s for s in replay["spans"]}


def _fired(span: dict[str, Any], name: str) -> bool:
    return next(t["fired"] for t in span["triggers"] if t["name"] == name)


def test_two_replays_give_identical_json(replays: list[dict[str, Any]]) -> None:
    assert replays[0] == replays[1]
    assert [s["span"] for s in replays[0]["spans"]] == [f"week-{i:02d}" for i in range(8)]


def test_bootstrap_then_decay_catches_the_change_and_the_loop_recovers(replays) -> None:
    spans = _by_span(replays[0])
    first = spans["week-00"]
    assert first["bootstrap"] and first["promoted"] == 1 and first["served_version"] is None
    for calm in ("week-01", "week-02"):
        assert not _fired(spans[calm], "decay") and spans[calm]["promoted"] is None
        assert spans[calm]["live"]["roc_auc"] > 0.75
    change = spans["week-03"]
    assert _fired(change, "decay") and change["live"]["roc_auc"] < 0.5
    assert change["window"] == ["week-03"]  # trained only on data after the change
    assert change["gate"]["blessed"] and change["promoted"] == 2
    after = spans["week-04"]
    assert after["served_version"] == 2 and after["live"]["roc_auc"] > 0.75
    # The never-retrained model stays wrong after the change: the benefit is measured.
    assert after["baseline"]["version"] == 1 and after["baseline"]["roc_auc"] < 0.5


def test_a_defective_span_is_quarantined_and_the_champion_keeps_serving(replays) -> None:
    spans = _by_span(replays[0])
    bad = spans["week-05"]
    assert bad["status"] == "quarantined" and bad["promoted"] is None
    text = " ".join(bad["anomalies"])
    assert "'spend'" in text and "spending" in text  # the renamed column
    assert "usage" in text and "missing" in text  # values gone missing
    assert "enterprise-trial" in text  # a plan never seen before
    assert all(not t["fired"] for t in bad["triggers"])
    assert spans["week-06"]["served_version"] == spans["week-04"]["served_version"]


def test_drift_is_quiet_before_the_shift_and_flags_it(replays) -> None:
    spans = _by_span(replays[0])
    for name in ("week-01", "week-02", "week-03", "week-04"):
        assert not _fired(spans[name], "drift"), spans[name]["drift"]
    shifted = spans["week-06"]
    assert _fired(shifted, "drift")
    assert {"tenure", "spend"} <= set(shifted["drift"]["features"])


def test_no_candidate_that_is_not_better_is_promoted(replays) -> None:
    for span in replays[0]["spans"]:
        gate = span["gate"]
        if not gate or span["bootstrap"]:
            continue
        better = gate["candidate"] >= gate["champion"] + 0.001
        assert gate["blessed"] == better, span
        assert (span["promoted"] is not None) == better, span


def test_a_canary_decides_on_live_traffic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    root = _project(tmp_path / "canary", 'canary = { share = 0.3, min_labels = 100 }',
                    spans=5, defective_at=None, shift_at=None)
    monkeypatch.chdir(root)
    spans = _by_span(_replay(capsys))
    change = spans["week-03"]
    assert change["gate"]["blessed"] and change["gate"]["challenger"] == 2
    assert change["promoted"] is None  # blessed, but only a challenger until the canary
    canary = spans["week-04"]["canary"]
    assert canary["challenger"] == 2 and canary["labels"] >= 100
    assert canary["decision"] == "promote" and canary["challenger_live"] > canary[
        "champion_live"]
    assert spans["week-04"]["promoted"] == 2


def test_the_label_free_estimate_is_a_retrain_signal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``retrain_on = ["estimate"]``: every served span is judged on the champion's
    estimated metric (from its scores alone), which tracks the live one on calm spans."""
    root = _project(tmp_path / "estimate", spans=4, defective_at=None, shift_at=None)
    toml = root / "ctloop.toml"
    toml.write_text(toml.read_text().replace('retrain_on = ["decay", "drift"]',
                                             'retrain_on = ["estimate"]'))
    monkeypatch.chdir(root)
    spans = _by_span(_replay(capsys))
    for calm in ("week-01", "week-02"):
        decision = next(t for t in spans[calm]["triggers"] if t["name"] == "estimate")
        assert decision["reason"].startswith("estimated roc_auc "), decision
        assert not decision["fired"], decision
        estimated = float(decision["reason"].split()[2])
        assert abs(estimated - spans[calm]["live"]["roc_auc"]) < 0.1
