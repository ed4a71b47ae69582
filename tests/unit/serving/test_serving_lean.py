"""The lean predict path answers and refuses exactly as the full checks do.

Finite float64 tensors skip ``Signature.conform``'s per-column checks for one
vectorised pass (``scoring.predict._plain_numbers``); predict POSTs are answered
in front of FastAPI's stack (``serving.direct.DirectApp``). Both must keep every
answer and every refusal.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ctloop.core.errors import UserInputError
from ctloop.examples.flights.data import flights
from ctloop.models import fit_model, load_model
from ctloop.serving.scoring.predict import _plain_numbers

NUMERIC = ["hour", "distance", "dep_delay"]  # integer, integer, float with nulls


@pytest.fixture(scope="module")
def numeric_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = flights([1]).head(3000).reset_index(drop=True)
    data.loc[::60, "dep_delay"] = np.nan  # a float column that may be missing
    folder = tmp_path_factory.mktemp("lean") / "numeric"
    fit_model(data, label="delayed", features=NUMERIC, algorithm="lightgbm",
              params={"n_estimators": 10, "n_jobs": 1}).save(folder)
    return folder


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    frame = flights([2]).head(100)[NUMERIC].astype("float64")
    return frame.fillna({"dep_delay": 0.0}).reset_index(drop=True)


def _v2(matrix: np.ndarray) -> dict[str, object]:
    return {"inputs": [{"name": "input-0", "shape": list(matrix.shape), "datatype": "FP64",
                        "data": matrix.ravel().tolist()}]}


def _binary_v2(matrix: np.ndarray) -> tuple[bytes, dict[str, str]]:
    """The same tensor with the binary extension (the only way JSON can carry NaN/inf)."""
    raw = np.ascontiguousarray(matrix, dtype="<f8").tobytes()
    header = json.dumps({"inputs": [{"name": "input-0", "shape": list(matrix.shape),
                                     "datatype": "FP64",
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()
    return header + raw, {"Inference-Header-Content-Length": str(len(header)),
                          "Content-Type": "application/octet-stream"}


def test_plain_numbers_equals_conform_or_defers_to_it(numeric_model: Path) -> None:
    signature = load_model(numeric_model).signature
    assert [s.nullable for s in signature.inputs] == [False, False, True]
    rng = np.random.default_rng(7)
    cases = {
        "whole": np.array([[8.0, 1000.0, -3.5], [23.0, 17.0, 12.25]]),
        "one row": np.array([[5.0, 200.0, 0.0]]),
        "fraction in an integer column": np.array([[8.5, 1000.0, 1.0]]),
        "NaN in a nullable float": np.array([[8.0, 1000.0, np.nan]]),
        "NaN in an integer column": np.array([[np.nan, 1000.0, 1.0]]),
        "infinity": np.array([[8.0, np.inf, 1.0]]),
        "past int64": np.array([[8.0, 2.0**64, 1.0]]),
        "random": np.round(rng.normal(100, 50, size=(100, 3)), 0),
    }
    deferred = []
    for label, matrix in cases.items():
        columns = {n: matrix[:, j] for j, n in enumerate(NUMERIC)}
        fast = _plain_numbers(signature, columns)
        try:
            full = signature.conform(columns, what="rows")
        except UserInputError:
            full = None
        if fast is None:
            deferred.append(label)
            continue
        assert full is not None, label  # never accepts what conform refuses
        assert list(fast) == list(full), label
        for name in NUMERIC:
            assert fast[name].dtype == full[name].dtype, (label, name)
            assert np.array_equal(fast[name], full[name]), (label, name)
    assert deferred == ["fraction in an integer column", "NaN in a nullable float",
                        "NaN in an integer column", "infinity", "past int64"]
    # anything but float64 tensors of numeric columns is conform's
    assert _plain_numbers(signature, {n: [1.0] for n in NUMERIC}) is None
    assert _plain_numbers(signature, {n: np.array([1], dtype=np.int64) for n in NUMERIC}) is None
    assert _plain_numbers(signature, {"hour": np.array([1.0])}) is None  # columns missing


@pytest.mark.parametrize("n", [1, 2, 100])
def test_fp64_tensors_answer_as_the_model(project, numeric_model: Path, rows: pd.DataFrame,
                                          n: int) -> None:
    project.register(numeric_model, "numeric")
    project.registry.promote("numeric", 1)
    frame = rows.head(n)
    expected = load_model(numeric_model).predict(frame)
    with TestClient(project.app("numeric")) as client:
        matrix = client.post("/v2/models/numeric/infer", json=_v2(frame.to_numpy()))
        body, headers = _binary_v2(frame.to_numpy())
        binary = client.post("/v2/models/numeric/infer", content=body, headers=headers)
        v1 = client.post("/v1/models/numeric:predict",
                         json={"instances": frame.to_dict(orient="records")})
    for got in (matrix, binary):
        assert got.status_code == 200, got.text
        outputs = {o["name"]: o for o in got.json()["outputs"]}
        assert outputs["prediction"]["shape"] == [n]
        np.testing.assert_allclose(outputs["prediction"]["data"], expected, rtol=1e-12)
    assert v1.status_code == 200, v1.text
    np.testing.assert_allclose(v1.json()["predictions"], expected, rtol=1e-12)


def test_fp64_tensors_are_refused_as_before(project, numeric_model: Path,
                                            rows: pd.DataFrame) -> None:
    project.register(numeric_model, "numeric")
    project.registry.promote("numeric", 1)
    base = rows.head(2).to_numpy()
    with TestClient(project.app("numeric")) as client:
        def post(matrix: np.ndarray) -> tuple[int, str]:
            body, headers = _binary_v2(matrix)
            got = client.post("/v2/models/numeric/infer", content=body, headers=headers)
            return got.status_code, got.text

        fraction = base.copy()
        fraction[1, 0] = 8.5
        status, text = post(fraction)
        assert status == 422 and "'hour'" in text and "not a whole number" in text
        missing = base.copy()
        missing[0, 1] = np.nan
        status, text = post(missing)
        assert status == 422 and "'distance'" in text and "NaN" in text
        infinite = base.copy()
        infinite[0, 2] = np.inf
        status, text = post(infinite)
        assert status == 422 and "'dep_delay'" in text and "finite" in text
        nullable = base.copy()
        nullable[0, 2] = np.nan  # dep_delay was null in training: NaN is a missing value
        assert post(nullable)[0] == 200


def test_predict_posts_skip_fastapis_stack_other_routes_do_not(
    three_versions, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered: list[str] = []
    original = FastAPI.__call__

    async def counting(self, scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "http":
            entered.append(scope["path"])
        await original(self, scope, receive, send)

    monkeypatch.setattr(FastAPI, "__call__", counting)
    with TestClient(three_versions.app("flights")) as client:
        ok = client.post("/v1/models/flights:predict",
                         json={"instances": [{"origin": "JFK", "hour": 8, "distance": 1000}]})
        unknown = client.post("/v2/models/nope/infer", json={"inputs": []})
        assert ok.status_code == 200 and unknown.status_code == 404
        assert entered == []
        assert client.get("/v2/models/flights").status_code == 200
        assert client.post("/v1/models/flights:explain", json={}).status_code != 200
    assert entered == ["/v2/models/flights", "/v1/models/flights:explain"]


def test_metric_counters_add_up_across_requests(three_versions) -> None:
    instance = {"origin": "JFK", "hour": 8, "distance": 1000}
    with TestClient(three_versions.app("flights")) as client:
        for n in (1, 2, 3):
            got = client.post("/v1/models/flights:predict", json={"instances": [instance] * n})
            assert got.status_code == 200
        assert client.post("/v1/models/flights:predict", json={"rows": "x"}).status_code == 422
        text = client.get("/metrics").text
    lines = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
             for line in text.splitlines() if line and not line.startswith("#")}
    assert lines['ctloop_predictions_total{model="flights",route="champion",status="ok",'
                 'version="1"}'] == 6
    assert lines['ctloop_requests_total{endpoint="predict",model="flights",protocol="v1",'
                 'status="200"}'] == 3
    assert lines['ctloop_requests_total{endpoint="predict",model="flights",protocol="v1",'
                 'status="422"}'] == 1
    assert lines['ctloop_request_latency_seconds_count{endpoint="predict",model="flights",'
                 'route="champion",version="1"}'] == 3
    assert lines['ctloop_request_latency_seconds_count{endpoint="predict",model="flights",'
                 'route="none",version="none"}'] == 1


def test_a_lone_request_is_scored_inline_a_burst_still_coalesces() -> None:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from ctloop.serving.scoring.batching import MicroBatcher

    calls: list[int] = []

    def predict(columns: Mapping[str, np.ndarray]) -> np.ndarray:
        calls.append(len(columns["x"]))
        if np.isnan(columns["x"]).any():
            raise ValueError("NaN")
        return columns["x"] * 2.0

    async def run() -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray | BaseException]]:
        batcher = MicroBatcher(predict, executor=ThreadPoolExecutor(1))
        alone = [await batcher.submit({"x": np.array([float(i)])}, 1) for i in range(3)]
        burst = await asyncio.gather(*(batcher.submit({"x": np.array([float(i), 1.0])}, 2)
                                       for i in range(32)))
        mixed = await asyncio.gather(
            *(batcher.submit({"x": np.array([v])}, 1) for v in (1.0, np.nan, 3.0)),
            return_exceptions=True)
        return alone, list(burst), list(mixed)

    alone, burst, mixed = asyncio.run(run())
    assert [a.tolist() for a in alone] == [[0.0], [2.0], [4.0]]
    assert [b.tolist() for b in burst] == [[2.0 * i, 2.0] for i in range(32)]
    # three lone calls; in the burst the first is scored at once, the other 31 together
    assert calls[:5] == [1, 1, 1, 2, 62]
    # a bad request in a coalesced batch fails alone; its neighbours get their answers
    first, bad, last = mixed
    assert isinstance(first, np.ndarray) and first.tolist() == [2.0]
    assert isinstance(bad, ValueError)
    assert isinstance(last, np.ndarray) and last.tolist() == [6.0]


def test_a_batch_wait_holds_the_first_request_for_company_too() -> None:
    """``batch_wait_ms`` is the user asking every request to wait: none is scored inline."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from ctloop.serving.scoring.batching import MicroBatcher

    calls: list[int] = []

    def predict(columns: Mapping[str, np.ndarray]) -> np.ndarray:
        calls.append(len(columns["x"]))
        return columns["x"] + 1.0

    async def run() -> list[np.ndarray]:
        batcher = MicroBatcher(predict, executor=ThreadPoolExecutor(1), max_wait=0.5)

        async def later(value: float, turns: int) -> np.ndarray:
            for _ in range(turns):  # arrive in a later turn of the loop, as requests do
                await asyncio.sleep(0)
            return await batcher.submit({"x": np.array([value])}, 1)

        return list(await asyncio.gather(*(later(float(i), i) for i in range(4))))

    answers = asyncio.run(run())
    assert [a.tolist() for a in answers] == [[1.0], [2.0], [3.0], [4.0]]
    assert calls == [4]  # four requests in four turns, one predict call after the wait


