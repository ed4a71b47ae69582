"""Benchmark: time to a verdict of ``ctloop models test`` for a 100-tree LightGBM model.

The floor, measured in the same rounds, is the service start alone: ``ctloop
serve`` on the same version until ``/ready`` answers (the part of a verdict no
check can avoid). The verdict adds loading the model in-process, 9 answers
(v1, v2, gRPC x 1, 2, 100 rows) and the bounded load test (4 connections, 2 s
by default). The aim is a verdict under 20 s on 2 cores. Run by hand:

    .venv/bin/python bench/bench_model_test.py
    .venv/bin/python bench/bench_model_test.py --rounds 1 --seconds 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from ctloop.artifacts import open_artifact_store
from ctloop.core.net import free_port
from ctloop.examples.flights.data import flights
from ctloop.metadata import ArtifactRecord, new_id, open_metadata_store
from ctloop.models import fit_model
from ctloop.registry import ModelRegistry

FEATURES = ["origin", "carrier", "hour", "distance", "month"]


def _project(root: Path) -> None:
    home = root / ".ctloop"
    home.mkdir()
    store = open_metadata_store(f"sqlite:///{home / 'metadata.db'}")
    artifacts = open_artifact_store((home / "artifacts").as_uri())
    data = flights([1, 2])
    fit_model(data, label="delayed", features=FEATURES, algorithm="lightgbm",
              params={"n_estimators": 100, "n_jobs": 1}).save(root / "model")
    stored = artifacts.put(root / "model")
    art = store.add_artifact(ArtifactRecord(new_id(), "Model", stored.uri, stored.sha256,
                                            stored.size))
    ModelRegistry(store).register("flights", art.id)
    store.close()
    flights([3]).head(500)[FEATURES].to_parquet(root / "sample.parquet")


def _serve_ready(root: Path) -> float:
    port = free_port()
    began = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "ctloop", "serve", "flights", "--alias", "1",
                             "--port", str(port), "--log-level", "warning", "--request-log", ""],
                            cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                    return time.perf_counter() - began
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise SystemExit("ctloop serve exited")
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait()


def _verdict(root: Path, seconds: float) -> tuple[float, dict[str, object]]:
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ctloop", "models", "test", "flights@1",
                           "--data", "sample.parquet", "--duration", str(seconds), "--json"],
                          cwd=root, capture_output=True, text=True, env=os.environ)
    elapsed = time.perf_counter() - began
    if done.returncode not in (0, 1):
        raise SystemExit(done.stderr)
    return elapsed, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="load test duration")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ctloop-bench-model-test-") as tmp:
        root = Path(tmp)
        _project(root)
        floors, verdicts, report = [], [], {}
        for _ in range(args.rounds):
            floors.append(_serve_ready(root))
            elapsed, report = _verdict(root, args.seconds)
            verdicts.append(elapsed)
    floor, verdict = statistics.median(floors), statistics.median(verdicts)
    load = report.get("load") or {}
    print(f"service start to /ready (floor): {floor:6.2f} s  (median of {args.rounds})")
    print(f"ctloop models test verdict     : {verdict:6.2f} s  = {verdict / floor:.2f} x floor, "
          f"{verdict - floor:.2f} s above it; aim < 20 s")
    print(f"  of which the service start {report.get('startup_s', float('nan')):.2f} s and the "
          f"checks after it {report.get('seconds', float('nan')) - report.get('startup_s', 0):.2f}"
          " s (last round)")
    print(f"  passed={report.get('passed')}  load: {load.get('requests')} requests, "
          f"p99 {load.get('p99_ms', float('nan')):.1f} ms, {load.get('rps', 0):.0f} rps")


if __name__ == "__main__":
    main()
