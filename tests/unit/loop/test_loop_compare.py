"""``loop compare``: two replays of one loop side by side, a paired interval, a verdict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ctloop.core.errors import UserInputError
from ctloop.loop.compare import compare_replays, read_replay
from ctloop.testing.cli import cli, one_error_line


def _replay(lives: list[float | None], *, loop: str = "churn", metric: str = "roc_auc",
            promoted: dict[int, int] | None = None) -> dict[str, Any]:
    spans = []
    for i, live in enumerate(lives):
        spans.append({"span": f"week-{i:02d}", "status": "valid", "promoted": (promoted or {})
                      .get(i), "live": None if live is None else {metric: live, "n": 100},
                      "triggers": [{"name": "decay", "fired": i == 2}]})
    return {"loop": loop, "model": loop, "metric": metric, "spans": spans}


def test_identical_replays_are_not_worse() -> None:
    base = _replay([None, 0.8, 0.7, 0.75], promoted={0: 1, 2: 2})
    result = compare_replays(base, base)
    assert not result.regressed and result.mean_change == 0 and result.interval == (0.0, 0.0)
    assert result.paired == 3 and result.worse_spans == ()
    assert result.base_promotions == result.new_promotions == 2
    assert result.spans[2].base_fired == ("decay",)


def test_a_worse_change_names_its_spans_and_the_tolerance_decides() -> None:
    base, new = _replay([0.8, 0.8, 0.8, 0.8]), _replay([0.8, 0.79, 0.7, 0.795])
    result = compare_replays(base, new, max_regression=0.006)
    assert result.regressed and result.worse_spans == ("week-01", "week-02")
    assert result.mean_change == pytest.approx(-0.02875)
    assert result.interval is not None and result.interval[0] < -0.02875 < result.interval[1]
    assert "WORSE" in result.verdict() and "week-02" in result.verdict()
    assert not compare_replays(base, new, max_regression=0.05).regressed


def test_lower_is_better_metrics_count_a_rise_as_worse() -> None:
    base, new = _replay([0.3, 0.3], metric="log_loss"), _replay([0.4, 0.4], metric="log_loss")
    result = compare_replays(base, new)
    assert not result.higher_is_better and result.regressed
    assert result.mean_change == pytest.approx(-0.1)


def test_replays_of_different_loops_are_refused() -> None:
    with pytest.raises(UserInputError, match="different loops"):
        compare_replays(_replay([0.8]), _replay([0.8], loop="fraud"))
    with pytest.raises(UserInputError, match="different loops"):
        compare_replays(_replay([0.8]), _replay([0.8], metric="log_loss"))


def test_the_command_exits_1_when_worse_and_says_why_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = {}
    for name, replay in (("base", _replay([0.8, 0.8])), ("new", _replay([0.8, 0.6])),
                         ("other", _replay([0.8], loop="fraud"))):
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(replay))
    code, out, _ = cli(capsys, "loop", "compare", str(paths["base"]), str(paths["base"]))
    assert code == 0 and "Not worse" in out
    code, out, _ = cli(capsys, "loop", "compare", str(paths["base"]), str(paths["new"]))
    assert code == 1 and "worse spans: week-01" in " ".join(out.split())
    code, out, _ = cli(capsys, "loop", "compare", str(paths["base"]), str(paths["new"]),
                       "--json", "--max-regression", "0.5")
    assert code == 0 and json.loads(out)["worse_spans"] == []
    code, _, err = cli(capsys, "loop", "compare", str(paths["base"]), str(paths["other"]))
    assert code == 2 and "different loops" in one_error_line(err)
    (tmp_path / "junk.json").write_text("[1, 2]")
    code, _, err = cli(capsys, "loop", "compare", str(paths["base"]), str(tmp_path / "junk.json"))
    assert code == 2 and "is not the JSON of `ctloop loop replay" in one_error_line(err)
    with pytest.raises(UserInputError, match="No replay at"):
        read_replay(tmp_path / "missing.json")


def test_the_report_is_pinned_span_by_span() -> None:
    """The whole report of two replays that differ in every way a span can: pinned, so the
    function's split into steps keeps it to the digit."""
    base = _replay([0.8, 0.7, None, 0.75], promoted={0: 1})
    new = _replay([0.81, 0.6, 0.7, float("nan")], promoted={1: 2})
    new["spans"][0]["status"] = "quarantined"
    del base["spans"][3]["status"]
    new["spans"].append({"span": "extra", "live": {"roc_auc": 0.9}})
    report = compare_replays(base, new, max_regression=0.01).to_json()
    rows = [(s["span"], s["base_live"], s["new_live"], s["change"], s["base_promoted"],
             s["new_promoted"], s["base_fired"], s["new_fired"], s["base_status"],
             s["new_status"], s["worse"]) for s in report.pop("spans")]
    assert rows == [
        ("week-00", 0.8, 0.81, pytest.approx(0.01), 1, None, (), (), "valid", "quarantined",
         False),
        ("week-01", 0.7, 0.6, pytest.approx(-0.1), None, 2, (), (), "valid", "valid", True),
        ("week-02", None, 0.7, None, None, None, ("decay",), ("decay",), "valid", "valid",
         False),
        ("week-03", 0.75, None, None, None, None, (), (), "missing", "valid", False),
        ("extra", None, 0.9, None, None, None, (), (), "missing", "missing", False),
    ]
    interval = report.pop("interval")
    assert interval == (pytest.approx(-0.7438412604896081), pytest.approx(0.653841260489608))
    assert report == {
        "loop": "churn", "metric": "roc_auc", "higher_is_better": True, "paired": 2,
        "base_mean": pytest.approx(0.75), "new_mean": pytest.approx(0.705),
        "mean_change": pytest.approx(-0.045), "confidence": 0.95, "max_regression": 0.01,
        "regressed": True, "worse_spans": ("week-01",), "base_promotions": 1,
        "new_promotions": 1,
    }
