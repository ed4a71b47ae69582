"""The ``[ctloop.serving]`` table read into ``ServingConfig``: every key, and one clear
error for each kind of mistake."""

from __future__ import annotations

import pytest

from ctloop.core.errors import ConfigError
from ctloop.serving.config import ServingConfig, Split


def test_an_empty_table_gives_the_defaults() -> None:
    assert ServingConfig.from_table({}) == ServingConfig() == ServingConfig.from_table(None)


def test_every_key_is_read_with_its_type() -> None:
    config = ServingConfig.from_table({
        "models": "flights", "alias": "prod", "canary": "challenger=10%", "ab": "b=20%",
        "ab_key": "tailnum", "shadow": "shadow", "reload_interval": 2, "seed": "7",
        "prediction_log": "", "features": "defs.py", "feature_refs": {"m": ["v:f"]},
        "max_body_bytes": 1000, "max_json_depth": 4, "coerce_types": True,
        "allow_nulls": True, "missing_features": "flag", "batch_wait_ms": 1,
        "batch_rows": 64, "model_threads": 2, "compiled": True, "public": "metrics",
        "grpc_port": 0, "grpc_host": "0.0.0.0",
    })
    assert config.models == ("flights",) and config.alias == "prod"
    assert config.canary == Split("challenger", 0.1) and config.ab == Split("b", 0.2, "tailnum")
    assert (config.shadow, config.reload_interval, config.seed) == ("shadow", 2.0, 7)
    assert (config.prediction_log, config.features) == ("", "defs.py")
    assert config.feature_refs == {"m": ["v:f"]}
    assert (config.max_body_bytes, config.max_json_depth, config.batch_rows) == (1000, 4, 64)
    assert config.coerce_types and config.allow_nulls and config.compiled
    assert (config.missing_features, config.batch_wait_ms, config.model_threads) == (
        "flag", 1.0, 2)
    assert (config.public, config.grpc_port, config.grpc_host) == (("metrics",), 0, "0.0.0.0")


def test_overrides_win_and_none_overrides_are_ignored() -> None:
    config = ServingConfig.from_table({"alias": "champion", "models": ["a", "b"]},
                                      alias="challenger", models=None)
    assert (config.alias, config.models) == ("challenger", ("a", "b"))


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"nope": 1}, r"Unknown keys \['nope'\] in the \[ctloop.serving\] table"),
        ({"batch_rows": "many"}, "'batch_rows' must be a number. Got 'many'"),
        ({"reload_interval": [1]}, "'reload_interval' must be a number"),
        ({"compiled": "yes"}, "'compiled' must be true, false or \"auto\". Got 'yes'"),
        ({"missing_features": "drop"}, "must be \"reject\" or \"flag\"; got 'drop'"),
        ({"public": ["health", "admin"]}, r"Unknown public route group\(s\) \['admin'\]"),
        ({"models": 3}, "'models' must be a name or a list of names"),
        ({"feature_refs": {"m": "v:f"}}, "must map model names to ref lists"),
        ({"feature_refs": ["v:f"]}, "must map model names to ref lists"),
        ({"max_json_depth": 0}, "'max_json_depth' must be at least 1"),
        ({"grpc_port": 70000}, "'grpc_port' must be a port number"),
        ({"canary": "a=60%", "ab": "b=50%", "ab_key": "k"}, "add up to more than 100%"),
        ({"canary": "a"}, "--canary value 'a' must look like ALIAS=PCT"),
    ],
)
def test_each_mistake_is_one_config_error(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ServingConfig.from_table(table)


@pytest.mark.parametrize("value", [5.5, "5.5", float("inf"), "nan"])
def test_a_whole_number_setting_refuses_a_fraction_instead_of_truncating(value: object) -> None:
    with pytest.raises(ConfigError, match="'batch_rows' must be a whole number"):
        ServingConfig.from_table({"batch_rows": value})
    assert ServingConfig.from_table({"batch_rows": "64"}).batch_rows == 64
    assert ServingConfig.from_table({"batch_rows": 64.0}).batch_rows == 64


def test_compiled_defaults_to_auto_unless_the_environment_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ctloop.serving.config import COMPILED_ENV

    monkeypatch.delenv(COMPILED_ENV, raising=False)
    assert ServingConfig().compiled == "auto" == ServingConfig.from_table({}).compiled
    for text, value in (("false", False), ("TRUE", True), (" auto ", "auto")):
        monkeypatch.setenv(COMPILED_ENV, text)
        assert ServingConfig().compiled == value == ServingConfig.from_table({}).compiled
    monkeypatch.setenv(COMPILED_ENV, "false")  # the suite's opt-out; a table that says wins
    for setting in (True, False, "auto"):
        assert ServingConfig.from_table({"compiled": setting}).compiled == setting
    monkeypatch.setenv(COMPILED_ENV, "sometimes")
    with pytest.raises(ConfigError, match=f'{COMPILED_ENV} must be true, false or "auto". '
                                          "Got 'sometimes'"):
        ServingConfig.from_table({})
