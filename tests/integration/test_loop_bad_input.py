"""Bad input to a loop: one line naming the loop and the key, non-zero exit, nothing lost."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from ctloop.testing.cli import cli, one_error_line
from ctloop.testing.loops import churn_loop

TRAINERS = Path(__file__).with_name("loop_trainers.py")

BASE = churn_loop(
    'train = {{ flavor = "lightgbm", params = {{ n_estimators = 10 }} }}',
    '{extra}',
)


def _declare(project: Path, extra: str = "", base: str = BASE) -> None:
    (project / "ctloop.toml").write_text(base.format(extra=extra))


def _error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, _, err = cli(capsys, *args)
    assert code != 0
    return one_error_line(err)


def test_unknown_key_names_the_nearest(project: Path, capsys) -> None:
    _declare(project, 'windw = "2 spans"')
    line = _error(capsys, "loop", "replay", "churn")
    assert "Loop 'churn': unknown key 'windw'; did you mean 'window'?" in line


def test_unknown_loop_name(project: Path, capsys) -> None:
    _declare(project)
    line = _error(capsys, "loop", "status", "chrun")
    assert "No loop named 'chrun'" in line and "'churn'" in line


@pytest.mark.parametrize("column,key", [("ts", "event_time"), ("churned", "label")])
def test_a_span_without_event_time_or_label(project: Path, capsys, column: str,
                                            key: str) -> None:
    _declare(project)
    path = project / "landing" / "week-01.parquet"
    pd.read_parquet(path).drop(columns=[column]).to_parquet(path)
    line = _error(capsys, "loop", "replay", "churn")
    assert f"Loop 'churn': span 'week-01' has no {key} column {column!r} (key {key!r})" in line


def test_an_unreadable_span(project: Path, capsys) -> None:
    _declare(project)
    (project / "landing" / "week-09.parquet").write_bytes(b"not parquet at all")
    line = _error(capsys, "loop", "replay", "churn")
    assert "Loop 'churn': span 'week-09' cannot be read" in line


@pytest.mark.parametrize("defect,expected", [
    ("unreadable", "span 'week-09' cannot be read (key 'data')"),
    ("no_label", "span 'week-09' has no label column 'churned' (key 'label')"),
])
def test_a_bad_span_live_once_handles_the_others(project: Path, capsys, defect: str,
                                                 expected: str) -> None:
    """The replay is strict (above); ``loop run --once`` (cron) handles the good spans,
    quarantines the bad file and fails with one line naming it."""
    from ctloop.loop.sample import sample_span

    _declare(project)
    bad = project / "landing" / "week-09.parquet"
    if defect == "unreadable":
        bad.write_bytes(b"not parquet at all")
    else:
        sample_span(9, 50).drop(columns=["churned"]).to_parquet(bad)
    assert expected in _error(capsys, "loop", "replay", "churn")
    code, out, err = cli(capsys, "loop", "run", "churn", "--once")
    assert code == 1
    assert one_error_line(err).startswith(f"Loop 'churn': {expected}")
    assert "week-00" in out and "week-02" in out and "week-09 quarantined" in out
    code, out, err = cli(capsys, "loop", "status", "churn", "--json")
    spans = {s["span"]: s["status"] for s in json.loads(out)["spans"]}
    assert spans == {"week-00": "valid", "week-01": "valid", "week-02": "valid",
                     "week-09": "quarantined"}


def test_a_window_longer_than_the_history(project: Path, capsys) -> None:
    _declare(project, 'window = "10 spans"')
    line = _error(capsys, "loop", "replay", "churn")
    assert "Loop 'churn': key 'window' is '10 spans', longer than the history (3 spans)" in line


def test_a_trainer_that_raises_keeps_what_was_stored(project: Path, capsys) -> None:
    _declare(project)
    code, _, err = cli(capsys, "loop", "replay", "churn", "--json")
    assert code == 0, err
    before = sorted(p.name for p in (project / ".ctloop").iterdir())
    base = BASE.replace('train = {{ flavor = "lightgbm", params = {{ n_estimators = 10 }} }}',
                        f'train = "{TRAINERS}:broken"')
    _declare(project, base=base)
    line = _error(capsys, "loop", "replay", "churn")
    assert "Loop 'churn': key 'train': the bootstrap training on span week-00 failed" in line
    assert "the trainer has a bug" in line
    assert sorted(p.name for p in (project / ".ctloop").iterdir()) == before
    code, _, err = cli(capsys, "loop", "run", "churn", "--once")  # live: recorded, non-zero
    assert code == 1 and "the trainer has a bug" in err


def test_feedback_bad_files(project: Path, capsys, tmp_path: Path) -> None:
    _declare(project)
    missing = _error(capsys, "feedback", "churn", str(tmp_path / "nope.csv"))
    assert "does not exist" in missing
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"id": ["a"], "y": [1]}).to_csv(bad, index=False)
    assert "needs a 'label' column and a 'request_id' or 'row_id'" in _error(
        capsys, "feedback", "churn", str(bad))


@pytest.mark.slow
def test_init_template_loop_scaffolds_a_loop_that_replays(ctloop_home: Path, capsys,
                                                          monkeypatch) -> None:
    code, out, err = cli(capsys, "init", "shop", "--template", "loop")
    assert code == 0, err
    monkeypatch.chdir(ctloop_home / "shop")
    code, out, err = cli(capsys, "loop", "replay", "shop", "--json")
    assert code == 0, err
    spans = json.loads(out)["spans"]
    assert len(spans) == 8 and spans[0]["bootstrap"]
    assert spans[5]["status"] == "quarantined"
    assert next(t for t in spans[3]["triggers"] if t["name"] == "decay")["fired"]
    code, out, err = cli(capsys, "loop", "status", "shop", "--json")
    assert code == 0 and json.loads(out)["spans"] == []  # a replay never touches live state
    # In a terminal, --baseline shows the never-retrained model beside the live one, and
    # what retraining bought over the whole history.
    code, out, err = cli(capsys, "loop", "replay", "shop", "--baseline")
    assert code == 0, err
    text = " ".join(out.split())
    week4 = next(s for s in spans if s["span"] == "week-04")
    line = re.search(r"week-04 v2 live roc_auc ([0-9.]+) \(never retrained ([0-9.]+)\)", text)
    assert line and float(line[1]) == week4["live"]["roc_auc"], text
    assert float(line[2]) < float(line[1]) - 0.3  # the first model misses the new concept
    live = [s["live"]["roc_auc"] for s in spans[1:] if s["live"]]
    match = re.search(r"retraining: mean live roc_auc ([0-9.]+) vs never retrained "
                      r"([0-9.]+) \(\+([0-9.]+)\) over 6 spans", text)
    assert match and len(live) == 6, text
    assert float(match[1]) == pytest.approx(sum(live) / 6, abs=1e-4)
    assert float(match[3]) > 0.1  # the concept change: the first model never recovers
    assert "Unknown template 'loops'" in _error(capsys, "init", "x", "--template", "loops")


def test_a_lease_held_by_a_live_controller(project: Path, capsys) -> None:
    """``loop run --once`` while another controller holds the lease: one line, exit 2,
    nothing done (the spans are still unhandled for the lease holder)."""
    from ctloop.core.settings import load_settings
    from ctloop.triggers.store import ControllerState

    _declare(project)
    state = ControllerState(load_settings().metadata_url)
    assert state.acquire("loop:churn", "other-host:4242", ttl=600)
    code, _, err = cli(capsys, "loop", "run", "churn", "--once")
    assert code == 2
    line = one_error_line(err)
    assert "Loop 'churn': the lease is held by a live controller (other-host:4242)" in line
    assert state.read("loop:churn").get("spans", {}) == {}
