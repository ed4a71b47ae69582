"""Canary, sticky A/B and shadow routing; the serving config table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from ctloop.core.errors import ConfigError
from ctloop.requestlog.log import open_prediction_log
from ctloop.serving import Router, ServingConfig, Split, bucket, parse_split


def test_bucket_is_uniform_stable_and_salted() -> None:
    keys = [f"id-{i}" for i in range(20000)]
    a, b = bucket(keys, seed=0), bucket(keys, seed=0)
    assert np.array_equal(a, b) and ((a >= 0) & (a < 1)).all()
    assert abs((a < 0.1).mean() - 0.1) < 0.01
    assert not np.array_equal(a, bucket(keys, seed=1))


def test_router_splits_are_deterministic() -> None:
    frame = pd.DataFrame({"tailnum": [f"N{i % 300}" for i in range(6000)]})
    ids = [f"r{i}" for i in range(6000)]
    router = Router("champion", (("challenger", Split("challenger", 0.3, "tailnum")),), seed=7)
    routes = router.assign(frame, ids)
    assert np.array_equal(routes, router.assign(frame, ids))
    per_key = pd.Series(routes).groupby(frame["tailnum"]).nunique()
    assert (per_key == 1).all()  # sticky: one route per tail number
    frame.loc[0, "tailnum"] = None
    assert router.assign(frame, ids)[0] == 0  # null keys stay on the primary


def test_config_table_and_options() -> None:
    assert parse_split("challenger=10%") == ("challenger", 0.1)
    assert parse_split("challenger=0.25") == ("challenger", 0.25)
    assert parse_split("v3=5") == ("v3", 0.05)
    config = ServingConfig.from_table(
        {"models": "flights", "canary": "challenger=10%", "reload_interval": "2"},
        ab="v3=20%",
        ab_key="tailnum",
    )
    assert config.models == ("flights",) and config.reload_interval == 2.0
    assert config.ab == Split("v3", 0.2, "tailnum")
    for bad, match in [
        ({"canary": "challenger"}, "ALIAS=PCT"),
        ({"canary": "challenger=150%"}, "between"),
        ({"ab": "challenger=50%"}, "ab_key"),
        ({"ab_key": "tailnum"}, "no A/B split"),
        ({"canari": "x=1%"}, "Unknown keys"),
        ({"seed": "abc"}, "must be a number"),
    ]:
        with pytest.raises(ConfigError, match=match):
            ServingConfig.from_table(bad)


def test_canary_share_is_within_tolerance(three_versions, sample) -> None:
    config = ServingConfig.from_table({"canary": "challenger=20%"})
    rows = pd.concat([sample] * 10, ignore_index=True)  # 2000 rows
    with TestClient(three_versions.app("flights", config=config)) as client:
        body = client.post(
            "/v1/models/flights:predict",
            json={"columns": {c: rows[c].tolist() for c in ["origin", "hour", "distance"]}},
        ).json()
    routes = np.array(body["routes"])
    assert abs((routes == "challenger").mean() - 0.2) < 0.03
    assert set(np.array(body["versions"])[routes == "challenger"]) == {2}
    champion = three_versions.registry.load("flights:1", three_versions.artifacts)
    challenger = three_versions.registry.load("flights:2", three_versions.artifacts)
    expected = np.where(routes == "challenger", challenger.predict(rows), champion.predict(rows))
    np.testing.assert_allclose(body["predictions"], expected, atol=1e-12)


def test_ab_is_sticky_by_key_across_requests(three_versions, sample) -> None:
    config = ServingConfig.from_table({"ab": "challenger=50%", "ab_key": "tailnum"})
    seen: dict[str, set[str]] = {}
    with TestClient(three_versions.app("flights", config=config)) as client:
        for chunk in (sample.iloc[:100], sample.iloc[50:150], sample.iloc[100:]):
            body = client.post(
                "/v1/models/flights:predict",
                json={"rows": chunk.astype(object).where(chunk.notna(), None).to_dict("records")},
            ).json()
            for tail, route in zip(chunk["tailnum"], body["routes"], strict=True):
                seen.setdefault(str(tail), set()).add(route)
        missing_key = client.post(
            "/v1/models/flights:predict",
            json={"rows": [{"origin": "JFK", "hour": 5, "distance": 90}]},
        )
    assert all(len(r) == 1 for r in seen.values())
    assert {"champion", "challenger"} == set().union(*seen.values())
    assert missing_key.status_code == 422 and "tailnum" in missing_key.json()["detail"]


def test_shadow_is_logged_but_never_returned(three_versions, sample, tmp_path) -> None:
    config = ServingConfig.from_table({"shadow": "3"})
    log = open_prediction_log(tmp_path / "log")
    app = three_versions.app("flights", config=config, prediction_log=log)
    with TestClient(app) as client:
        body = client.post(
            "/v1/models/flights:predict",
            json={
                "rows": sample.head(40).to_dict("records"),
                "request_ids": [f"q{i}" for i in range(40)],
            },
        ).json()
        app.state.serving.logger.flush()
        frame = log.read(model_name="flights", include_unserved=True)
    assert set(body["routes"]) == {"champion"} and set(body["versions"]) == {1}
    shadow = frame[~frame["served"]]
    served = frame[frame["served"]]
    assert len(shadow) == 40 == len(served)
    assert set(shadow["route"]) == {"shadow"} and set(shadow["model_version"]) == {3}
    v3 = three_versions.registry.load("flights:3", three_versions.artifacts)
    by_id = shadow.set_index("request_id").loc[[f"q{i}" for i in range(40)], "prediction"]
    np.testing.assert_allclose(by_id.to_numpy(), v3.predict(sample.head(40)), atol=1e-12)
    assert not np.allclose(by_id.to_numpy(), body["predictions"])
