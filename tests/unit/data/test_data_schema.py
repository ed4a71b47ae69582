"""Schema inference, YAML round trip and clear errors for bad schema files."""

from __future__ import annotations

import pandas as pd
import pytest

from ctloop.core.errors import UserInputError
from ctloop.data.schema import Schema, infer_schema
from ctloop.data.stats import compute_statistics


def sample() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "n": [1, 5, 3, 9],
            "x": [-1.5, 0.5, None, 2.0],
            "c": ["a", "b", "a", "c"],
            "ok": [True, False, True, True],
        }
    )


def test_inferred_schema_describes_the_data():
    schema = infer_schema(compute_statistics(sample()))
    n, x, c, ok = (schema.columns[k] for k in ("n", "x", "c", "ok"))
    assert n.type == "integer" and n.min == 0 and n.max == 17  # non-negative: never below 0
    assert x.type == "float" and x.min is not None and x.max is not None
    assert x.min < -1.5 and x.max > 2.0
    assert x.max_missing == 1.0  # one missing value in four rows says little: anything goes
    assert n.max_missing == 0.0 and n.required
    assert c.domain == ["a", "b", "c"] and ok.domain == ["false", "true"]


def test_yaml_round_trip(tmp_path):
    schema = infer_schema(compute_statistics(sample()))
    schema.columns["x"].severity = {"out_of_range": "warning"}
    schema.columns["x"].drift = {"method": "psi", "threshold": 0.3}
    schema.severity = {"unexpected_column": "ignore"}
    loaded = Schema.load(schema.save(tmp_path / "schema.yaml"))
    assert loaded.to_dict() == schema.to_dict()
    assert loaded.severity_of("out_of_range", "x") == "warning"
    assert loaded.severity_of("out_of_range", "n") == "error"
    assert loaded.severity_of("unexpected_column") == "ignore"


def test_domain_is_left_out_for_high_cardinality():
    df = pd.DataFrame({"id": [f"u{i}" for i in range(500)]})
    assert infer_schema(compute_statistics(df)).columns["id"].domain is None


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("columns: [a, b]", "'columns' mapping"),
        ("columns: {a: {type: text}}", "type must be one of"),
        ("columns: {a: {type: float, max_missing: 2}}", "max_missing must be in"),
        ("columns: {a: {type: float, colour: red}}", "unknown keys"),
        ("columns: {a: {type: float, severity: {bogus: error}}}", "unknown anomaly kind"),
        ("columns: {a: {type: float, severity: {out_of_range: fatal}}}", "severity of"),
        ("columns: {a: {type: float, min: low}}", "min must be a number"),
        ("columns: {a: {type: float}}\ndrift_share: 3", "drift_share"),
        ("columns: {a: [unclosed", "not valid YAML"),
    ],
)
def test_bad_schema_files_say_what_is_wrong(tmp_path, text, match):
    path = tmp_path / "schema.yaml"
    path.write_text(text)
    with pytest.raises(UserInputError, match=match):
        Schema.load(path)


def test_missing_schema_file_says_how_to_make_one(tmp_path):
    with pytest.raises(UserInputError, match="ctloop data schema"):
        Schema.load(tmp_path / "nope.yaml")
