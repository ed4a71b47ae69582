"""The service never acknowledges what its request log cannot keep (issue 22.2).

The spool's writes fail (as on a full disk): the answer acknowledged before the
writer noticed is kept and written once the spool works again; from the failed
write on, predictions get 503 naming the spool (``log_failure = "refuse"``) or
are answered and counted as unlogged (``"serve"``); /metrics and /health say so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ctloop.core.errors import StoreError
from ctloop.requestlog.log import LogOptions, open_prediction_log
from ctloop.requestlog.spool import Spool
from ctloop.requestlog.writer import RequestLogger

URL = "/v1/models/flights:predict"
ROW = {"origin": "JFK", "hour": 5, "distance": 1000}


def _until(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _break_spool(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    real = Spool.write

    def full(self: Spool, table: object) -> int:
        raise StoreError("Cannot write the prediction log's write-ahead chunk: "
                         "[Errno 28] No space left on device (test)")

    monkeypatch.setattr(Spool, "write", full)
    return lambda: monkeypatch.setattr(Spool, "write", real)


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_a_failing_spool_answers_503_and_keeps_what_it_acknowledged(
    three_versions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = open_prediction_log(tmp_path / "log")
    app = three_versions.app("flights", prediction_log=log)
    with TestClient(app) as client:
        writer: RequestLogger = app.state.serving.logger
        repair = _break_spool(monkeypatch)
        first = client.post(URL, json={"rows": [ROW], "request_ids": ["before"]})
        assert first.status_code == 200  # acknowledged before the writer saw the disk
        _until(lambda: bool(writer.stats().failing), "the writer to notice")
        refused = client.post(URL, json={"rows": [ROW, ROW]})
        assert refused.status_code == 503
        assert "cannot write its spool" in refused.json()["error"]
        assert "No space left" in refused.json()["error"]
        health = client.get("/health").json()
        assert health["status"] == "degraded" and "No space left" in health["request_log"][
            "failing"]
        metrics = client.get("/metrics").text
        assert _metric(metrics, "ctloop_request_log_failing") == 1
        assert _metric(metrics, "ctloop_request_log_refused_requests_total") >= 1
        assert _metric(metrics, "ctloop_request_log_pending_rows") == 1
        repair()
        _until(lambda: not writer.stats().failing, "the retry to succeed")
        assert client.post(URL, json={"rows": [ROW], "request_ids": ["after"]}).status_code == 200
        assert client.get("/health").json() == {"status": "ok"}
    back = open_prediction_log(tmp_path / "log").read(include_rejected=True)
    answered = back[back["status"] == 200]
    assert {"before", "after"} <= set(answered["request_id"])
    assert answered["request_id"].is_unique


def test_log_failure_serve_answers_and_counts_unlogged_rows(
    three_versions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = open_prediction_log(tmp_path / "log", options=LogOptions(log_failure="serve"))
    app = three_versions.app("flights", prediction_log=log)
    with TestClient(app) as client:
        writer: RequestLogger = app.state.serving.logger
        _break_spool(monkeypatch)
        assert client.post(URL, json={"rows": [ROW]}).status_code == 200
        _until(lambda: bool(writer.stats().failing), "the writer to notice")
        for _ in range(3):
            assert client.post(URL, json={"rows": [ROW, ROW]}).status_code == 200
        metrics = client.get("/metrics").text
        assert _metric(metrics, 'ctloop_request_log_rows_total{outcome="unlogged"}') == 6
        assert client.get("/health").json()["status"] == "degraded"


def test_a_multiclass_model_and_a_binary_one_share_the_log_with_typed_columns(
    three_versions, tmp_path: Path
) -> None:
    """Per-class answers over HTTP land as a list<double> column next to a binary model's
    rows (the answer that once jammed the shared log), in one service."""
    from ctloop.examples.flights.data import flights
    from ctloop.models import fit_model

    data = flights([1]).head(3000)
    fit_model(data, label="origin", features=["hour", "distance"], algorithm="lightgbm",
              params={"n_estimators": 5, "n_jobs": 1}).save(tmp_path / "origin")
    three_versions.register(tmp_path / "origin", "origin")
    three_versions.registry.promote("origin", 1)
    log = open_prediction_log(tmp_path / "log")
    app = three_versions.app(["flights", "origin"], prediction_log=log)
    with TestClient(app) as client:
        for i in range(3):
            rows = [{"hour": 5 + i, "distance": 1000 + j} for j in range(1 + i)]
            multi = client.post("/v1/models/origin:predict",
                                json={"rows": rows, "request_ids": [f"m{i}-{j}"
                                                                    for j in range(len(rows))]})
            assert multi.status_code == 200, multi.text
            binary = client.post(URL, json={"rows": [ROW], "request_ids": [f"b{i}"]})
            assert binary.status_code == 200
        answered = multi.json()
        app.state.serving.logger.flush()
        assert app.state.serving.logger.stats().quarantined_rows == 0
    frame = open_prediction_log(tmp_path / "log").read()
    multi_rows = frame[frame["model_name"] == "origin"].sort_values("request_id")
    assert list(multi_rows["request_id"]) == ["m0-0", "m1-0", "m1-1", "m2-0", "m2-1", "m2-2"]
    probs = [list(p) for p in multi_rows["probabilities"]][-3:]
    assert all(len(p) == 3 and abs(sum(p) - 1) < 1e-9 for p in probs)
    assert probs == [list(p) for p in answered["probabilities"]]
    labels = list(multi_rows["predicted_label"])[-3:]
    assert set(labels) <= {"EWR", "JFK", "LGA"}
    assert labels == [str(p) for p in answered["predictions"]]
    binary_rows = frame[frame["model_name"] == "flights"]
    assert sorted(binary_rows["request_id"]) == ["b0", "b1", "b2"]
    assert binary_rows["probabilities"].isna().all()
