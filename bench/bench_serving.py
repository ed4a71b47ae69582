"""Prediction service latency and throughput over loopback HTTP, against two baselines.

    .venv/bin/python bench/bench_serving.py [--requests 2000]

(a) the floor: ``LoadedModel.predict`` called directly, no HTTP;
(b) a peer baseline: a minimal hand-written FastAPI endpoint calling the same
    model, served by the same uvicorn in the same run;
(c) ctloop's service (``create_app``: routing, metrics, request log on).
Each server runs in its own process; one client sends sequential requests
of 1 and 100 rows. Prints p50/p99 latency, requests/s and the ratios.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from pydantic import BaseModel

from ctloop.core.net import free_port

FEATURES = ["origin", "hour", "distance", "carrier"]


class Body(BaseModel):
    """The peer endpoint's body: what a hand-written FastAPI service would declare."""

    rows: list[dict]



def _setup(root: Path) -> tuple[str, str, Path]:
    from ctloop.artifacts import open_artifact_store
    from ctloop.examples.flights.data import flights
    from ctloop.metadata import ArtifactRecord, new_id, open_metadata_store
    from ctloop.models import fit_model
    from ctloop.registry import ModelRegistry

    meta, arts = f"sqlite:///{root / 'meta.db'}", (root / "artifacts").as_uri()
    fit_model(
        flights([1, 2]),
        label="delayed",
        features=FEATURES,
        algorithm="lightgbm",
        params={"n_estimators": 100, "n_jobs": 1},
    ).save(root / "model")
    store, artifacts = open_metadata_store(meta), open_artifact_store(arts)
    stored = artifacts.put(root / "model")
    art = store.add_artifact(
        ArtifactRecord(new_id(), "Model", stored.uri, stored.sha256, stored.size)
    )
    registry = ModelRegistry(store, actor="bench")
    registry.register("flights", art.id)
    registry.promote("flights", 1)
    path = artifacts.get(stored.uri, stored.sha256)
    store.close()
    return meta, arts, Path(path)


def _serve_ctloop(meta: str, arts: str, log: str, port: int) -> None:
    import uvicorn

    from ctloop.serving import ServingConfig, create_app

    app = create_app(
        "flights",
        metadata=meta,
        artifacts=arts,
        feature_store=False,
        prediction_log=log,
        config=ServingConfig(reload_interval=5),
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False)


def _serve_plain(model_path: str, port: int) -> None:
    import uvicorn
    from fastapi import FastAPI

    from ctloop.models import load_model

    model = load_model(model_path)
    app = FastAPI()

    @app.post("/predict")
    def predict(body: Body) -> dict:
        return {"predictions": model.predict(pd.DataFrame(body.rows)).tolist()}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False)


def _wait(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def _measure(fn, n: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    for _ in range(min(50, n)):
        fn()
    times = []
    began = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    total = time.perf_counter() - began
    ms = np.array(times) * 1000
    return {
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "rps": n / total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    from ctloop.examples.flights.data import flights
    from ctloop.models import load_model

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        meta, arts, model_path = _setup(root)
        model = load_model(model_path)
        sample = flights([3]).head(100)[FEATURES].reset_index(drop=True)
        ctx = mp.get_context("spawn")
        ports = {"ctloop": free_port(), "fastapi": free_port()}
        procs = [
            ctx.Process(
                target=_serve_ctloop,
                args=(meta, arts, str(root / "log"), ports["ctloop"]),
                daemon=True,
            ),
            ctx.Process(target=_serve_plain, args=(str(model_path), ports["fastapi"]), daemon=True),
        ]
        for p in procs:
            p.start()
        try:
            _wait(f"http://127.0.0.1:{ports['ctloop']}/ready")
            _wait(f"http://127.0.0.1:{ports['fastapi']}/docs")
            results: dict[tuple[str, int], dict[str, float]] = {}
            with httpx.Client(timeout=10) as client:
                for size in (1, 100):
                    frame = sample.head(size)
                    rows = frame.to_dict("records")
                    results[("direct", size)] = _measure(
                        lambda f=frame: model.predict(f), args.requests
                    )
                    url = f"http://127.0.0.1:{ports['fastapi']}/predict"
                    results[("fastapi", size)] = _measure(
                        lambda u=url, r=rows: client.post(u, json={"rows": r}).raise_for_status(),
                        args.requests,
                    )
                    url = f"http://127.0.0.1:{ports['ctloop']}/v1/models/flights:predict"
                    results[("ctloop", size)] = _measure(
                        lambda u=url, r=rows: client.post(u, json={"rows": r}).raise_for_status(),
                        args.requests,
                    )
        finally:
            for p in procs:
                p.terminate()
                p.join(10)
    print(f"{'rows':>4} {'target':<22} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}")
    names = {
        "direct": "LoadedModel.predict",
        "fastapi": "plain FastAPI (peer)",
        "ctloop": "ctloop serve",
    }
    for size in (1, 100):
        for key, label in names.items():
            r = results[(key, size)]
            print(f"{size:>4} {label:<22} {r['p50']:>8.2f} {r['p99']:>8.2f} {r['rps']:>8.0f}")
        c, f, d = results[("ctloop", size)], results[("fastapi", size)], results[("direct", size)]
        print(
            f"     ratios p50: ctloop/peer {c['p50'] / f['p50']:.2f}x, "
            f"ctloop/floor {c['p50'] / d['p50']:.2f}x; throughput ctloop/peer "
            f"{c['rps'] / f['rps']:.2f}x"
        )


if __name__ == "__main__":
    main()
