"""CI for a loop declaration: replay before and after a change, ``ctloop loop compare``.

Two replays of the same declaration are identical (exit 0); after a
deliberately worse trainer (one tree of two leaves) the compare exits 1 and
names the spans that got worse.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ctloop.loop.sample import write_sample_spans
from ctloop.testing.cli import cli
from ctloop.testing.loops import churn_loop

LOOP = churn_loop(
    'id = "customer"',
    'window = "auto"',
    'retrain_on = ["decay", "drift"]',
    'train = {{ flavor = "lightgbm", params = {{ {params} }} }}',
    'decay = {{ max_drop = 0.1 }}',
)


@pytest.mark.slow
def test_compare_two_replays_then_a_worse_trainer(
    ctloop_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_sample_spans(ctloop_home / "landing", spans=5, rows=600, change_at=3, shift_at=None)
    replays = {}
    for name, params in (("base", "n_estimators = 30"), ("again", "n_estimators = 30"),
                         ("worse", "n_estimators = 1, num_leaves = 2")):
        (ctloop_home / "ctloop.toml").write_text(LOOP.format(params=params))
        code, out, err = cli(capsys, "loop", "replay", "churn", "--json")
        assert code == 0, err
        replays[name] = ctloop_home / f"{name}.json"
        replays[name].write_text(out)
    code, out, err = cli(capsys, "loop", "compare", str(replays["base"]), str(replays["again"]),
                         "--json")
    assert code == 0, err
    same = json.loads(out)
    assert same["mean_change"] == 0 and same["worse_spans"] == [] and same["paired"] >= 3
    code, out, _ = cli(capsys, "loop", "compare", str(replays["base"]), str(replays["worse"]),
                       "--max-regression", "0.01")
    assert code == 1
    text = " ".join(out.split())
    assert "WORSE beyond --max-regression 0.01; worse spans: week-0" in text
    code, out, _ = cli(capsys, "loop", "compare", str(replays["base"]), str(replays["worse"]),
                       "--json", "--max-regression", "0.01")
    worse = json.loads(out)
    assert worse["regressed"] and worse["mean_change"] < -0.01
    assert worse["interval"][0] < worse["mean_change"] < worse["interval"][1]
    assert {s["span"] for s in worse["spans"] if s["worse"]} == set(worse["worse_spans"])


def _git(root: Path, *args: str) -> None:
    import subprocess

    subprocess.run(["git", "-C", str(root), "-c", "user.name=ci", "-c", "user.email=ci@x",
                    *args], check=True, capture_output=True)


@pytest.mark.slow
def test_replay_against_a_git_ref_judges_the_uncommitted_change(
    ctloop_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_sample_spans(ctloop_home / "landing", spans=5, rows=600, change_at=3, shift_at=None)
    (ctloop_home / ".gitignore").write_text("landing/\n.ctloop/\n")  # data is not in git
    (ctloop_home / "ctloop.toml").write_text(LOOP.format(params="n_estimators = 30"))
    _git(ctloop_home, "init", "-q")
    _git(ctloop_home, "add", "-A")
    _git(ctloop_home, "commit", "-qm", "the loop")
    code, out, err = cli(capsys, "loop", "replay", "churn", "--against", "HEAD", "--json")
    assert code == 0, err
    assert json.loads(out)["mean_change"] == 0  # the same declaration on the same data
    (ctloop_home / "ctloop.toml").write_text(
        LOOP.format(params="n_estimators = 1, num_leaves = 2"))
    code, out, _ = cli(capsys, "loop", "replay", "churn", "--against", "HEAD", "--json",
                       "--max-regression", "0.01")
    assert code == 1
    judged = json.loads(out)
    assert judged["regressed"] and judged["worse_spans"]
    code, _, err = cli(capsys, "loop", "replay", "churn", "--against", "no-such-ref")
    assert code == 2 and "Cannot read the git ref 'no-such-ref'" in err
