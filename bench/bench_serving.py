"""ctloop serve against the servers its users would otherwise deploy, tuned, and the floor.

    .venv/bin/python bench/bench_serving.py [--seconds 5] [--rounds 3] [--cold 5]
        [--skip-mlflow] [--log-off-too]

One 200-tree LightGBM model on seven numeric flights columns (so one Open
Inference Protocol body fits every server: a single FP64 tensor ``[n, 7]``),
served by

- ``ctloop serve``, request log on, compiled trees (``[ctloop.serving]
  compiled = true``; compiled before the run, as it is once per version);
- Seldon MLServer 1.7.1 with ``mlserver-lightgbm`` (``uvloop<0.22``: 1.7.1's
  inference worker crash-loops with newer uvloop), inference in the server
  process (``parallel_workers = 0``), access log off (``debug = false``);
- KServe 0.21's Python server with a ``kserve.Model`` that loads the booster
  as KServe's lgbserver does (``lgb.Booster(params={"num_threads": 1},
  model_file=...)``), latency and access logging off;
- MLflow 3.17.2 ``models serve`` as before (its own ``dataframe_records`` body);

each with ``OMP_NUM_THREADS=1`` and uvicorn's C parser (``httptools``) in a
venv of its own (``ctloop.testing.peers``, cached between runs).
``--log-off-too`` adds ctloop with its request log off.

Every server's answers to the 1-, 2- and 100-row bodies are checked against
the booster in this process (1e-9 relative) before anything is timed. Each
block (scenario x round) runs the servers in alternating order and prints as
it finishes, with the load average; at the end come the medians, the ratios
against the best tuned peer (MLServer or KServe), and the raw predict floor
measured in this process (LightGBM's predict and the compiled trees, one
thread, CPU per call). Cold start is spawn to the first correct answer,
median of ``--cold``, interleaved; RSS is the server's process group right after
the load (ctloop's writer may still be publishing the last second), then once idle,
with the sum of each process's peak (``VmHWM``). The machine is shared: quote ratios
measured side by side.

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
import shutil
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
from typing import Any

import httpx
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import Result, load

from ctloop.core.net import free_port
from ctloop.testing.peers import Peer, ensure_peer

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
    from ctloop.examples.flights.data import flights

    store, _, _ = _serve_flights(root, flights([1, 2]), FEATURES, trees=100)
    store.close()
    return root / "model"


def _serve_flights(root: Path, data: pd.DataFrame, features: list[str], *, trees: int
                   ) -> tuple[Any, Any, Any]:
    """Train LightGBM on ``data`` into ``root/model`` and register it as ``flights@champion``
    in a project under ``root/.ctloop``; the open metadata store, artifact store, registry."""
    from ctloop.artifacts import open_artifact_store
    from ctloop.metadata import ArtifactRecord, new_id, open_metadata_store
    from ctloop.models import fit_model
    from ctloop.registry import ModelRegistry

    home = root / ".ctloop"
    home.mkdir(parents=True)
    fit_model(data, label="delayed", features=features, algorithm="lightgbm",
              params={"n_estimators": trees, "n_jobs": 1}).save(root / "model")
    store = open_metadata_store(f"sqlite:///{home / 'metadata.db'}")
    artifacts = open_artifact_store((home / "artifacts").as_uri())
    stored = artifacts.put(root / "model")
    art = store.add_artifact(
        ArtifactRecord(new_id(), "Model", stored.uri, stored.sha256, stored.size)
    )
    registry = ModelRegistry(store, actor="bench")
    registry.register("flights", art.id)
    registry.promote("flights", 1)
    return store, artifacts, registry


@dataclass
class Server:
    name: str
    command: list[str]
    env: dict[str, str]
    cwd: Path
    ready: str  # path answering 200 once the model is loaded
    predict: str
    body: Callable[[Any], bytes]
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    errors: Any = None  # the server's stderr file

    def start(self) -> float:
        """Launch; seconds until the ready path answered 200."""
        self.port = free_port()
        ports = {"{port}": str(self.port), "{port2}": str(free_port()),
                 "{port3}": str(free_port())}

        def fill(text: str) -> str:
            for key, value in ports.items():
                text = text.replace(key, value)
            return text

        command = [fill(c) for c in self.command]
        env = {k: fill(v) for k, v in self.env.items()}
        began = time.perf_counter()
        # A file, not a pipe: a server that logs per request would block on a full pipe.
        self.errors = (self.cwd / f".{self.name}.stderr").open("w+")
        self.proc = subprocess.Popen(command, cwd=self.cwd, env=env,
                                     stdout=subprocess.DEVNULL, stderr=self.errors,
                                     start_new_session=True)
        deadline = began + 120
        while time.perf_counter() < deadline:
            try:
                if httpx.get(self.url(self.ready), timeout=1).status_code == 200:
                    return time.perf_counter() - began
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                self.errors.seek(0)
                stderr = self.errors.read()
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


NUMERIC = ["month", "day", "hour", "minute", "distance", "sched_dep_time", "sched_arr_time"]
TREES = 200
TUNED = {"OMP_NUM_THREADS": "1"}
MLSERVER = Peer(
    "mlserver-1.7.1-lightgbm",
    ("mlserver==1.7.1", "mlserver-lightgbm==1.7.1", "uvloop<0.22", "lightgbm==4.7.0",
     "httptools"),
    "import mlserver, mlserver_lightgbm, lightgbm, httptools, uvloop\n",
)
KSERVE_SERVER = Peer(
    "kserve-0.21.0-lightgbm",
    ("kserve==0.21.0", "lightgbm==4.7.0", "httptools", "uvloop"),
    "import kserve, lightgbm, httptools\n",
)
KSERVE_MODEL = '''
import argparse, logging
import lightgbm as lgb
import kserve
from kserve import InferRequest, Model, ModelServer
from kserve.utils.utils import get_predict_response

parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
parser.add_argument("--model_path", required=True)
args, _ = parser.parse_known_args()


class Flights(Model):  # KServe's lgbserver, reading one [n, k] tensor for v2
    def __init__(self, name, path):
        super().__init__(name)
        self.path = path
        self.load()

    def load(self):
        self._booster = lgb.Booster(params={"num_threads": 1}, model_file=self.path)
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None):
        if isinstance(payload, InferRequest):
            instances = payload.inputs[0].as_numpy()
        else:
            instances = payload["instances"]
        return get_predict_response(payload, self._booster.predict(instances), self.name)


if __name__ == "__main__":
    server = ModelServer(enable_latency_logging=False)
    # per-request logs off: uvicorn's access log, and KServe's request timings (always on)
    for name in ("uvicorn.access", "kserve.trace"):
        logging.getLogger(name).setLevel(logging.WARNING)
    server.start([Flights(args.model_name, args.model_path)])
'''


def setup_numeric(root: Path) -> tuple[Path, pd.DataFrame]:
    """The ctloop project serving ``flights`` (compiled object cached); model folder, sample."""
    from ctloop.examples.flights.data import flights
    from ctloop.models.compiled import compile_predictor
    from ctloop.models.compiled_cache import VersionCompiledCache

    data = flights([1, 2])
    data[NUMERIC] = data[NUMERIC].astype("float64")
    store, artifacts, registry = _serve_flights(root, data, NUMERIC, trees=TREES)
    started = time.perf_counter()
    loaded = registry.load("flights:1")
    if compile_predictor(loaded, VersionCompiledCache(store, artifacts, "flights", 1)) is None:
        print("note: no compiled trees here (pip install 'ctloop[compiled]'); ctloop runs "
              "on LightGBM's predict")
    else:
        print(f"compiled the model once: {time.perf_counter() - started:.1f} s")
    store.close()
    (root / "ctloop.toml").write_text("[ctloop.serving]\ncompiled = true\n")
    (root / "nolog").mkdir()
    (root / "nolog" / "ctloop.toml").write_text(
        '[ctloop.serving]\ncompiled = true\nprediction_log = ""\n')
    sample = flights([3]).head(100)[NUMERIC].astype("float64").reset_index(drop=True)
    return root / "model", sample


def v2_body(frame: pd.DataFrame) -> bytes:
    """One FP64 ``[n, k]`` tensor in the model's column order: every v2 server reads it."""
    matrix = frame[NUMERIC].to_numpy(dtype="float64")
    return json.dumps({"inputs": [{"name": "input-0", "shape": list(matrix.shape),
                                   "datatype": "FP64", "data": matrix.ravel().tolist()}]}).encode()


