"""The live canary: a blessed candidate waits as ``challenger``, the prediction service sends it
the configured share of the traffic, ``ctloop feedback`` delivers the labels, and the
controller promotes or drops it once enough of its requests are labelled."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pandas as pd
import pytest

from ctloop.core.settings import load_settings
from ctloop.loop.sample import sample_span, write_sample_spans
from ctloop.testing.cli import cli
from ctloop.testing.loops import churn_loop

pytestmark = pytest.mark.slow

# What a user writes: the loop's canary policy, and the service's split to the challenger.
TOML = churn_loop(
    'id = "customer"',
    'window = "auto"',
    'retrain_on = ["decay"]',
    'train = { flavor = "lightgbm", params = { n_estimators = 20 } }',
    'decay = { max_drop = 0.1, min_labels = 100 }',
    'canary = { share = 0.5, min_labels = 100 }',
    '',
    '[ctloop.serving]',
    'canary = "challenger=50%"',
)


def _serve(rows: pd.DataFrame) -> pd.Series:
    """Score rows through the service built from the project's [ctloop.serving] table (as
    ``ctloop serve`` does); returns the version that answered each request id."""
    from ctloop.serving import create_app
    from ctloop.serving.background import background_server

    app = create_app("churn", settings=load_settings(), feature_store=False)
    with background_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        answer = client.post("/v1/models/churn:predict", json={
            "rows": rows[["usage", "tenure", "spend", "plan"]].to_dict("records"),
            "request_ids": rows["customer"].tolist()})
        assert answer.status_code == 200, answer.text
    body = answer.json()
    return pd.Series(body["versions"], index=body["request_ids"])


def _feedback(capsys: pytest.CaptureFixture[str], project: Path, rows: pd.DataFrame) -> None:
    labels = project / "labels.csv"
    rows[["customer", "churned"]].rename(columns={"customer": "row_id", "churned": "label"}
                                         ).to_csv(labels, index=False)
    code, out, err = cli(capsys, "feedback", "churn", str(labels), "--json")
    assert code == 0, err
    assert json.loads(out)["matched"] == len(rows)


def _land(capsys: pytest.CaptureFixture[str], project: Path, frame: pd.DataFrame,
          name: str) -> dict:  # type: ignore[type-arg]
    frame.to_parquet(project / "landing" / f"{name}.parquet", index=False)
    code, out, err = cli(capsys, "loop", "run", "churn", "--once", "--json")
    assert code == 0, err
    (span,) = json.loads(out)["spans"]
    assert span["span"] == name
    return span  # type: ignore[no-any-return]


def _aliases(capsys: pytest.CaptureFixture[str]) -> tuple[int | None, int | None]:
    code, out, err = cli(capsys, "loop", "status", "churn", "--json")
    assert code == 0, err
    status = json.loads(out)
    return status["champion"], status["challenger"]


def _history(capsys: pytest.CaptureFixture[str]) -> list[dict]:  # type: ignore[type-arg]
    code, out, err = cli(capsys, "models", "history", "churn", "--json")
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


@pytest.mark.parametrize("outcome", ["promote", "drop"])
def test_live_canary_waits_for_labels_then_decides(ctloop_home: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   outcome: str) -> None:
    (ctloop_home / "ctloop.toml").write_text(TOML)
    staged = ctloop_home / "staged"
    write_sample_spans(staged, spans=4, rows=600, change_at=2, shift_at=None)
    landing = ctloop_home / "landing"
    landing.mkdir()
    for name in ("week-00", "week-01"):
        shutil.copy(staged / f"{name}.parquet", landing)
    code, out, err = cli(capsys, "loop", "run", "churn", "--once", "--json")
    assert code == 0, err
    assert json.loads(out)["spans"][0]["promoted"] == 1  # the bootstrap champion

    # The concept flips; production (champion only: no challenger yet) serves the week.
    week2 = pd.read_parquet(staged / "week-02.parquet")
    assert set(_serve(week2)) == {1}
    _feedback(capsys, ctloop_home, week2)
    span = _land(capsys, ctloop_home, week2, "week-02")
    assert next(t for t in span["triggers"] if t["name"] == "decay")["fired"]
    assert span["gate"]["blessed"] and span["gate"]["challenger"] == 2
    assert span["promoted"] is None and span["canary"] is None
    assert _aliases(capsys) == (1, 2)  # blessed, but only a challenger until the canary

    # The service now splits half the traffic to the challenger; few labels arrive.
    week3 = pd.read_parquet(staged / "week-03.parquet")
    served = _serve(week3)
    assert set(served) == {1, 2} and 0.4 < (served == 2).mean() < 0.6
    few = week3.iloc[:60]
    _feedback(capsys, ctloop_home, few)
    before = _history(capsys)
    span = _land(capsys, ctloop_home, week3, "week-03")
    canary = span["canary"]
    assert canary["decision"] == "wait" and canary["challenger"] == 2
    n = int((served[few["customer"]] == 2).sum())
    assert canary["labels"] == n < 100
    assert canary["reason"] == f"{n} labelled challenger requests, need 100"
    assert span["promoted"] is None and span["gate"] is None  # too few labels: nothing trains
    assert _aliases(capsys) == (1, 2) and _history(capsys) == before  # nothing moved

    # Another week, every label delivered: the canary has enough and decides.
    week4 = sample_span(4, 600, change_at=2 if outcome == "promote" else None)
    served = _serve(week4)
    _feedback(capsys, ctloop_home, week4)
    span = _land(capsys, ctloop_home, week4, "week-04")
    canary = span["canary"]
    assert canary["decision"] == outcome
    assert canary["labels"] == int((served == 2).sum()) >= 100
    better = canary["challenger_live"] > canary["champion_live"]
    assert better == (outcome == "promote")
    assert canary["reason"] == (
        f"challenger v2 roc_auc {canary['challenger_live']:.4f} vs champion v1 "
        f"{canary['champion_live']:.4f} on span week-04")
    moves = _history(capsys)[len(before):]
    label = "promoted" if outcome == "promote" else "dropped"
    assert moves[0]["alias"] == "challenger" and moves[0]["version"] is None
    assert moves[0]["reason"] == f"{label}: {canary['reason']}"
    if outcome == "promote":
        assert span["promoted"] == 2 and _aliases(capsys) == (2, None)
        (champion,) = moves[1:]
        assert (champion["alias"], champion["previous_version"], champion["version"]) == (
            "champion", 1, 2)
        assert champion["reason"] == f"canary: {canary['reason']}"
    else:
        assert span["promoted"] is None and _aliases(capsys) == (1, None)
        assert len(moves) == 1  # the champion stays; nothing retrained on a calm week
        assert not next(t for t in span["triggers"] if t["name"] == "decay")["fired"]


def test_a_trigger_firing_while_the_canary_waits_is_held(ctloop_home: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    """``new_span`` fires on every span; while the challenger's canary waits for labels, a
    new candidate would replace it before its traffic decided anything: training waits."""
    (ctloop_home / "ctloop.toml").write_text(TOML.replace('retrain_on = ["decay"]',
                                                          'retrain_on = ["decay", "new_span"]'))
    staged = ctloop_home / "staged"
    write_sample_spans(staged, spans=4, rows=600, change_at=2, shift_at=None)
    landing = ctloop_home / "landing"
    landing.mkdir()
    shutil.copy(staged / "week-00.parquet", landing)
    code, out, err = cli(capsys, "loop", "run", "churn", "--once", "--json")
    assert code == 0, err
    assert json.loads(out)["spans"][0]["promoted"] == 1  # the bootstrap champion
    week2 = pd.read_parquet(staged / "week-02.parquet")  # the concept flips: decay fires
    _serve(week2)
    _feedback(capsys, ctloop_home, week2)
    span = _land(capsys, ctloop_home, week2, "week-02")
    assert span["gate"]["blessed"] and span["gate"]["challenger"] == 2
    week3 = pd.read_parquet(staged / "week-03.parquet")
    _serve(week3)
    _feedback(capsys, ctloop_home, week3.iloc[:40])  # far fewer than min_labels
    span = _land(capsys, ctloop_home, week3, "week-03")
    assert span["canary"]["decision"] == "wait"
    new_span = next(t for t in span["triggers"] if t["name"] == "new_span")
    assert not new_span["fired"]
    assert new_span["reason"] == ("span week-03 landed and is valid; held: the canary of "
                                  "challenger v2 is undecided")
    assert span["gate"] is None and span["promoted"] is None
    assert _aliases(capsys) == (1, 2)
