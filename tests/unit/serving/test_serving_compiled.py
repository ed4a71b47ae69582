"""`compiled = true`: the service answers through compiled trees, equal to the library."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from ctloop.models.compiled_lleaves import available
from ctloop.serving import ServingConfig

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))


def _rows(frame: pd.DataFrame) -> list[dict]:
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def test_served_answers_come_from_compiled_trees_equal_to_the_library(
    three_versions, sample
) -> None:
    p = three_versions
    direct = p.registry.load("flights:1", p.artifacts).predict(sample)
    config = ServingConfig.from_table({"compiled": True, "reload_interval": 0})
    with TestClient(p.app("flights", config=config)) as client:
        deployment = client.app.state.serving.pool.deployments["flights"]  # type: ignore[attr-defined]
        model = deployment.routes[0].model
        deadline = time.monotonic() + 300
        while model.compiled is None and time.monotonic() < deadline:
            time.sleep(0.2)  # compiled in the background; the library answers meanwhile
        assert model.compiled is not None, "the model was not compiled"
        calls: list[int] = []
        native = model.compiled.predict

        def counting(matrix: Any) -> Any:
            calls.append(len(matrix))
            return native(matrix)

        model.compiled = replace(model.compiled, predict=counting)
        for rows in (sample.head(1), sample.head(2), sample):
            answer = client.post("/v1/models/flights:predict", json={"rows": _rows(rows)})
            assert answer.status_code == 200, answer.text
            np.testing.assert_allclose(
                answer.json()["predictions"], direct[: len(rows)], rtol=1e-9, atol=0
            )
    assert sum(calls) == 1 + 2 + len(sample)  # every row went through the compiled trees
    record = p.store.get_model_version("flights", 1)
    assert len(record.properties["compiled"]) == 1  # cached with the version
