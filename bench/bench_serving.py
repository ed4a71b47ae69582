"""The prediction service against ``mlflow models serve`` of the same LightGBM flights model.

    .venv/bin/python bench/bench_serving.py [--seconds 5] [--repeats 3] [--skip-mlflow]

One LightGBM model (100 trees on origin, hour, distance, carrier) is
registered in a fresh ctloop project and exported as an MLflow pyfunc (the
booster file itself, with the same string-to-category conversion ctloop's
flavor does). MLflow runs in a venv this script creates under
``bench/.peers/mlflow`` (never in ctloop's dependencies), with its default
single worker; ctloop runs ``ctloop serve`` (one worker, request log on).

Scenarios, each measured for both servers in alternating order, ``--repeats``
times, with one keep-alive load generator (``bench/loadgen.py``):

- single-row requests at concurrency 1 and 32
- 100-row requests at concurrency 1
- cold start: process launch to the first ready answer

Before each measurement the script waits until the server's CPU is idle,
so background work left over from the previous scenario (ctloop's request
log catching up) does not land on the next one; the CPU per request counts
only what happened during the measurement.

Prints requests/s, p50/p99 latency and server CPU per request, then the
median of the per-repeat ratios ctloop/MLflow (the machine is shared: ratios
measured side by side are what to quote, not absolute times).

``--grpc`` compares ctloop with itself instead: one ``ctloop serve --grpc-port``
process, the same scenarios as Open Inference Protocol requests over HTTP
(``POST /v2/models/flights/infer``, JSON tensors, ``loadgen``) and over gRPC
(``ModelInfer`` with raw tensor contents, as ``tritonclient.grpc`` sends,
``grpcload``), interleaved, with the ratios gRPC/HTTP.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import Result, load

from ctloop.core.net import free_port

HERE = Path(__file__).resolve().parent
MLFLOW_VENV = HERE / ".peers" / "mlflow"
MLFLOW_REQUIREMENTS = ["mlflow==3.17.2", "lightgbm==4.7.0"]
FEATURES = ["origin", "hour", "distance", "carrier"]
CATEGORICAL = ["origin", "carrier"]

EXPORT = """
import sys, lightgbm, mlflow.pyfunc