def answer_of(server: str, body: dict[str, Any]) -> list[float]:
    """The positive-class probabilities in a server's answer."""
    if server == "mlflow":
        predictions = body["predictions"]
        return [float(p) for p in predictions]
    outputs = {o["name"]: o for o in body["outputs"]}
    chosen = outputs.get("prediction") if server.startswith("ctloop") else body["outputs"][0]
    if chosen is None:
        raise RuntimeError(f"{server}: no 'prediction' output in {sorted(outputs)}")
    return [float(v) for v in chosen["data"]]


def bytecode_cached(env: dict[str, str], root: Path) -> dict[str, str]:
    """``env`` with Python's bytecode cached under ``root``, as an installed package has it
    (the peers' venvs do): a ``PYTHONDONTWRITEBYTECODE=1`` shell would otherwise make ctloop
    compile every module from source on every start (~0.2 s of CPU per cold start)."""
    out = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
    return out


def peer_servers(root: Path, model: Path, mlflow_python: Path | None,
                 log_off_too: bool) -> list[Server]:
    env = bytecode_cached({**os.environ, **TUNED, "CTLOOP_HOME": str(root / ".ctloop")}, root)
    ctloop_cmd = [str(Path(sys.executable).parent / "ctloop"), "serve", "flights", "--port",
                  "{port}", "--log-level", "warning", "--reload-interval", "0"]
    v2 = "/v2/models/flights/infer"
    out = [Server("ctloop", ctloop_cmd, env, root, "/ready", v2, v2_body)]
    if log_off_too:
        out.append(Server("ctloop-nolog", ctloop_cmd, env, root / "nolog", "/ready", v2,
                          v2_body))
    mlserver = ensure_peer(MLSERVER)
    folder = root / "mlserver"
    folder.mkdir()
    shutil.copy(model / "model.txt", folder / "model.bst")
    (folder / "model-settings.json").write_text(json.dumps({
        "name": "flights", "implementation": "mlserver_lightgbm.LightGBMModel",
        "parameters": {"uri": "./model.bst"}}))
    (folder / "settings.json").write_text(json.dumps({"debug": False, "parallel_workers": 0}))
    mlserver_env = {**os.environ, **TUNED, "MLSERVER_HTTP_PORT": "{port}",
                    "MLSERVER_GRPC_PORT": "{port2}", "MLSERVER_METRICS_PORT": "{port3}"}
    out.append(Server("mlserver", [str(mlserver.parent / "mlserver"), "start", str(folder)],
                      mlserver_env, folder, "/v2/models/flights/ready", v2, v2_body))
    kserve = ensure_peer(KSERVE_SERVER)
    script = root / "kserve_flights.py"
    script.write_text(KSERVE_MODEL)
    out.append(Server(
        "kserve", [str(kserve), str(script), "--model_name", "flights", "--model_path",
                   str(model / "model.txt"), "--http_port", "{port}", "--grpc_port", "{port2}",
                   "--enable_grpc", "false", "--enable_latency_logging", "false"],
        {**os.environ, **TUNED}, root, "/v2/models/flights/ready", v2, v2_body))
    if mlflow_python is not None:
        exported = root / "mlflow-model"
        code = EXPORT % {"categorical": []}
        subprocess.run([str(mlflow_python), "-c", code, str(model / "model.txt"),
                        str(exported)], check=True, capture_output=True)
        mlflow_env = {**os.environ, **TUNED, "MLFLOW_TRACKING_URI": (root / "mlruns").as_uri(),
                      "PATH": f"{mlflow_python.parent}:{os.environ.get('PATH', '')}"}
        out.append(Server(
            "mlflow", [str(mlflow_python.parent / "mlflow"), "models", "serve", "-m",
                       str(exported), "--port", "{port}", "--env-manager", "local"],
            mlflow_env, root, "/ping", "/invocations",
            lambda frame: json.dumps({"dataframe_records": frame.to_dict("records")}).encode(),
        ))
    return out


