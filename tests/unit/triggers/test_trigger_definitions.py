"""Trigger definitions from ctloop.toml and Python: validation with one clear error each."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctloop.core.errors import ConfigError, NotFound, UserInputError
from ctloop.core.settings import load_settings
from ctloop.triggers.definitions import (
    CronTrigger,
    DegradationTrigger,
    DriftTrigger,
    ManualTrigger,
    NewDataTrigger,
    fill_params,
    load_triggers,
    make_trigger,
    parse_duration,
    parse_trigger,
)

PIPES = Path(__file__).resolve().parents[2] / "integration" / "triggers_pipelines.py"


def test_triggers_from_ctloop_toml(ctloop_home: Path) -> None:
    (ctloop_home / "pipes.py").write_text(PIPES.read_text())
    (ctloop_home / "ctloop.toml").write_text(
        """
[ctloop.triggers.landing]
pipeline = "pipes.py:ingest"
params = { path = "{path}" }
new_data = "landing/*.parquet"

[ctloop.triggers.nightly]
pipeline = "pipes.py:hello"
cron = "0 3 * * *"
cooldown = "1h"

[ctloop.triggers.decay]
pipeline = "pipes.py:hello"
degradation = { model = "delays", metric = "roc_auc", max_drop = 0.03, window = "7d" }

[ctloop.triggers.drifted]
pipeline = "pipes.py:hello"
drift = { model = "delays", reference = "data/train.parquet", share = 0.4 }

[ctloop.triggers.by_hand]
pipeline = "pipes.py:hello"
manual = true
"""
    )
    found = {t.name: t for t in load_triggers(load_settings())}
    assert [t.kind for t in found.values()] == ["new_data", "cron", "degradation", "drift",
                                                "manual"]
    assert found["landing"].pipeline == f"{ctloop_home / 'pipes.py'}:ingest"
    landing, decay, drifted = found["landing"], found["decay"], found["drifted"]
    assert isinstance(landing, NewDataTrigger)
    assert landing.pattern == str(ctloop_home / "landing" / "*.parquet")
    assert found["nightly"].cooldown == 3600
    assert isinstance(decay, DegradationTrigger) and isinstance(drifted, DriftTrigger)
    assert decay.window == 7 * 86400 and (decay.metric, decay.max_drop) == ("roc_auc", 0.03)
    assert drifted.reference == str(ctloop_home / "data/train.parquet")
    assert (drifted.share, drifted.min_rows, drifted.columns) == (0.4, 100, None)
    assert drifted.describe().startswith("drift {model=delays")
    assert found["by_hand"].describe() == "manual"
    assert found["nightly"].describe() == "cron 0 3 * * *"


def test_each_kind_is_its_own_record() -> None:
    """The kind names the record: its condition is typed fields, not a dict."""
    cron = _make(cron="*/5 * * * *")
    assert isinstance(cron, CronTrigger) and (cron.kind, cron.cron) == ("cron", "*/5 * * * *")
    decay = _make(degradation={"model": "m", "min_labels": "50", "version": 3,
                               "baseline": 0.8})
    assert isinstance(decay, DegradationTrigger)
    assert (decay.min_labels, decay.version, decay.baseline, decay.window) == (50, 3, 0.8, None)
    assert decay.describe() == (
        "degradation {model=m, metric=roc_auc, max_drop=0.05, baseline=0.8, min_labels=50, "
        "version=3}")
    drift = _make(drift={"model": "m", "reference": "/r.parquet", "columns": ["a", "b"],
                         "window": "1h"})
    assert isinstance(drift, DriftTrigger) and drift.columns == ("a", "b")
    assert drift.window == 3600
    assert isinstance(_make(manual=True), ManualTrigger)


def test_monitor_settings_of_the_wrong_type_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"drift\.share must be a number\. Got 'half'"):
        _make(drift={"model": "m", "reference": "x", "share": "half"})
    with pytest.raises(ConfigError, match=r"degradation\.min_labels must be a number"):
        _make(degradation={"model": "m", "min_labels": True})
    with pytest.raises(ConfigError, match=r"drift\.columns must be a list"):
        _make(drift={"model": "m", "reference": "x", "columns": "a"})


def _make(**kw):
    return make_trigger("t", f"{PIPES}:hello", **kw)


def test_unknown_trigger_kind() -> None:
    with pytest.raises(ConfigError, match=r"unknown settings \['sensor'\].*manual, cron"):
        _make(sensor="x")


def test_two_conditions() -> None:
    with pytest.raises(ConfigError, match="has 2 conditions \\(manual, cron\\); a trigger has"):
        _make(manual=True, cron="* * * * *")


def test_no_condition() -> None:
    with pytest.raises(ConfigError, match="has no condition"):
        _make()


@pytest.mark.parametrize("expr", ["*/5 * * *", "61 * * * *", "every day", "  "])
def test_bad_cron(expr: str) -> None:
    with pytest.raises((UserInputError, ConfigError), match=r"not a valid cron expression"):
        _make(cron=expr)


def test_missing_pipeline_file(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"pipeline file 'nope\.py' does not exist"):
        make_trigger("t", "nope.py:train", manual=True, root=tmp_path)


def test_monitor_conditions_need_their_settings() -> None:
    with pytest.raises(ConfigError, match="needs model"):
        _make(degradation={"metric": "roc_auc"})
    with pytest.raises(ConfigError, match="unknown metric 'auc'"):
        _make(degradation={"model": "m", "metric": "auc"})
    with pytest.raises(ConfigError, match="needs reference"):
        _make(drift={"model": "m"})
    with pytest.raises(ConfigError, match=r"unknown settings \['treshold'\]"):
        _make(drift={"model": "m", "reference": "x", "treshold": 1})


def test_durations() -> None:
    assert parse_duration("30m", "x") == 1800
    assert parse_duration(90, "x") == 90
    assert parse_duration("2w", "x") == 14 * 86400
    with pytest.raises(UserInputError, match="duration like"):
        parse_duration("soon", "cooldown")


def test_placeholders_are_filled_from_the_firing() -> None:
    trigger = _make(new_data="landing/*.csv",
                    params={"path": "{path}", "tag": "file {name}", "n": 3})
    out = fill_params(trigger, {"path": "/a/b.csv", "name": "b.csv"})
    assert out == {"path": "/a/b.csv", "tag": "file b.csv", "n": 3}
    with pytest.raises(UserInputError, match=r"Placeholders available.*\{name\}, \{path\}"):
        fill_params(make_trigger("t", f"{PIPES}:hello", new_data="x",
                                 params={"p": "{when}"}), {"path": "/a", "name": "a"})


def test_python_pipeline_objects_are_accepted() -> None:
    from ctloop.core.importing import import_file

    module = import_file(PIPES, "triggers_pipelines_for_defs")
    trigger = parse_trigger("t", {"pipeline": module.hello, "manual": True})
    assert trigger.pipeline_ref.endswith(":hello")
