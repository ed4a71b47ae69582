"""Serving every task and flavor: multiclass LightGBM, a scikit-learn Pipeline, ONNX.

    .venv/bin/python bench/bench_tasks_serving.py [--seconds 4] [--rounds 3]
        [--skip-mlserver] [--compiled-off-too]

One ``ctloop serve`` process (``compiled = "auto"``, the default, with the
compiled trees already cached as a restarted server finds them; request log on,
as ``bench_serving.py`` runs it) serves four models fitted here on seven numeric
flights columns (January-February 2013):

- ``binary``: LightGBM, delayed or not, 100 iterations: the binary path, the
  reference every other model is compared with;
- ``multiclass``: LightGBM, four arrival classes (early, on time, late, very
  late), 100 iterations (400 trees);
- ``pipeline``: a scikit-learn Pipeline (StandardScaler, LogisticRegression)
  on the same four classes;
- ``onnx``: that Pipeline converted by skl2onnx (one FP32 ``[N, 7]`` input).

Every request is the same Open Inference Protocol body (one FP64 tensor
``[n, 7]``), for 1 row at concurrency 1 and 32 and 100 rows at concurrency 1.
Seldon MLServer 1.7.1 with ``mlserver-lightgbm`` (tuned as in
``bench_serving.py``: in-process inference, access log off, one OpenMP thread)
serves the multiclass booster over the same body. ``--compiled-off-too`` adds a
second ``ctloop serve`` of the multiclass model with ``compiled = false``
(LightGBM's own predict), interleaved with the others.

Before anything is timed, every answer to 1, 2 and 100 rows is checked against
the library in this process (1e-9). Each round runs every target in
alternating order and prints as it ends, with the load average. At the end:
medians; the floor, CPU per call of the model's own library in this process,
one thread (LightGBM's predict, and the compiled trees the service scores
with; ``predict_proba`` on a NumPy matrix, and the row path's ``lean_call`` of
it that the service runs: for this Pipeline scikit-learn's arithmetic without its
per-step checks, ``models.sklearn_kernels``; ``InferenceSession.run``); each model's overhead
(server CPU per request minus the floor of the scorer it runs) against the
binary path's; and the multiclass model against MLServer (aim: at least 2x its
requests per second and at most 0.5x its p99), per case with the 1-minute load
average of its rounds. The machine is shared: quote ratios measured in one
run, with the load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serving import MLSERVER, TUNED, Server, settle
from loadgen import Result, load

from ctloop.testing.peers import ensure_peer

NUMERIC = ["month", "day", "hour", "minute", "distance", "sched_dep_time", "sched_arr_time"]
CLASSES = ["early", "on time", "late", "very late"]
MODELS = ("binary", "multiclass", "pipeline", "onnx")
ITERATIONS = 100
V2 = "/v2/models/{name}/infer"
OFF = "ctloop multiclass off"  # the multiclass model served with compiled = false


@dataclass
class Fitted:
    """One served model: how to score a float64 matrix in this process, and its floors."""

    name: str
    expected: Callable[[np.ndarray], np.ndarray]  # the library's answer (what v2 returns)
    output: str  # the v2 output holding it
    floors: dict[str, Callable[[np.ndarray], object]]  # scorer name -> raw call
    served_by: str  # the floor the service runs on


def arrival_class(delay: pd.Series) -> np.ndarray:
    bins = np.digitize(delay.to_numpy(dtype=float), [-10.0, 15.0, 60.0])
    return np.asarray(CLASSES, dtype=object)[bins]


def setup(root: Path) -> tuple[dict[str, Fitted], pd.DataFrame, Path]:
    """The project with the four models registered; the fitted models, a sample, the booster."""
    import lightgbm
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ctloop.artifacts import open_artifact_store
    from ctloop.examples.flights.data import flights
    from ctloop.metadata import ArtifactRecord, new_id, open_metadata_store
    from ctloop.models import Signature, fit_model, save_model
    from ctloop.models.compiled import compile_predictor
    from ctloop.models.compiled_cache import VersionCompiledCache
    from ctloop.models.flavor_onnx import OnnxModel
    from ctloop.models.flavors import lean_call, numpy_estimator
    from ctloop.registry import ModelRegistry

    home = root / ".ctloop"
    home.mkdir(parents=True)
    data = flights([1, 2])
    data[NUMERIC] = data[NUMERIC].astype("float64")
    data["arrival"] = arrival_class(data["arr_delay"])
    params = {"n_estimators": ITERATIONS, "n_jobs": 1}
    fit_model(data, label="delayed", features=NUMERIC, algorithm="lightgbm",
              params=params).save(root / "binary")
    fit_model(data, label="arrival", features=NUMERIC, algorithm="lightgbm", params=params,
              task="multiclass").save(root / "multiclass")
    signature = Signature.from_frame(data, NUMERIC)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
        data[NUMERIC], data["arrival"])
    save_model(pipe, root / "pipeline", signature=signature, task="multiclass")
    floats = data[NUMERIC].astype("float32")
    pipe32 = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
        floats, data["arrival"])
    graph = to_onnx(pipe32, floats.to_numpy()[:1], target_opset=17,
                    options={id(pipe32): {"zipmap": False}})
    save_model(graph, root / "onnx", signature=signature, flavor="onnx", task="multiclass")

    store = open_metadata_store(f"sqlite:///{home / 'metadata.db'}")
    artifacts = open_artifact_store((home / "artifacts").as_uri())
    registry = ModelRegistry(store, actor="bench")
    for name in MODELS:
        stored = artifacts.put(root / name)
        art = store.add_artifact(
            ArtifactRecord(new_id(), "Model", stored.uri, stored.sha256, stored.size))
        registry.register(name, art.id)
        registry.promote(name, 1)
    compiled_of: dict[str, Any] = {}
    for name in ("binary", "multiclass"):  # once per version, as the service would
        loaded = registry.load(f"{name}:1")
        compiled_of[name] = compile_predictor(
            loaded, VersionCompiledCache(store, artifacts, name, 1))
        if compiled_of[name] is None:
            print(f"note: {name} has no compiled trees here (pip install 'ctloop[compiled]')")
    store.close()
    (root / "ctloop.toml").write_text('[ctloop.serving]\ncompiled = "auto"\n')

    fitted: dict[str, Fitted] = {}
    for name in ("binary", "multiclass"):
        booster = lightgbm.Booster(model_file=str(root / name / "model.txt"))
        compiled = compiled_of[name]  # the object the service loads from the cache
        floors: dict[str, Callable[[np.ndarray], object]] = {
            "lightgbm": partial(booster.predict, num_threads=1)}
        if compiled is not None:
            floors["compiled"] = compiled.predict
        fitted[name] = Fitted(name, partial(booster.predict, num_threads=1),
                              "prediction" if name == "binary" else "probabilities", floors,
                              "compiled" if compiled is not None else "lightgbm")
    # the Pipeline as the service holds it: without feature names, so a matrix draws no
    # warning (the fitted arrays are the same objects)
    unnamed = numpy_estimator(pipe, signature)
    fitted["pipeline"] = Fitted("pipeline", unnamed.predict_proba, "probabilities",
                                {"sklearn": unnamed.predict_proba,
                                 "lean": lean_call(unnamed, "predict_proba")}, "lean")
    session = OnnxModel.from_bytes((root / "onnx" / "model.onnx").read_bytes()).session
    input_name = session.get_inputs()[0].name

    def run_onnx(x: np.ndarray) -> np.ndarray:
        (probabilities,) = session.run(["probabilities"],
                                       {input_name: x.astype(np.float32)})
        return np.asarray(probabilities, dtype=np.float64)

    fitted["onnx"] = Fitted("onnx", run_onnx, "probabilities", {"onnxruntime": run_onnx},
                            "onnxruntime")
    sample = flights([3]).head(100)[NUMERIC].astype("float64").reset_index(drop=True)
    return fitted, sample, root / "multiclass" / "model.txt"


def v2_body(frame: pd.DataFrame) -> bytes:
    """One FP64 ``[n, 7]`` tensor: ctloop and MLServer read the same body."""
    matrix = frame[NUMERIC].to_numpy(dtype="float64")
    return json.dumps({"inputs": [{"name": "input-0", "shape": list(matrix.shape),
                                   "datatype": "FP64", "data": matrix.ravel().tolist()}]}).encode()


@dataclass
class Target:
    """One (server, model) pair under load."""

    label: str
    server: Server
    path: str
    model: Fitted


def check(target: Target, frames: list[pd.DataFrame]) -> None:
    """Every answer equals the library's in this process (1e-9), or RuntimeError."""
    for frame in frames:
        got = httpx.post(target.server.url(target.path), content=v2_body(frame),
                         headers={"Content-Type": "application/json"}, timeout=60)
        if got.status_code != 200:
            raise RuntimeError(f"{target.label}: {got.status_code} {got.text[:300]}")
        outputs = {o["name"]: o for o in got.json()["outputs"]}
        output = outputs.get(target.model.output) if target.server.name == "ctloop" else (
            got.json()["outputs"][0])
        if output is None:
            raise RuntimeError(f"{target.label}: no {target.model.output!r} in {list(outputs)}")
        values = np.reshape(np.asarray(output["data"], dtype=float), output["shape"])
        expected = target.model.expected(frame[NUMERIC].to_numpy(dtype="float64"))
        if values.shape != expected.shape or not np.allclose(values, expected, rtol=1e-9,
                                                             atol=1e-12):
            raise RuntimeError(f"{target.label} answers {values[:1]}, the library "
                               f"{expected[:1]}")


