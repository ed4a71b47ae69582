"""Reading loop declarations: defaults, every key checked, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctloop.core.errors import ConfigError, NotFound
from ctloop.loop.declaration import LoopSpec, Window, get_loop, parse_loop

BASE = {"model": "m", "data": "landing/*.parquet", "event_time": "ts", "label": "y"}


def test_defaults_and_paths(tmp_path: Path) -> None:
    spec = parse_loop("churn", BASE, root=tmp_path)
    assert isinstance(spec, LoopSpec)
    assert spec.data == str(tmp_path.resolve() / "landing/*.parquet")
    assert spec.window == Window(spans=3, text="3 spans") or spec.window.spans == 3
    assert spec.retrain_on == ("new_span",)
    # The default gate never promotes an equal candidate.
    assert spec.gate.to_gate("roc_auc")["changes"]["roc_auc"] > 0


def test_every_key(tmp_path: Path) -> None:
    (tmp_path / "trainer.py").write_text("x = 1\n")
    spec = parse_loop("churn", {
        **BASE, "id": "row", "schema": "schema.yaml", "window": "60d", "holdout": 0.3,
        "metric": "log_loss", "gate": {"min_improvement": 0.01, "floor": 0.6},
        "retrain_on": ["decay", "drift"], "schedule": "0 3 * * 1", "cooldown": "7d",
        "decay": {"max_drop": 0.05, "baseline": "best_live"},
        "drift": {"share": 0.3, "columns": ["a"]}, "canary": {"share": 0.2, "min_labels": 50},
        "train": "trainer.py:fit",
    }, root=tmp_path)
    assert spec.window.seconds == 60 * 86400
    assert spec.retrain_on == ("decay", "drift", "schedule")
    assert spec.cooldown == 7 * 86400
    assert spec.train.component == f"{tmp_path.resolve() / 'trainer.py'}:fit"
    assert spec.canary is not None and spec.canary.share == 0.2
    assert spec.gate.to_gate("log_loss") == {"changes": {"log_loss": 0.01}, "slices": [],
                                             "floors": {"log_loss": 0.6}}
    assert parse_loop("c", {**BASE, "window": "auto"}).window.auto
    assert parse_loop("c", {**BASE, "window": "5 spans"}).window.spans == 5


@pytest.mark.parametrize(("table", "message"), [
    ({**BASE, "windw": "3 spans"}, "Loop 'churn': unknown key 'windw'; did you mean 'window'?"),
    ({**BASE, "train": {"flavour": "lightgbm"}},
     "Loop 'churn': train: unknown key 'flavour'; did you mean 'flavor'?"),
    ({**BASE, "decay": {"max_dorp": 0.1}}, "unknown key 'max_dorp'; did you mean 'max_drop'?"),
    ({**BASE, "retrain_on": ["dirft"]}, "unknown signal 'dirft'; did you mean 'drift'?"),
    ({**BASE, "train": {"flavor": "lightgmb"}}, "did you mean 'lightgbm'?"),
    ({**BASE, "window": "three"}, "key 'window' must be"),
    ({**BASE, "holdout": 1.5}, "key 'holdout' must be a share"),
    ({k: v for k, v in BASE.items() if k != "label"}, "key 'label' is required"),
    ({**BASE, "metric": "roc_aux"}, "did you mean 'roc_auc'?"),
    ({**BASE, "retrain_on": ["schedule"]}, "key 'schedule' (a cron expression) is missing"),
])
def test_bad_declarations_name_the_loop_and_key(table: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_loop("churn", table)
    assert message in err.value.one_line()
    assert "\n" not in err.value.one_line()


def test_unknown_loop_name_lists_the_loops(ctloop_home: Path) -> None:
    (ctloop_home / "ctloop.toml").write_text(
        '[ctloop.loops.churn]\nmodel = "m"\ndata = "d/*.csv"\nevent_time = "ts"\nlabel = "y"\n')
    assert get_loop("churn").model == "m"
    with pytest.raises(NotFound, match=r"No loop named 'chrun' in ctloop\.toml\. Did you mean "
                                       "'churn'"):
        get_loop("chrun")


def test_task_declared_or_read_off_the_label_chooses_and_checks_the_metric() -> None:
    import pandas as pd

    from ctloop.loop.declaration import resolve_task

    declared = parse_loop("d", {**BASE, "task": "regression"})
    assert (declared.task, declared.metric) == ("regression", "rmse")
    assert parse_loop("d", {**BASE, "train": {"task": "multiclass"}}).metric == "accuracy"
    assert parse_loop("d", {**BASE, "task": "multiclass", "metric": "macro_f1"}).metric == \
        "macro_f1"
    plain = parse_loop("p", BASE)
    assert plain.task is None and plain.metric == "roc_auc" and not plain.metric_given
    delays = pd.Series([3.5, -2.0, 41.0, 0.0, 12.25] * 10)
    assert (resolve_task(plain, delays).task, resolve_task(plain, delays).metric) == (
        "regression", "rmse")
    colours = pd.Series(["red", "green", "blue"] * 5)
    assert resolve_task(plain, colours).metric == "accuracy"
    binary = resolve_task(plain, pd.Series([0, 1, 1, 0]))
    assert (binary.task, binary.metric) == ("binary", "roc_auc")
    assert resolve_task(binary, delays) is binary  # resolved once: idempotent
    auc = parse_loop("a", {**BASE, "metric": "roc_auc"})
    with pytest.raises(ConfigError) as err:
        resolve_task(auc, delays)
    assert err.value.one_line().endswith(
        "Loop 'a': key 'metric' 'roc_auc' does not apply to a regression task; use one of "
        "rmse, mae, r2, mape. (the task 'regression' is read off the label 'y'; declare key "
        "'task' if that is wrong)")


@pytest.mark.parametrize(("table", "message"), [
    ({**BASE, "task": "regresion"},
     "Loop 'churn': key 'task' must be one of binary, multiclass, regression; got "
     "'regresion'."),
    ({**BASE, "task": "regression", "metric": "roc_auc"},
     "Loop 'churn': key 'metric' 'roc_auc' does not apply to a regression task"),
    ({**BASE, "task": "binary", "train": {"task": "regression"}},
     "Loop 'churn': key 'task' is 'binary' but 'train.task' is 'regression'; declare one."),
    ({**BASE, "train": {"task": "text"}}, "key 'train.task' must be one of"),
])
def test_bad_tasks_are_one_line(table: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_loop("churn", table)
    assert message in err.value.one_line()


def test_a_loop_command_without_ctloop_toml_says_so(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from ctloop.core.settings import Settings

    monkeypatch.chdir(tmp_path)
    with pytest.raises(NotFound) as err:
        get_loop("shop", Settings(home=tmp_path / ".ctloop"))
    line = err.value.one_line()
    assert f"No loop named 'shop': there is no ctloop.toml in {tmp_path.resolve()}" in line
    assert "ctloop init NAME --template loop" in line
    assert not (tmp_path / ".ctloop").exists()


def test_train_nullable_names_columns_that_may_be_missing() -> None:
    spec = parse_loop("c", {**BASE, "train": {"nullable": ["wind_gust", "temp"]}})
    assert spec.train.nullable == ("wind_gust", "temp")
    assert parse_loop("c", BASE).train.nullable == ()
    for bad in ("wind_gust", [1], [""]):
        with pytest.raises(ConfigError, match=r"key 'train\.nullable' must be a list of column"):
            parse_loop("c", {**BASE, "train": {"nullable": bad}})