def check_answers(server: Server, frames: list[pd.DataFrame], booster: Any) -> float:
    """Seconds to the first correct answer; RuntimeError when an answer is not the booster's."""
    began = time.perf_counter()
    for frame in frames:
        answer = httpx.post(server.url(server.predict), content=server.body(frame),
                            headers={"Content-Type": "application/json"}, timeout=30)
        if answer.status_code != 200:
            raise RuntimeError(f"{server.name}: {answer.status_code} {answer.text[:300]}")
        got = np.asarray(answer_of(server.name, answer.json()))
        expected = booster.predict(frame[NUMERIC].to_numpy(dtype="float64"), num_threads=1)
        if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-9, atol=0):
            raise RuntimeError(f"{server.name} answers {got[:3]}, the booster {expected[:3]}")
    return time.perf_counter() - began


def rss_mb(server: Server, field: str = "VmRSS") -> float:
    """Resident memory of the server's process group (``VmHWM``: each process's peak)."""
    assert server.proc is not None
    total = 0
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != server.proc.pid:
                continue
            for line in (status.parent / "status").read_text().splitlines():
                if line.startswith(f"{field}:"):
                    total += int(line.split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1024


def floor(model: Path, sample: pd.DataFrame, seconds: float) -> dict[str, dict[str, float]]:
    """CPU ms per predict call in this process: LightGBM's and the compiled trees', one thread."""
    import lightgbm

    from ctloop.models.compiled import MemoryCompiledCache, compile_predictor
    from ctloop.models.flavors import load_model

    booster = lightgbm.Booster(model_file=str(model / "model.txt"))
    loaded = load_model(model)
    compiled = compile_predictor(loaded, MemoryCompiledCache())
    out: dict[str, dict[str, float]] = {}
    for label, rows in (("1 row", 1), ("100 rows", 100)):
        x = sample[NUMERIC].head(rows).to_numpy(dtype="float64")
        calls: dict[str, Callable[[], object]] = {
            "lightgbm": partial(booster.predict, x, num_threads=1)}
        if compiled is not None:
            calls["compiled"] = partial(compiled.predict, x)
        for name, call in calls.items():
            call()
            n, cpu0, end = 0, time.process_time(), time.perf_counter() + seconds / 4
            while time.perf_counter() < end:
                call()
                n += 1
            out.setdefault(label, {})[name] = (time.process_time() - cpu0) * 1000 / n
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cold", type=int, default=5, help="cold starts per server")
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument("--log-off-too", action="store_true",
                        help="also ctloop with its request log off")
    parser.add_argument("--grpc", action="store_true",
                        help="gRPC vs HTTP v2 on one ctloop server, instead of the peers")
    args = parser.parse_args()
    if args.grpc:
        compare_grpc(args.seconds, args.rounds)
        return
    import lightgbm

    mlflow_python = None if args.skip_mlflow else ensure_mlflow()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model, sample = setup_numeric(root)
        booster = lightgbm.Booster(model_file=str(model / "model.txt"))
        scenarios = {"1 row, c=1": (sample.head(1), 1), "1 row, c=32": (sample.head(1), 32),
                     "100 rows, c=1": (sample, 1)}
        targets = peer_servers(root, model, mlflow_python, args.log_off_too)
        results: dict[tuple[str, str], list[tuple[Result, float]]] = {}
        cold: dict[str, list[float]] = {}
        rss: dict[str, float] = {}  # right after the load, as before
        settled: dict[str, tuple[float, float]] = {}  # once idle (RSS), and each process's peak
        try:
            for server in targets:  # untimed: bytecode cached, files in the page cache
                server.start()
                check_answers(server, [sample.head(1)], booster)
                server.stop()
            for n in range(args.cold):  # spawn -> first correct answer, interleaved
                for server in targets if n % 2 == 0 else targets[::-1]:
                    began = time.perf_counter()
                    server.start()
                    check_answers(server, [sample.head(1)], booster)
                    cold.setdefault(server.name, []).append(time.perf_counter() - began)
                    server.stop()
            for server in targets:
                server.start()
                check_answers(server, [sample.head(1), sample.head(2), sample], booster)
            print(f"\nevery server answers as the booster (1e-9 rel): "
                  f"{', '.join(s.name for s in targets)}")
            for label, (frame, concurrency) in scenarios.items():
                for n in range(args.rounds):
                    order = targets if n % 2 == 0 else targets[::-1]
                    line = []
                    for server in order:
                        result, cpu = measure_body(server, server.body(frame), concurrency,
                                                   args.seconds)
                        results.setdefault((label, server.name), []).append((result, cpu))
                        line.append(f"{server.name} {result.rps:.0f}/s p99 "
                                    f"{result.p99_ms:.1f}ms {cpu:.2f}cpu-ms")
                    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
                    print(f"[{label} round {n + 1}] load {load} | " + " | ".join(line),
                          flush=True)
            for server in targets:
                rss[server.name] = rss_mb(server)
            for server in targets:  # a writer publishing the last second's load holds more
                settle(server)
                settled[server.name] = (rss_mb(server), rss_mb(server, "VmHWM"))
        finally:
            for server in targets:
                server.stop()
        floors = floor(model, sample, args.seconds)
    report_peers(targets, scenarios, results, cold, rss, floors)
    print("RSS once idle after the load (MB), and the sum of each process's peak: " + "   ".join(
        f"{name} {now:.0f} (peak {peak:.0f})" for name, (now, peak) in settled.items()))
    if "kserve" in settled:
        print(f"RSS once idle: ctloop - kserve {settled['ctloop'][0] - settled['kserve'][0]:+.0f} "
              "MB")


def measure_body(server: Server, body: bytes, concurrency: int,
                 seconds: float) -> tuple[Result, float]:
    settle(server)
    cpu = server.cpu_seconds()
    result = load(server.url(server.predict), body, concurrency=concurrency, seconds=seconds)
    cpu_ms = (server.cpu_seconds() - cpu) * 1000 / max(result.requests, 1)
    if result.errors:
        raise RuntimeError(f"{server.name}: {result.errors} failed requests")
    return result, cpu_ms


def report_peers(targets: list[Server], scenarios: dict[str, object],
                 results: dict[tuple[str, str], list[tuple[Result, float]]],
                 cold: dict[str, list[float]], rss: dict[str, float],
                 floors: dict[str, dict[str, float]]) -> None:
    med = statistics.median
    print(f"\n{'scenario':<15} {'server':<13} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'p99/p50':>8} {'cpu ms/req':>10}   (median of rounds)")
    for label in scenarios:
        for server in targets:
            runs = results[(label, server.name)]
            p50, p99 = med(r.p50_ms for r, _ in runs), med(r.p99_ms for r, _ in runs)
            print(f"{label:<15} {server.name:<13} {med(r.rps for r, _ in runs):>8.0f} "
                  f"{p50:>8.2f} {p99:>8.2f} {p99 / p50:>8.1f} {med(c for _, c in runs):>10.2f}")
    for server in targets:
        times = cold[server.name]
        print(f"cold start      {server.name:<13} {med(times):.2f} s "
              f"(runs: {', '.join(f'{t:.2f}' for t in times)})   RSS {rss[server.name]:.0f} MB")
    for label, by in floors.items():
        print(f"floor {label:<9} " + "   ".join(f"{k} {v:.3f} cpu-ms/call" for k, v in by.items()))
    peers = [s.name for s in targets if s.name in ("mlserver", "kserve")]
    if not peers:
        return
    print("\nctloop / best tuned peer (per round; req/s higher is better, p99 and cpu lower)")
    for label in scenarios:
        best = max(peers, key=lambda p: med(r.rps for r, _ in results[(label, p)]))
        pairs = list(zip(results[(label, "ctloop")], results[(label, best)], strict=True))
        rps = [a.rps / b.rps for (a, _), (b, _) in pairs]
        p99 = [a.p99_ms / b.p99_ms for (a, _), (b, _) in pairs]
        cpu = [a / b for (_, a), (_, b) in pairs]
        print(f"{label:<15} vs {best:<8} req/s {med(rps):.2f}x "
              f"[{', '.join(f'{r:.2f}' for r in rps)}]   p99 {med(p99):.2f}x   "
              f"cpu/req {med(cpu):.2f}x")
    best_cold = min(peers, key=lambda p: med(cold[p]))
    print(f"cold start      vs {best_cold:<8} {med(cold['ctloop']) / med(cold[best_cold]):.2f}x"
          f"   RSS ctloop - kserve {rss['ctloop'] - rss.get('kserve', 0):+.0f} MB")
    if "ctloop-nolog" in cold:
        for label in scenarios:
            on, off = results[(label, "ctloop")], results[(label, "ctloop-nolog")]
            ratio = [a.rps / b.rps for (a, _), (b, _) in zip(on, off, strict=True)]
            print(f"log on/off      {label:<15} req/s {med(ratio):.2f}x")
    for label, rows in (("1 row, c=1", "1 row"), ("100 rows, c=1", "100 rows")):
        cpu = med(c for _, c in results[(label, "ctloop")])
        base = floors[rows].get("compiled", floors[rows]["lightgbm"])
        print(f"ctloop cpu/req vs floor {label:<14} {cpu / base:.1f}x (floor {base:.3f} ms)")


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
