"""Each kind of anomaly, severities and overrides, and the ValidationFailed message."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctloop.core.errors import ValidationFailed
from ctloop.data.schema import infer_schema
from ctloop.data.skew import validate
from ctloop.data.stats import compute_statistics


def train() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 2000
    return pd.DataFrame(
        {
            "distance": rng.integers(100, 3000, n),
            "delay": rng.normal(5, 20, n),
            "carrier": rng.choice(["AA", "DL", "UA"], n),
            "note": rng.choice(np.array(["x", None], dtype=object), n, p=[0.9, 0.1]),
        }
    )


@pytest.fixture(scope="module")
def schema():
    return infer_schema(compute_statistics(train()))


def test_same_data_has_no_anomaly(schema):
    result = validate(train(), schema)
    assert result.ok and result.anomalies == []
    result.raise_for_errors()


def test_missing_and_unexpected_column_suggest_a_rename(schema):
    result = validate(train().rename(columns={"carrier": "airline"}), schema)
    assert result.kinds("carrier") == {"missing_column"}
    assert result.kinds("airline") == {"unexpected_column"}
    missing = next(a for a in result.anomalies if a.kind == "missing_column")
    assert missing.severity == "error" and "renamed to 'airline'" in missing.description
    assert next(a for a in result.anomalies if a.column == "airline").severity == "warning"


def test_type_change(schema):
    df = train().assign(distance=lambda d: d["distance"].astype(str))
    (anomaly,) = validate(df, schema).anomalies
    assert (anomaly.column, anomaly.kind, anomaly.expected) == (
        "distance",
        "type_mismatch",
        "integer",
    )
    assert anomaly.found.startswith("string")


def test_integers_where_floats_are_expected_are_fine(schema):
    df = train().assign(delay=lambda d: d["delay"].round().astype("int64"))
    assert validate(df, schema).ok


def test_out_of_range_names_the_negative_values(schema):
    df = train()
    df.loc[:4, "distance"] = -50
    (anomaly,) = validate(df, schema).anomalies
    assert anomaly.kind == "out_of_range" and anomaly.severity == "error"
    assert "5 negative value(s)" in anomaly.found


def test_unseen_category_names_the_value_and_count(schema):
    df = train()
    df.loc[:2, "carrier"] = "ZZ"
    (anomaly,) = validate(df, schema).anomalies
    assert anomaly.kind == "unseen_category" and "'ZZ' (3 rows)" in anomaly.found


def test_min_domain_mass_tolerates_a_few_new_values(schema):
    import copy

    relaxed = copy.deepcopy(schema)
    relaxed.columns["carrier"].min_domain_mass = 0.99  # up to 1% new values: a warning
    few = train()
    few.loc[:2, "carrier"] = "ZZ"  # 3 of 2000 rows
    (anomaly,) = validate(few, relaxed).anomalies
    assert anomaly.severity == "warning" and "min_domain_mass" in anomaly.description
    many = train()
    many.loc[:99, "carrier"] = "ZZ"  # 5% of rows: still an error
    (anomaly,) = validate(many, relaxed).anomalies
    assert anomaly.severity == "error"
    text = relaxed.to_yaml()
    assert "min_domain_mass: 0.99" in text
    import yaml

    from ctloop.data.schema import Schema

    assert Schema.from_dict(yaml.safe_load(text)).columns["carrier"].min_domain_mass == 0.99
    with pytest.raises(Exception, match="min_domain_mass must be in"):
        bad = yaml.safe_load(text)
        bad["columns"]["carrier"]["min_domain_mass"] = 2
        Schema.from_dict(bad)


def test_too_many_missing_values(schema):
    df = train()
    df.loc[: len(df) // 2, "note"] = None
    (anomaly,) = validate(df, schema).anomalies
    assert anomaly.kind == "missing_values" and anomaly.column == "note"


def test_infinity_is_an_anomaly_and_nan_counts_as_missing(schema):
    df = train()
    df.loc[0, "delay"] = np.inf
    df.loc[1, "delay"] = np.nan
    result = validate(df, schema)
    assert result.kinds("delay") == {"non_finite", "missing_values"}


def test_severity_overrides_per_column_and_per_kind(schema):
    df = train()
    df.loc[:2, "carrier"] = "ZZ"
    df.loc[:4, "distance"] = -50
    schema = infer_schema(compute_statistics(train()))
    schema.columns["distance"].severity = {"out_of_range": "warning"}
    schema.severity = {"unseen_category": "ignore"}
    result = validate(df, schema)
    assert [(a.kind, a.severity) for a in result.anomalies] == [("out_of_range", "warning")]
    assert result.ok


def test_validation_failed_lists_every_error(schema):
    df = train().rename(columns={"carrier": "airline"})
    df.loc[:4, "distance"] = -50
    with pytest.raises(ValidationFailed) as info:
        validate(df, schema).raise_for_errors()
    assert "carrier" in str(info.value) and "distance" in str(info.value)
    assert "2 error(s)" in str(info.value)


def test_reference_adds_drift_warnings(schema):
    current = train().assign(delay=lambda d: d["delay"] + 30)
    result = validate(current, schema, reference=train())
    assert result.ok and result.drift is not None
    assert [(a.column, a.kind, a.severity) for a in result.anomalies] == [
        ("delay", "drift", "warning")
    ]
    assert result.drift["delay"].drifted and not result.drift["carrier"].drifted
