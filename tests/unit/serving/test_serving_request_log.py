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
