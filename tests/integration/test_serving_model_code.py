"""A custom predictor whose module lives outside every path the server knows, served by
`ctloop serve` and scored by `ctloop predict` in subprocesses: the model carries its code."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from ctloop.artifacts import open_artifact_store
from ctloop.core.net import free_port
from ctloop.metadata import ArtifactRecord, new_id, open_metadata_store
from ctloop.models import Signature, save_model
from ctloop.registry import ModelRegistry

pytestmark = pytest.mark.slow

PREDICTOR = '''
import numpy as np
from shoprules_weights import WEIGHTS


class ShopScore:
    """P(buy): a logistic score of basket size with a per-shop offset."""

    def predict(self, frame):
        offset = frame["shop"].map(WEIGHTS).fillna(0.0).to_numpy()
        return 1.0 / (1.0 + np.exp(-(0.3 * frame["basket"].to_numpy() + offset)))
'''
WEIGHTS = 'WEIGHTS = {"north": -1.0, "south": 0.5}\n'
ROWS = pd.DataFrame({"shop": ["north", "south", "east"], "basket": [1.0, 4.0, 2.5]})


def expected(frame: pd.DataFrame) -> np.ndarray:
    offset = frame["shop"].map({"north": -1.0, "south": 0.5}).fillna(0.0).to_numpy()
    return np.asarray(1.0 / (1.0 + np.exp(-(0.3 * frame["basket"].to_numpy() + offset))))


def _environment() -> dict[str, str]:
    """The test's environment; PYTHONPATH keeps only ctloop's source, never the project."""
    env = {**os.environ, "CTLOOP_ACTOR": "test"}
    assert "elsewhere" not in env.get("PYTHONPATH", "")
    return env


def test_served_and_batch_scored_without_the_module_on_any_path(
    ctloop_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    project = tmp_path_factory.mktemp("elsewhere")
    (project / "shoprules.py").write_text(PREDICTOR)
    (project / "shoprules_weights.py").write_text(WEIGHTS)
    sys.path.insert(0, str(project))
    try:
        model = importlib.import_module("shoprules").ShopScore()
        manifest = save_model(model, ctloop_home / "m",
                              signature=Signature.from_frame(ROWS, ["shop", "basket"]))
    finally:
        sys.path.remove(str(project))
        for name in ("shoprules", "shoprules_weights"):
            sys.modules.pop(name, None)
    assert sorted(manifest["code"]) == ["code/shoprules.py", "code/shoprules_weights.py"]

    home = ctloop_home / ".ctloop"
    store = open_metadata_store(f"sqlite:///{home / 'metadata.db'}")
    artifacts = open_artifact_store((home / "artifacts").as_uri())
    stored = artifacts.put(ctloop_home / "m")
    art = store.add_artifact(ArtifactRecord(new_id(), "Model", stored.uri, stored.sha256,
                                            stored.size))
    registry = ModelRegistry(store, actor="test")
    registry.register("shop", art.id)
    registry.promote("shop", 1)
    store.close()

    exe = Path(sys.executable).parent / "ctloop"
    ROWS.to_csv(ctloop_home / "rows.csv", index=False)
    batch = subprocess.run(
        [str(exe), "predict", "shop", "rows.csv", "scored.csv"], cwd=ctloop_home,
        env=_environment(), capture_output=True, text=True, timeout=300,
    )
    assert batch.returncode == 0, batch.stderr
    scored = pd.read_csv(ctloop_home / "scored.csv")
    np.testing.assert_allclose(scored["score"], expected(ROWS), rtol=1e-12)

    port = free_port()
    proc = subprocess.Popen(
        [str(exe), "serve", "shop", "--port", str(port), "--log-level", "warning"],
        cwd=ctloop_home, env=_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            while True:  # ready when it answers; a crash ends the wait with its stderr
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                try:
                    if client.get("/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                proc_wait(proc)
            for n in (1, 2, 3):
                rows = ROWS.head(n)
                request = {"inputs": [
                    {"name": "shop", "datatype": "BYTES", "shape": [n],
                     "data": rows["shop"].tolist()},
                    {"name": "basket", "datatype": "FP64", "shape": [n],
                     "data": rows["basket"].tolist()},
                ]}
                answer = client.post("/v2/models/shop/infer", json=request)
                assert answer.status_code == 200, answer.text
                outputs = {o["name"]: o for o in answer.json()["outputs"]}
                np.testing.assert_allclose(outputs["prediction"]["data"], expected(rows),
                                           rtol=1e-9)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)


def proc_wait(proc: subprocess.Popen[str]) -> None:
    """Wait a little for the server to come up (it is polled, never timed)."""
    try:
        proc.wait(timeout=0.2)
    except subprocess.TimeoutExpired:
        pass
