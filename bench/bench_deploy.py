"""Deployment benchmark (issue 19): ctloop's exported image against MLflow's, same model,
same base image, measured in the same run.

For ctloop: the default export of a loop project with its first model's bundle
(``ctloop deploy export --model``), its image built without cache (time, size), then
``compose up`` of the whole deployment (PostgreSQL, Dask scheduler and workers, two
serving replicas, the controllers, the one-shot import of the first model) to the first
successful v2 prediction, polled from the moment ``compose up`` starts (the replicas
answer from the bundle while compose still starts the services that wait for them).
``--no-model`` times the export without a bundle: ``compose up``, then the import in a
container of its own as that export's README says (the way before issue 19's start work).
For MLflow: the same LightGBM booster saved with ``mlflow.lightgbm``, its Dockerfile
from ``mlflow models generate-dockerfile --env-manager local`` (what ``build-docker``
builds), built without cache (time, size), then ``docker run`` to the first successful
``/invocations``. MLflow runs from its own venv (``~/.cache/ctloop/peers/mlflow-bench``,
made on first use). Both start from the ``python:3.11-slim`` stand-in built from Debian
packages (``ctloop.testing.containers``; no registry here): MLflow's Dockerfile names
``python:X.Y.Z-slim`` after its venv's Python, so the stand-in is tagged with that name.

Run by hand (root, network to PyPI and Debian): ``python bench/bench_deploy.py [--starts 3]``;
the images are built once, then the starts of both alternate (median reported).
Prints the figures and the ratios MLflow / ctloop (above 1: ctloop smaller or faster).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from ctloop.testing.containers import ensure_engine, postgres_image, python_base_image
from ctloop.testing.peers import peers_root

MLFLOW = ("mlflow==3.17.2", "lightgbm", "pandas")
FEATURES = ("usage", "tenure", "spend", "plan")


def sh(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None,
       timeout: float = 3600) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed:\n{proc.stderr[-2000:]}")
    return proc.stdout


def ctloop(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTLOOP_")}
    return sh([sys.executable, "-m", "ctloop", *args], cwd=cwd, env=env)


def wait(check: Any, what: str, timeout: float = 900) -> float:
    """Seconds until ``check()`` is truthy (polled every 0.2 s)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if check():
                return time.monotonic() - start
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what}: not within {timeout:.0f} s")


def image_size(engine: str, image: str) -> int:
    return int(sh([engine, "image", "inspect", "-f", "{{.Size}}", image]).strip())


TAG = str(os.getpid())
REUSE = False  # --reuse: an image already built under this --tag is timed, not rebuilt
WITH_MODEL = True  # --no-model: export without the bundle, import after `compose up`


def build(engine: str, dockerfile: Path, image: str, context: Path) -> float:
    if REUSE and sh([engine, "image", "ls", "-q", image]).strip():
        return float("nan")
    sh([engine, "image", "rm", "-f", image])
    start = time.monotonic()
    sh([engine, "build", "--no-cache", "-f", str(dockerfile), "-t", image, str(context)])
    return time.monotonic() - start


