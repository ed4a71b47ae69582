"""Compiled trees in the service: ``"auto"`` answers at once and swaps compiled code in,
``true`` compiles before serving, ``false`` (and CTLOOP_SERVING_COMPILED=false) never."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from ctloop.models.compiled import compiles_held, pending_compile
from ctloop.models.compiled_lleaves import available
from ctloop.models.flavors import LoadedModel
from ctloop.serving import ServingConfig
from ctloop.serving.config import COMPILED_ENV
from ctloop.testing.services import patience

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))


def _rows(frame: pd.DataFrame) -> list[dict]:
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def _served(client: TestClient) -> LoadedModel:
    deployment = client.app.state.serving.pool.deployments["flights"]  # type: ignore[attr-defined]
    return deployment.routes[0].model  # type: ignore[no-any-return]


def _answers_equal(client: TestClient, sample: pd.DataFrame, direct: np.ndarray) -> None:
    for rows in (sample.head(1), sample.head(2), sample):
        answer = client.post("/v1/models/flights:predict", json={"rows": _rows(rows)})
        assert answer.status_code == 200, answer.text
        np.testing.assert_allclose(
            answer.json()["predictions"], direct[: len(rows)], rtol=1e-9, atol=0
        )


def _counting(model: LoadedModel) -> list[int]:
    """Count the rows the compiled code scores from now on."""
    assert model.compiled is not None
    calls: list[int] = []
    native = model.compiled.predict

    def counting(matrix: Any) -> Any:
        calls.append(len(matrix))
        return native(matrix)

    model.compiled = replace(model.compiled, predict=counting)
    return calls


def test_auto_serves_at_once_then_swaps_in_compiled_trees_and_caches_them(
    three_versions, sample
) -> None:
    p = three_versions
    direct = p.registry.load("flights:1", p.artifacts).predict(sample)
    config = ServingConfig.from_table({"compiled": "auto", "reload_interval": 0})
    with ExitStack() as stack:
        with compiles_held():  # the compiler cannot finish before these answers
            client = stack.enter_context(TestClient(p.app("flights", config=config)))
            model = _served(client)
            job = pending_compile(model)
            assert job is not None and model.compiled is None
            _answers_equal(client, sample, direct)  # the library answers meanwhile
        assert job.join(patience(300)), "the background compile did not finish"
        assert model.compiled is not None and model.compiled.seconds > 0
        assert pending_compile(model) is None
        calls = _counting(model)
        _answers_equal(client, sample, direct)
    assert sum(calls) == 1 + 2 + len(sample)  # every row went through the compiled trees
    record = p.store.get_model_version("flights", 1)
    assert len(record.properties["compiled"]) == 1  # cached with the version

    with TestClient(p.app("flights", config=config)) as client:  # a restart: from the cache
        model = _served(client)
        assert model.compiled is not None and model.compiled.seconds == 0.0
        assert pending_compile(model) is None
        calls = _counting(model)
        _answers_equal(client, sample, direct)
    assert sum(calls) == 1 + 2 + len(sample)


def test_true_compiles_before_serving(three_versions, sample) -> None:
    p = three_versions
    direct = p.registry.load("flights:1", p.artifacts).predict(sample)
    config = ServingConfig.from_table({"compiled": True, "reload_interval": 0})
    with TestClient(p.app("flights", config=config)) as client:
        model = _served(client)
        assert model.compiled is not None and model.compiled.seconds > 0  # before any request
        calls = _counting(model)
        _answers_equal(client, sample, direct)
    assert sum(calls) == 1 + 2 + len(sample)


def test_auto_refuses_a_tampered_cached_object_and_compiles_again(
    three_versions, sample, caplog: pytest.LogCaptureFixture
) -> None:
    p = three_versions
    direct = p.registry.load("flights:1", p.artifacts).predict(sample)
    config = ServingConfig.from_table({"compiled": True, "reload_interval": 0})
    with TestClient(p.app("flights", config=config)):
        pass  # compiled and cached
    entry = next(iter(p.store.get_model_version("flights", 1).properties["compiled"].values()))
    path = p.artifacts.get(entry["uri"], entry["sha256"])
    path.chmod(0o644)
    path.write_bytes(path.read_bytes()[:-16] + b"\0" * 16)  # same size, other bytes

    auto = ServingConfig.from_table({"compiled": "auto", "reload_interval": 0})
    with caplog.at_level("WARNING", logger="ctloop.models.compiled"), ExitStack() as stack:
        with compiles_held():
            client = stack.enter_context(TestClient(p.app("flights", config=auto)))
            model = _served(client)
            job = pending_compile(model)
            assert job is not None and model.compiled is None  # never loaded
            assert "refused the compiled object of flights:1" in caplog.text
        assert job.join(patience(300)), "the background compile did not finish"
        assert model.compiled is not None and model.compiled.seconds > 0  # compiled afresh
        _answers_equal(client, sample, direct)
    assert p.artifacts.verify(entry["uri"], entry["sha256"])  # and the store healed


@pytest.mark.parametrize("how", ["config", "environment"])
def test_off_never_compiles(
    three_versions, sample, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    p = three_versions
    direct = p.registry.load("flights:1", p.artifacts).predict(sample)
    if how == "environment":  # the test suite's opt-out; ctloop.toml says nothing
        monkeypatch.setenv(COMPILED_ENV, "false")
        config = ServingConfig.from_table({"reload_interval": 0})
    else:
        monkeypatch.setenv(COMPILED_ENV, "true")  # the file wins over the environment
        config = ServingConfig.from_table({"compiled": False, "reload_interval": 0})
    assert config.compiled is False
    with TestClient(p.app("flights", config=config)) as client:
        model = _served(client)
        assert model.compiled is None and pending_compile(model) is None
        _answers_equal(client, sample, direct)
        assert model.compiled is None
    assert "compiled" not in p.store.get_model_version("flights", 1).properties