def floor_ms(call: Callable[[np.ndarray], object], x: np.ndarray, seconds: float) -> float:
    """CPU milliseconds per call, one thread, after a warm-up."""
    call(x)
    n, cpu0, end = 0, time.process_time(), time.perf_counter() + seconds
    while time.perf_counter() < end:
        call(x)
        n += 1
    return (time.process_time() - cpu0) * 1000 / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-mlserver", action="store_true")
    parser.add_argument("--compiled-off-too", action="store_true",
                        help="also serve the multiclass model with compiled = false")
    args = parser.parse_args()
    print("load average at start:", " ".join(f"{x:.1f}" for x in os.getloadavg()))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        fitted, sample, booster_file = setup(root)
        env = {**os.environ, **TUNED, "CTLOOP_HOME": str(root / ".ctloop")}
        ctloop = Server("ctloop", [str(Path(sys.executable).parent / "ctloop"), "serve",
                                   "--port", "{port}", "--log-level", "warning",
                                   "--reload-interval", "0"],
                        env, root, "/ready", V2.format(name="binary"), v2_body)
        servers = [ctloop]
        targets = [Target(f"ctloop {m}", ctloop, V2.format(name=m), fitted[m]) for m in MODELS]
        if args.compiled_off_too:
            off = root / "off"  # the same registry, a request log of its own
            off.mkdir()
            (off / "ctloop.toml").write_text(
                f'[ctloop.serving]\ncompiled = false\nprediction_log = "{off / "log"}"\n')
            ctloop_off = Server("ctloop", [*ctloop.command[:2], "multiclass", *ctloop.command[2:]],
                                env, off, "/ready", V2.format(name="multiclass"), v2_body)
            servers.append(ctloop_off)
            targets.append(Target(OFF, ctloop_off, V2.format(name="multiclass"),
                                  replace(fitted["multiclass"], served_by="lightgbm")))
        if not args.skip_mlserver:
            mlserver = mlserver_server(root, booster_file)
            servers.append(mlserver)
            targets.append(Target("mlserver multiclass", mlserver,
                                  V2.format(name="multiclass"), fitted["multiclass"]))
        scenarios = {"1 row, c=1": (sample.head(1), 1), "1 row, c=32": (sample.head(1), 32),
                     "100 rows, c=1": (sample, 1)}
        results: dict[tuple[str, str], list[tuple[Result, float]]] = {}
        loads: dict[str, list[float]] = {}
        try:
            for server in servers:
                server.start()
            for target in targets:
                check(target, [sample.head(1), sample.head(2), sample])
            print("every target answers as its library in this process (1e-9): "
                  + ", ".join(t.label for t in targets))
            for label, (frame, concurrency) in scenarios.items():
                body = v2_body(frame)
                for n in range(args.rounds):
                    line = []
                    for target in targets if n % 2 == 0 else targets[::-1]:
                        settle(target.server)
                        cpu = target.server.cpu_seconds()
                        result = load(target.server.url(target.path), body,
                                      concurrency=concurrency, seconds=args.seconds)
                        if result.errors:  # non-200 or dropped: shown, never hidden
                            print(f"WARNING {target.label} [{label}]: {result.errors} of "
                                  f"{result.requests + result.errors} requests failed",
                                  flush=True)
                        cpu_ms = (target.server.cpu_seconds() - cpu) * 1000 / max(
                            result.requests, 1)
                        results.setdefault((label, target.label), []).append((result, cpu_ms))
                        line.append(f"{target.label} {result.rps:.0f}/s p99 "
                                    f"{result.p99_ms:.1f}ms")
                    load_avg = " ".join(f"{x:.1f}" for x in os.getloadavg())
                    loads.setdefault(label, []).append(os.getloadavg()[0])
                    print(f"[{label} round {n + 1}] load {load_avg} | " + " | ".join(line),
                          flush=True)
        finally:
            for server in servers:
                server.stop()
        floors = {
            (rows, name, scorer): floor_ms(call, sample.head(rows)[NUMERIC].to_numpy(
                dtype="float64"), max(args.seconds / 4, 0.5))
            for rows in (1, 100) for name, model in fitted.items()
            for scorer, call in model.floors.items()
        }
    report(targets, scenarios, results, floors, loads)
    print("load average at end:", " ".join(f"{x:.1f}" for x in os.getloadavg()))


