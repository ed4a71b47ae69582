"""Under concurrent load on a real server: batch-equal answers, canary share, hot swaps."""

from __future__ import annotations

import asyncio
import threading

import httpx
import numpy as np

from ctloop.serving import ServingConfig
from ctloop.serving.background import background_server
from ctloop.testing.services import wait_until

URL = "/v1/models/flights:predict"
FEATURES = ["origin", "hour", "distance"]


def _answered(results: list, count: int) -> None:  # type: ignore[type-arg]
    """Wait for ``count`` more answers under load (readiness, not a fixed sleep)."""
    start = len(results)
    wait_until(lambda: len(results) >= start + count, f"{count} more answers", 60,
               interval=0.02)


def _rows(frame) -> list[dict]:
    return frame[FEATURES].astype(object).where(frame[FEATURES].notna(), None).to_dict("records")


async def _fire(url: str, bodies: list[dict], concurrency: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        return await asyncio.gather(*(client.post(URL, json=b) for b in bodies))


def test_concurrent_single_rows_coalesce_and_equal_batch_predictions(three_versions,
                                                                      sample) -> None:
    model = three_versions.registry.load("flights:1", three_versions.artifacts)
    expected = model.predict(sample)
    app = three_versions.app("flights")
    with background_server(app) as url:
        bodies = [{"instances": [row]} for row in _rows(sample)]
        answers = asyncio.run(_fire(url, bodies, concurrency=32))
    got = np.array([a.json()["predictions"][0] for a in answers])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    [stats] = app.state.serving.scorer.batch_stats().values()
    assert stats.requests == len(sample) and stats.rows == len(sample)
    assert stats.calls < stats.requests  # concurrent requests shared predict calls


def test_canary_share_is_within_tolerance_and_each_route_scores_its_version(
    three_versions, sample
) -> None:
    models = {v: three_versions.registry.load(f"flights:{v}", three_versions.artifacts)
              for v in (1, 2)}
    config = ServingConfig.from_table({"canary": "challenger=30%"})
    frame = sample.sample(2000, replace=True, random_state=1).reset_index(drop=True)
    rows = _rows(frame)
    bodies = [{"rows": rows[i:i + 50], "request_ids": [f"r{j}" for j in range(i, i + 50)]}
              for i in range(0, 2000, 50)]
    with background_server(three_versions.app("flights", config=config)) as url:
        answers = asyncio.run(_fire(url, bodies, concurrency=8))
    versions = np.array([v for a in answers for v in a.json()["versions"]])
    predictions = np.array([p for a in answers for p in a.json()["predictions"]])
    share = (versions == 2).mean()
    assert abs(share - 0.3) < 0.036, share  # 3.5 binomial standard deviations of 2000 rows
    for version, model in models.items():
        mask = versions == version
        np.testing.assert_allclose(predictions[mask], model.predict(frame[mask]), atol=1e-12)


def test_hot_swaps_under_load_fail_no_request(three_versions, sample) -> None:
    models = {v: three_versions.registry.load(f"flights:{v}", three_versions.artifacts)
              for v in (1, 3)}
    row = _rows(sample.head(1))
    expected = {v: float(m.predict(sample.head(1))[0]) for v, m in models.items()}
    config = ServingConfig(reload_interval=0.05)
    results: list[tuple[int, int, float]] = []
    stop = threading.Event()

    async def hammer(url: str) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            async def one_client() -> None:
                while not stop.is_set():
                    answer = await client.post(URL, json={"instances": row})
                    body = answer.json()
                    version = body["versions"][0] if answer.status_code == 200 else 0
                    results.append((answer.status_code, version,
                                    body["predictions"][0] if version else float("nan")))
            await asyncio.gather(*(one_client() for _ in range(16)))

    with background_server(three_versions.app("flights", config=config)) as url:
        load = threading.Thread(target=lambda: asyncio.run(hammer(url)))
        load.start()
        try:
            for version in (3, 1, 3, 1, 3):  # each switch seen answering, not a 0.4 s sleep
                _answered(results, 10)
                three_versions.registry.promote("flights", version)
                wait_until(lambda v=version: any(r[1] == v for r in results[-5:]),  # type: ignore[misc]
                           f"answers from version {version}", 60, interval=0.02)
            _answered(results, 10)
        finally:
            stop.set()
            load.join(timeout=30)
    statuses = {status for status, _, _ in results}
    assert statuses == {200}, statuses
    seen = {version for _, version, _ in results}
    assert seen == {1, 3}
    for _, version, prediction in results:  # never a mix: each answer is its version's
        assert prediction == expected[version]
    assert len(results) > 50


def test_coalesced_log_entries_keep_each_requests_time(three_versions, sample, tmp_path) -> None:
    from ctloop.requestlog.log import open_prediction_log

    log = open_prediction_log(tmp_path / "log")
    app = three_versions.app("flights", prediction_log=log)
    rows = _rows(sample.head(1))
    bodies = [{"instances": rows, "request_ids": [f"q{d}"], "now": f"2013-06-{d:02d}T12:00:00"}
              for d in range(1, 29)]
    with background_server(app) as url:
        answers = asyncio.run(_fire(url, bodies, concurrency=28))
        assert {a.status_code for a in answers} == {200}
        app.state.serving.logger.flush()
    frame = log.read(model_name="flights").set_index("request_id")
    for d in range(1, 29):
        assert str(frame.loc[f"q{d}", "ts"])[:10] == f"2013-06-{d:02d}"