def free_port(count: int = 1) -> int:
    """A port such that it and the ``count - 1`` after it are free (the replicas' ports)."""
    import socket

    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        try:
            for other in range(port + 1, port + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", other))
            return port
        except OSError:
            continue


def laptop(root: Path) -> tuple[Path, Path, dict[str, list[Any]]]:
    """A loop project with a champion trained on two spans, and its bundle."""
    ctloop(root, "init", "bench", "--template", "loop")
    project = root / "bench"
    spans = sorted((project / "landing").glob("*.parquet"))
    for span in spans[2:]:
        span.unlink()
    ctloop(project, "loop", "run", "bench", "--once")
    bundle = root / "bench.bundle"
    ctloop(project, "models", "export", "bench@champion", "-o", str(bundle))
    import pandas as pd

    frame = pd.read_parquet(spans[0]).head(2)
    return project, bundle, {c: frame[c].tolist() for c in FEATURES}


def ctloop_deployment(engine: str, project: Path, bundle: Path,
                      rows: dict[str, list[Any]]) -> tuple[dict[str, float], Any]:
    """Export and build; returns the build figures and a function timing one start."""
    port = free_port(2)  # two serving replicas, on port and port + 1
    with (project / "ctloop.toml").open("a") as fh:
        fh.write(f'\n[ctloop.deploy]\nname = "bench-{TAG}"\n'
                 f'base_image = "{python_base_image(engine)}"\n'
                 f'postgres_image = "{postgres_image(engine)}"\n')
    model = ["--model", str(bundle)] if WITH_MODEL else []
    ctloop(project, "deploy", "export", "deploy", "--port", str(port), *model)
    out = project / "deploy"
    image = f"ctloop-bench-{TAG}:latest"
    seconds = build(engine, out / "Dockerfile", image, project)
    compose = ["docker-compose"] if shutil.which("docker-compose") else [engine, "compose"]
    inputs = [{"name": c, "datatype": "BYTES" if c == "plan" else "FP64",
               "shape": [len(v)], "data": v} for c, v in rows.items()]
    url = f"http://127.0.0.1:{port}"

    def predicts() -> bool:
        return httpx.post(f"{url}/v2/models/bench/infer", json={"inputs": inputs},
                          timeout=10).status_code == 200

    def start() -> dict[str, float]:
        """``compose up`` on new volumes to the first v2 prediction of the first model."""
        try:
            began = time.monotonic()
            if not WITH_MODEL:  # compose up, then the import as that export's README says
                sh([*compose, "up", "-d"], cwd=out)
                wait(lambda: httpx.get(f"{url}/health", timeout=5).status_code == 200,
                     "ctloop serving /health")
                to_health = time.monotonic() - began
                sh([*compose, "run", "--rm", "--no-deps", "-T", "-v",
                    f"{bundle}:/tmp/b.bundle:ro", "controller", "ctloop", "models",
                    "import-bundle", "/tmp/b.bundle", "--alias", "champion"], cwd=out)
                wait(predicts, "ctloop first prediction")
                return {"up_to_health_s": to_health,
                        "up_to_prediction_s": time.monotonic() - began}
            # compose 1.x returns from `up -d` once the services that wait for the
            # replicas have started too: poll the replicas meanwhile, as a client would
            up = subprocess.Popen([*compose, "up", "-d"], cwd=out, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
            returned: list[float] = []
            import threading

            def note_return() -> None:
                up.wait()
                returned.append(time.monotonic())

            threading.Thread(target=note_return, daemon=True).start()
            wait(lambda: httpx.get(f"{url}/health", timeout=5).status_code == 200,
                 "ctloop serving /health")
            to_health = time.monotonic() - began
            wait(predicts, "ctloop first prediction")
            to_prediction = time.monotonic() - began
            _, err = up.communicate(timeout=900)
            if up.returncode:
                raise SystemExit(f"compose up failed:\n{err[-2000:]}")
            wait(lambda: returned, "compose up returned")
            return {"up_to_health_s": to_health, "up_to_prediction_s": to_prediction,
                    "up_returned_s": returned[0] - began}
        finally:
            sh([*compose, "down", "--volumes"], cwd=out)

    return {"build_s": seconds, "size_mb": image_size(engine, image) / 1e6}, start


def mlflow_python() -> Path:
    folder = peers_root() / "mlflow-bench"
    python = folder / "bin" / "python"
    if not python.exists():
        sh([sys.executable, "-m", "venv", str(folder)])
        sh([str(python), "-m", "pip", "install", "-q", *MLFLOW])
    return python


def mlflow_deployment(engine: str, project: Path, rows: dict[str, list[Any]],
                      work: Path) -> tuple[dict[str, float], Any]:
    booster = work / "model.txt"  # the same LightGBM booster ctloop serves
    code = ("from ctloop.metadata import open_metadata_store\n"
            "from ctloop.registry import ModelRegistry\n"
            "m = ModelRegistry(open_metadata_store()).load('bench@champion')\n"
            f"getattr(m.model, 'booster_', m.model).save_model({str(booster)!r})\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTLOOP_")}
    sh([sys.executable, "-c", code], cwd=project, env=env)
    # MLflow's pyfunc hands LightGBM object columns, which a booster fitted on a pandas
    # category refuses: serve the category codes instead (the same splits, same scores)
    lines = booster.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("pandas_categorical:"))
    categories = json.loads(lines[at].partition(":")[2]) or [[]]
    lines[at] = "pandas_categorical:null"
    booster.write_text("\n".join(lines) + "\n")
    codes = {value: float(i) for i, value in enumerate(categories[0])}
    python = mlflow_python()
    model = work / "mlflow-model"
    sh([str(python), "-c", "import lightgbm as lgb, mlflow.lightgbm; mlflow.lightgbm."
        f"save_model(lgb.Booster(model_file={str(booster)!r}), {str(model)!r})"])
    out = work / "mlflow-docker"
    sh([str(python.parent / "mlflow"), "models", "generate-dockerfile", "-m", str(model),
        "-d", str(out), "--env-manager", "local"])
    dockerfile = out / "Dockerfile"
    base = next(line.split()[1] for line in dockerfile.read_text().splitlines()
                if line.startswith("FROM "))
    sh([engine, "tag", python_base_image(engine), base])  # the same stand-in base
    image = f"mlflow-bench-{TAG}:latest"
    seconds = build(engine, dockerfile, image, out)
    port = free_port()
    numeric = {c: (v if c != "plan" else [codes[x] for x in v]) for c, v in rows.items()}
    body = {"dataframe_split": {"columns": list(numeric),
                                "data": [list(r) for r in zip(*numeric.values(), strict=True)]}}

    def start() -> dict[str, float]:
        """``docker run`` to the first successful ``/invocations``."""
        began = time.monotonic()
        box = sh([engine, "run", "-d", "-p", f"127.0.0.1:{port}:8080", image]).strip()
        try:
            url = f"http://127.0.0.1:{port}"
            wait(lambda: httpx.get(f"{url}/ping", timeout=5).status_code == 200,
                 "mlflow /ping")
            to_health = time.monotonic() - began
            wait(lambda: httpx.post(f"{url}/invocations", json=body,
                                    timeout=10).status_code == 200, "mlflow first prediction")
            return {"up_to_health_s": to_health,
                    "up_to_prediction_s": time.monotonic() - began}
        finally:
            sh([engine, "rm", "-f", box])

    return {"build_s": seconds, "size_mb": image_size(engine, image) / 1e6}, start


