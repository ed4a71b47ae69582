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
