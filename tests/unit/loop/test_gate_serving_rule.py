"""A loop's ``gate.serving`` rule reaches the gate and a bad one fails when the loop is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctloop.core.errors import ConfigError
from ctloop.core.settings import load_settings
from ctloop.loop.declaration import load_loops
from ctloop.models import GateConfig
from ctloop.testing.loops import churn_loop


def _loop(serving: str) -> str:
    return churn_loop(f"gate = {{ serving = {serving} }}")


def test_the_serving_rule_goes_to_the_gate(ctloop_home: Path) -> None:
    rule = "{ p99_ms = 50, concurrency = 8 }"
    (ctloop_home / "ctloop.toml").write_text(_loop(rule))
    spec = load_loops(load_settings())["churn"]
    gate = spec.gate.to_gate("roc_auc")
    assert gate["serving"] == {"p99_ms": 50, "concurrency": 8}
    assert GateConfig.from_dict(gate).serving == {"p99_ms": 50, "concurrency": 8}


def test_a_bad_serving_rule_is_one_line_naming_the_loop(ctloop_home: Path) -> None:
    (ctloop_home / "ctloop.toml").write_text(_loop("{ p99 = 50 }"))
    with pytest.raises(ConfigError, match=r"Loop 'churn'.*gate\.serving.*Unknown key"):
        load_loops(load_settings())