def mlserver_server(root: Path, booster_file: Path) -> Server:
    """MLServer serving the multiclass booster, tuned as ``bench_serving.py`` tunes it."""
    python = ensure_peer(MLSERVER)
    folder = root / "mlserver"
    folder.mkdir()
    shutil.copy(booster_file, folder / "model.bst")
    (folder / "model-settings.json").write_text(json.dumps({
        "name": "multiclass", "implementation": "mlserver_lightgbm.LightGBMModel",
        "parameters": {"uri": "./model.bst"}}))
    (folder / "settings.json").write_text(json.dumps({"debug": False, "parallel_workers": 0}))
    env = {**os.environ, **TUNED, "MLSERVER_HTTP_PORT": "{port}",
           "MLSERVER_GRPC_PORT": "{port2}", "MLSERVER_METRICS_PORT": "{port3}"}
    return Server("mlserver", [str(python.parent / "mlserver"), "start", str(folder)], env,
                  folder, "/v2/models/multiclass/ready", V2.format(name="multiclass"), v2_body)


def report(targets: list[Target], scenarios: dict[str, Any],
           results: dict[tuple[str, str], list[tuple[Result, float]]],
           floors: dict[tuple[int, str, str], float], loads: dict[str, list[float]]) -> None:
    med = statistics.median

    def load(label: str) -> str:
        return f"load {min(loads[label]):.1f}-{max(loads[label]):.1f}"
    print(f"\n{'scenario':<14} {'target':<20} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'cpu ms/req':>10} {'floor ms':>9} {'overhead':>9}   (median of rounds)")
    overhead: dict[tuple[str, str], float] = {}
    for label in scenarios:
        rows = 100 if label.startswith("100") else 1
        for target in targets:
            runs = results[(label, target.label)]
            cpu = med(c for _, c in runs)
            base = floors[(rows, target.model.name, target.model.served_by)]
            if target.label == f"ctloop {target.model.name}":
                overhead[(label, target.model.name)] = cpu - base
            print(f"{label:<14} {target.label:<20} {med(r.rps for r, _ in runs):>7.0f} "
                  f"{med(r.p50_ms for r, _ in runs):>7.2f} {med(r.p99_ms for r, _ in runs):>7.2f}"
                  f" {cpu:>10.3f} {base:>9.3f} {cpu - base:>9.3f}")
    print("\nfloor, CPU ms per call in this process, one thread:")
    for (rows, name, scorer), ms in floors.items():
        print(f"  {rows:>3} row(s) {name:<11} {scorer:<12} {ms:.3f}")
    print("\nvs the binary path of the same service (per-round ratios, median; overhead: "
          "server cpu/req minus the model's floor, ms)")
    for label in scenarios:
        base = results[(label, "ctloop binary")]
        for name in MODELS[1:]:
            runs = results[(label, f"ctloop {name}")]
            rps = [a.rps / b.rps for (a, _), (b, _) in zip(runs, base, strict=True)]
            p99 = [a.p99_ms / b.p99_ms for (a, _), (b, _) in zip(runs, base, strict=True)]
            print(f"  {label:<14} {name:<11} req/s {med(rps):.2f}x  p99 {med(p99):.2f}x  "
                  f"overhead {overhead[(label, name)]:.3f} ms vs binary "
                  f"{overhead[(label, 'binary')]:.3f} ms  ({load(label)})")
    if not any(t.server.name == "mlserver" for t in targets):
        return
    ours_labels = ["ctloop multiclass", *(
        [OFF] if any(t.label == OFF for t in targets) else [])]
    for ours_label in ours_labels:
        print(f"\n{ours_label} / MLServer multiclass (aim: req/s >= 2x, p99 <= 0.5x)")
        _versus(scenarios, results, ours_label, "mlserver multiclass", load)
    if len(ours_labels) > 1:
        print("\nctloop multiclass compiled auto / compiled off")
        _versus(scenarios, results, "ctloop multiclass", OFF, load, aim=False)


def _versus(scenarios: dict[str, Any],
            results: dict[tuple[str, str], list[tuple[Result, float]]], ours_label: str,
            theirs_label: str, load: Callable[[str], str], *, aim: bool = True) -> None:
    """Per-round ratios of one target to another, medians; "met" against the 2x/0.5x aim."""
    med = statistics.median
    for label in scenarios:
        ours, theirs = results[(label, ours_label)], results[(label, theirs_label)]
        rps = [a.rps / b.rps for (a, _), (b, _) in zip(ours, theirs, strict=True)]
        p99 = [a.p99_ms / b.p99_ms for (a, _), (b, _) in zip(ours, theirs, strict=True)]
        cpu = [a / b for (_, a), (_, b) in zip(ours, theirs, strict=True)]
        met = ("met" if med(rps) >= 2 and med(p99) <= 0.5 else "NOT met") if aim else ""
        print(f"  {label:<14} req/s {med(rps):.2f}x [{', '.join(f'{r:.2f}' for r in rps)}]  "
              f"p99 {med(p99):.2f}x [{', '.join(f'{r:.2f}' for r in p99)}]  "
              f"cpu/req {med(cpu):.2f}x  {met}  ({load(label)})")


if __name__ == "__main__":
    main()