def main() -> None:
    import argparse
    import statistics

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=3,
                        help="timed starts of each, interleaved (median reported)")
    parser.add_argument("--tag", default=str(os.getpid()), help="image and project suffix")
    parser.add_argument("--reuse", action="store_true",
                        help="time the starts of images already built under --tag")
    parser.add_argument("--no-model", action="store_true",
                        help="export without the first model's bundle; import it after up")
    args = parser.parse_args()
    global TAG, REUSE, WITH_MODEL
    TAG, REUSE, WITH_MODEL = args.tag, args.reuse, not args.no_model
    engine = ensure_engine()
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp:
        root = Path(tmp)
        project, bundle, rows = laptop(root)
        ours, our_start = ctloop_deployment(engine, project, bundle, rows)
        print(json.dumps({"ctloop": ours}), flush=True)  # kept if MLflow's side fails
        theirs, their_start = mlflow_deployment(engine, project, rows, root)
        runs: dict[str, list[dict[str, float]]] = {"ctloop": [], "mlflow": []}
        for round_ in range(args.starts):  # interleaved: the machine's load hits both
            for name, start in (("ctloop", our_start), ("mlflow", their_start)):
                runs[name].append(start())
                print(f"round {round_ + 1} {name}: {runs[name][-1]} "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
    for name, figures in (("ctloop", ours), ("mlflow", theirs)):
        for key in runs[name][0]:
            figures[key] = statistics.median(r[key] for r in runs[name])
    print(json.dumps({"ctloop": ours, "mlflow": theirs}, indent=2))
    print(f"{'':24}{'ctloop':>10}{'mlflow':>10}{'mlflow/ctloop':>15}")
    for key in ours:
        if key in theirs:
            print(f"{key:24}{ours[key]:10.1f}{theirs[key]:10.1f}"
                  f"{theirs[key] / ours[key]:15.2f}")
        else:
            print(f"{key:24}{ours[key]:10.1f}")
    how = ("the replicas answer from the first model's bundle; its import into the "
           "registry runs once they answer; up_returned_s: compose up returned, every service "
           "started" if WITH_MODEL else "includes importing the first model after up")
    print(f"starts: median of {args.starts}, interleaved. ctloop's start is the whole "
          "deployment (PostgreSQL, Dask scheduler + 2 workers, 2 replicas, controllers); "
          f"{how}; MLflow's is one scoring container. "
          f"Load average at the end: {os.getloadavg()[0]:.1f}.")


if __name__ == "__main__":
    main()