def test_requests_sent_as_one_block_are_scored_and_coalesced_as_blocks() -> None:
    """A request carrying its rows as one float block is scored by ``score_matrix``; a burst
    of them is one concatenated block; a burst with a column-only request falls back to the
    columns for all; a bad block fails alone, as a bad column request does."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from ctloop.serving.scoring.batching import MicroBatcher

    calls: list[tuple[str, int]] = []

    def predict(columns: Mapping[str, np.ndarray]) -> np.ndarray:
        calls.append(("columns", len(columns["a"])))
        return columns["a"] + 10.0 * columns["b"]

    def block(matrix: np.ndarray) -> np.ndarray:
        calls.append(("block", len(matrix)))
        if np.isnan(matrix).any():
            raise ValueError("NaN")
        return matrix[:, 0] + 10.0 * matrix[:, 1]

    def request(*rows: tuple[float, float]) -> tuple[dict[str, np.ndarray], int, np.ndarray]:
        matrix = np.array(rows, dtype=np.float64)
        return {"a": matrix[:, 0], "b": matrix[:, 1]}, len(rows), matrix

    async def run() -> list[list[np.ndarray | BaseException]]:
        batcher = MicroBatcher(predict, executor=ThreadPoolExecutor(1), score_matrix=block)
        alone: list[np.ndarray | BaseException] = [await batcher.submit(*request((1.0, 2.0)))]
        blocks = await asyncio.gather(*(batcher.submit(*request((float(i), 1.0), (0.0, 0.5)))
                                        for i in range(4)))
        columns, rows, _ = request((3.0, 3.0))
        mixed = await asyncio.gather(batcher.submit(*request((1.0, 1.0))),
                                     batcher.submit(*request((5.0, 5.0))),
                                     batcher.submit(columns, rows))
        bad = await asyncio.gather(batcher.submit(*request((1.0, 1.0))),
                                   batcher.submit(*request((1.0, 1.0))),
                                   batcher.submit(*request((np.nan, 1.0))),
                                   return_exceptions=True)
        return [alone, list(blocks), list(mixed), list(bad)]

    def values(answers: list[np.ndarray | BaseException]) -> list[object]:
        return [a.tolist() if isinstance(a, np.ndarray) else a for a in answers]

    alone, blocks, mixed, bad = asyncio.run(run())
    assert values(alone) == [[21.0]]
    assert values(blocks) == [[10.0 + i, 5.0] for i in range(4)]
    assert values(mixed) == [[11.0], [55.0], [33.0]]
    assert values(bad[:2]) == [[11.0], [11.0]]
    assert isinstance(bad[2], ValueError)
    # lone: one block; burst: the first at once, the other three as one 6-row block;
    # mixed: the first at once, then columns for the two left (one has no block)
    assert calls[:5] == [("block", 1), ("block", 2), ("block", 6), ("block", 1),
                         ("columns", 2)]


def test_a_block_goes_to_a_version_reading_other_columns_as_columns(
        project, numeric_model: Path, rows: pd.DataFrame, tmp_path: Path) -> None:
    """The block is decoded for the primary's inputs; a canary (and a shadow) trained on the
    same columns in another order must get its rows by name, never the block by position."""
    from ctloop.serving import ServingConfig

    data = flights([1]).head(3000).reset_index(drop=True)
    reordered = tmp_path / "reordered"
    fit_model(data, label="delayed", features=NUMERIC[::-1], algorithm="lightgbm",
              params={"n_estimators": 10, "n_jobs": 1}).save(reordered)
    project.register(numeric_model, "numeric")
    project.register(reordered, "numeric")
    project.registry.promote("numeric", 1)
    project.registry.promote("numeric", 2, alias="challenger")
    frame = rows.head(100)
    expected = {1: load_model(numeric_model).predict(frame),
                2: load_model(reordered).predict(frame[NUMERIC[::-1]])}

    def nearest(row: int, score: float) -> int:  # the version whose answer this is
        return min((1, 2), key=lambda version: abs(float(expected[version][row]) - score))

    config = ServingConfig.from_table({"canary": "challenger=50%", "shadow": "2"})
    with TestClient(project.app("numeric", config=config)) as client:
        for n in (1, 2, 100):
            got = client.post("/v2/models/numeric/infer", json=_v2(frame.head(n).to_numpy()))
            assert got.status_code == 200, got.text
            scores: list[float] = {o["name"]: o["data"]
                                   for o in got.json()["outputs"]}["prediction"]
            picked = [nearest(i, s) for i, s in enumerate(scores)]
            want = [expected[version][i] for i, version in enumerate(picked)]
            np.testing.assert_allclose(scores, want, rtol=1e-12)
            if n == 100:  # both versions answered some rows, each with its own columns
                assert set(picked) == {1, 2}