class Flights(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        self.booster = lightgbm.Booster(model_file=context.artifacts["model"])
    def predict(self, context, model_input, params=None):
        frame = model_input.copy()
        for column in %(categorical)r:
            frame[column] = frame[column].astype("category")
        return self.booster.predict(frame)

mlflow.pyfunc.save_model(sys.argv[2], python_model=Flights(),
                         artifacts={"model": sys.argv[1]})
"""


def ensure_mlflow() -> Path:
    python = MLFLOW_VENV / "bin" / "python"
    probe = [str(python), "-c", "import mlflow.pyfunc, lightgbm"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print("installing MLflow into", MLFLOW_VENV, "(once; takes a few minutes)")
    subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *MLFLOW_REQUIREMENTS], check=True)
    return python


def setup(root: Path) -> Path:
    """A ctloop project under ``root/.ctloop`` serving ``flights``; returns the model folder."""
    from ctloop.artifacts import open_artifact_store
    from ctloop.examples.flights.data import flights
    from ctloop.metadata import ArtifactRecord, new_id, open_metadata_store
    from ctloop.models import fit_model
    from ctloop.registry import ModelRegistry

    home = root / ".ctloop"
    home.mkdir(parents=True)
    fit_model(flights([1, 2]), label="delayed", features=FEATURES, algorithm="lightgbm",
              params={"n_estimators": 100, "n_jobs": 1}).save(root / "model")
    store = open_metadata_store(f"sqlite:///{home / 'metadata.db'}")
    artifacts = open_artifact_store((home / "artifacts").as_uri())
    stored = artifacts.put(root / "model")
    art = store.add_artifact(
        ArtifactRecord(new_id(), "Model", stored.uri, stored.sha256, stored.size)
    )
    registry = ModelRegistry(store, actor="bench")
    registry.register("flights", art.id)
    registry.promote("flights", 1)
    store.close()
    return root / "model"


@dataclass
class Server:
    name: str
    command: list[str]
    env: dict[str, str]
    cwd: Path
    ready: str  # path answering 200 once the model is loaded
    predict: str
    body: Callable[[list[dict[str, object]]], bytes]
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0

    def start(self) -> float:
        """Launch; seconds until the ready path answered 200."""
        self.port = free_port()
        command = [c.replace("{port}", str(self.port)) for c in self.command]
        began = time.perf_counter()
        self.proc = subprocess.Popen(command, cwd=self.cwd, env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        deadline = began + 120
        while time.perf_counter() < deadline:
            try:
                if httpx.get(self.url(self.ready), timeout=1).status_code == 200:
                    return time.perf_counter() - began
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                stderr = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"{self.name} exited: {stderr[-2000:]}")
            time.sleep(0.01)
        raise RuntimeError(f"{self.name} did not become ready in 120 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def cpu_seconds(self) -> float:
        """User + system CPU of the server's process group so far."""
        assert self.proc is not None
        total = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == self.proc.pid:  # process group id
                total += (int(fields[11]) + int(fields[12])) / tick
        return total


def servers(root: Path, model: Path, mlflow_python: Path | None) -> list[Server]:
    env = {**os.environ, "CTLOOP_HOME": str(root / ".ctloop")}
    ctloop = Server(
        "ctloop", [str(Path(sys.executable).parent / "ctloop"), "serve", "flights",
                   "--port", "{port}", "--log-level", "warning"],
        env, root, "/ready", "/v1/models/flights:predict",
        lambda rows: json.dumps({"instances": rows}).encode(),
    )
    out = [ctloop]
    if mlflow_python is not None:
        exported = root / "mlflow-model"
        script = EXPORT % {"categorical": CATEGORICAL}
        subprocess.run([str(mlflow_python), "-c", script, str(model / "model.txt"),
                        str(exported)], check=True, capture_output=True)
        mlflow_env = {**os.environ, "MLFLOW_TRACKING_URI": (root / "mlruns").as_uri(),
                      "PATH": f"{mlflow_python.parent}:{os.environ.get('PATH', '')}"}
        out.insert(0, Server(
            "mlflow", [str(mlflow_python.parent / "mlflow"), "models", "serve", "-m",
                       str(exported), "--port", "{port}", "--env-manager", "local"],
            mlflow_env, root, "/ping", "/invocations",
            lambda rows: json.dumps({"dataframe_records": rows}).encode(),
        ))
    return out


def settle(server: Server, limit: float = 60.0) -> None:
    """Wait until the server is idle (its request log has caught up with earlier load)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = server.cpu_seconds()
        time.sleep(0.5)
        if server.cpu_seconds() - before < 0.05:
            return


def measure(server: Server, rows: list[dict[str, object]], concurrency: int,
            seconds: float) -> tuple[Result, float]:
    settle(server)
    cpu = server.cpu_seconds()
    result = load(server.url(server.predict), server.body(rows), concurrency=concurrency,
                  seconds=seconds)
    cpu_ms = (server.cpu_seconds() - cpu) * 1000 / max(result.requests, 1)
    if result.errors:
        raise RuntimeError(f"{server.name}: {result.errors} failed requests")
    return result, cpu_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument("--grpc", action="store_true",
                        help="gRPC vs HTTP v2 on one ctloop server, instead of MLflow")
    args = parser.parse_args()
    from ctloop.examples.flights.data import flights

    if args.grpc:
        compare_grpc(args.seconds, args.repeats)
        return

    mlflow_python = None if args.skip_mlflow else ensure_mlflow()
    sample = flights([3]).head(100)[FEATURES].reset_index(drop=True)
    rows = sample.astype(object).where(sample.notna(), None).to_dict("records")
    scenarios = {"1 row, c=1": (rows[:1], 1), "1 row, c=32": (rows[:1], 32),
                 "100 rows, c=1": (rows, 1)}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = setup(root)
        targets = servers(root, model, mlflow_python)
        results: dict[tuple[str, str], list[tuple[Result, float]]] = {}
        cold: dict[str, list[float]] = {}
        try:
            for repeat in range(args.repeats):
                order = targets if repeat % 2 == 0 else targets[::-1]
                for server in order:  # cold start, interleaved
                    cold.setdefault(server.name, []).append(server.start())
                    server.stop()
                for server in order:
                    server.start()
                for label, (body_rows, concurrency) in scenarios.items():
                    for server in order:
                        results.setdefault((label, server.name), []).append(
                            measure(server, body_rows, concurrency, args.seconds))
                for server in order:
                    server.stop()
        finally:
            for server in targets:
                server.stop()
    report(targets, scenarios, results, cold)


def report(targets: list[Server], scenarios: dict[str, object],
           results: dict[tuple[str, str], list[tuple[Result, float]]],
           cold: dict[str, list[float]]) -> None:
    print(f"{'scenario':<15} {'server':<7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'cpu ms/req':>10}   (median of repeats)")
    for label in scenarios:
        for server in targets:
            runs = results[(label, server.name)]
            print(f"{label:<15} {server.name:<7} "
                  f"{statistics.median(r.rps for r, _ in runs):>8.0f} "
                  f"{statistics.median(r.p50_ms for r, _ in runs):>8.2f} "
                  f"{statistics.median(r.p99_ms for r, _ in runs):>8.2f} "
                  f"{statistics.median(c for _, c in runs):>10.2f}")
    for name, times in cold.items():
        print(f"cold start      {name:<7} {statistics.median(times):.2f} s "
              f"(runs: {', '.join(f'{t:.2f}' for t in times)})")
    if len(targets) < 2:
        return
    print("\nratios ctloop/mlflow (median of per-repeat ratios; req/s: higher is better,"
          " p99 and CPU: lower is better)")
    for label in scenarios:
        ours, theirs = results[(label, "ctloop")], results[(label, "mlflow")]
        rps = [a.rps / b.rps for (a, _), (b, _) in zip(ours, theirs, strict=True)]
        p99 = [a.p99_ms / b.p99_ms for (a, _), (b, _) in zip(ours, theirs, strict=True)]
        cpu = [a / b for (_, a), (_, b) in zip(ours, theirs, strict=True)]
        print(f"{label:<15} req/s {statistics.median(rps):.2f}x "
              f"[{', '.join(f'{r:.2f}' for r in rps)}]   p99 {statistics.median(p99):.2f}x   "
              f"cpu/req {statistics.median(cpu):.2f}x")
    ratio = [a / b for a, b in zip(cold["ctloop"], cold["mlflow"], strict=True)]
    print(f"cold start      {statistics.median(ratio):.2f}x")


def v2_tensors(frame: pd.DataFrame) -> tuple[bytes, bytes]:
    """One request as HTTP v2 JSON and as a serialized gRPC ModelInferRequest (raw contents)."""
    from ctloop.serving.proto import grpc_predict_v2_pb2 as pb

    kinds = {"origin": "BYTES", "carrier": "BYTES", "hour": "INT64", "distance": "INT64"}
    body = {"inputs": [{"name": c, "shape": [len(frame)], "datatype": kinds[c],
                        "data": frame[c].tolist()} for c in FEATURES]}
    request = pb.ModelInferRequest(model_name="flights")
    for column in FEATURES:
        request.inputs.add(name=column, datatype=kinds[column], shape=[len(frame)])
        if kinds[column] == "BYTES":
            raw = b"".join(len(v.encode()).to_bytes(4, "little") + v.encode()
                           for v in frame[column])
        else:
            raw = frame[column].to_numpy(dtype="<i8").tobytes()
        request.raw_input_contents.append(raw)
    return json.dumps(body).encode(), request.SerializeToString()


def compare_grpc(seconds: float, repeats: int) -> None:
    """One ``ctloop serve --grpc-port``: the scenarios over HTTP v2 and over gRPC, interleaved."""
    import grpcload
    from loadgen import load as http_load

    from ctloop.examples.flights.data import flights

    sample = flights([3]).head(100)[FEATURES].reset_index(drop=True)
    scenarios = {"1 row, c=1": (sample.head(1), 1), "1 row, c=32": (sample.head(1), 32),
                 "100 rows, c=1": (sample, 1)}
    results: dict[tuple[str, str], list[tuple[Result, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = setup(root)
        [server] = servers(root, model, None)
        grpc_port = free_port()
        server.command += ["--grpc-port", str(grpc_port)]
        server.start()
        try:
            for repeat in range(repeats):
                for label, (frame, concurrency) in scenarios.items():
                    http_body, grpc_body = v2_tensors(frame)
                    runs = {
                        "http v2": partial(http_load, server.url("/v2/models/flights/infer"),
                                           http_body, concurrency=concurrency, seconds=seconds),
                        "grpc": partial(grpcload.load, f"127.0.0.1:{grpc_port}", grpc_body,
                                        concurrency=concurrency, seconds=seconds),
                    }
                    order = list(runs) if repeat % 2 == 0 else list(runs)[::-1]
                    for name in order:
                        settle(server)
                        cpu = server.cpu_seconds()
                        result = runs[name]()
                        if result.errors:
                            raise RuntimeError(f"{name}: {result.errors} failed requests")
                        cpu_ms = (server.cpu_seconds() - cpu) * 1000 / max(result.requests, 1)
                        results.setdefault((label, name), []).append((result, cpu_ms))
        finally:
            server.stop()
    print(f"{'scenario':<15} {'protocol':<8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'cpu ms/req':>10}   (median of repeats)")
    for label in scenarios:
        for name in ("http v2", "grpc"):
            runs_of = results[(label, name)]
            print(f"{label:<15} {name:<8} "
                  f"{statistics.median(r.rps for r, _ in runs_of):>8.0f} "
                  f"{statistics.median(r.p50_ms for r, _ in runs_of):>8.2f} "
                  f"{statistics.median(r.p99_ms for r, _ in runs_of):>8.2f} "
                  f"{statistics.median(c for _, c in runs_of):>10.2f}")
    print("\nratios grpc/http v2 (median of per-repeat ratios; req/s: higher is better)")
    for label in scenarios:
        pairs = list(zip(results[(label, "grpc")], results[(label, "http v2")], strict=True))
        rps = [a.rps / b.rps for (a, _), (b, _) in pairs]
        cpu = [a / b for (_, a), (_, b) in pairs]
        print(f"{label:<15} req/s {statistics.median(rps):.2f}x "
              f"[{', '.join(f'{r:.2f}' for r in rps)}]   cpu/req {statistics.median(cpu):.2f}x")


if __name__ == "__main__":
    main()
