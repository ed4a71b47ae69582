"""What a `ctloop serve` start imports: a LightGBM model with cached compiled trees needs
neither LightGBM nor the SciPy and scikit-learn it pulls in, and answering it needs no pandas
or pyarrow (asserted on the modules, never on time). The request log's writer builds Arrow
tables, and pyarrow imports pandas for them, so the pandas check runs with the log off."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from ctloop.artifacts import open_artifact_store
from ctloop.core.net import free_port
from ctloop.examples.flights.data import flights
from ctloop.metadata import ArtifactRecord, new_id, open_metadata_store
from ctloop.models import fit_model
from ctloop.models.compiled import compile_predictor
from ctloop.models.compiled_cache import VersionCompiledCache
from ctloop.models.compiled_lleaves import available
from ctloop.registry import ModelRegistry
from ctloop.testing.services import patience

HEAVY = ("sklearn", "scipy", "lightgbm", "xgboost", "joblib", "torch", "tensorflow",
         "alembic")  # Alembic only migrates: a database at the head revision needs none
FRAMES = ("pandas", "pyarrow", "duckdb", "grpc")  # not needed to answer a LightGBM model
# Nor are these, by their full names: the pipeline DSL, the feature store without a catalog,
# fsspec for a local store, the SQL dialects of other databases.
UNNEEDED = ("ctloop.pipeline", "ctloop.features", "fsspec", "sqlalchemy.dialects.mysql",
            "sqlalchemy.dialects.postgresql")


def _imported(stderr: str, *, top_level: bool = True) -> set[str]:
    """Modules named in PYTHONPROFILEIMPORTTIME's report (their top-level packages)."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            names.add(name.split(".")[0] if top_level else name)
    return names


@pytest.mark.skipif(available() is not None, reason=str(available()))
@pytest.mark.parametrize("request_log", [True, False], ids=["log-on", "log-off"])
def test_serving_a_compiled_lightgbm_model_imports_no_sklearn_scipy_or_lightgbm(
    ctloop_home: Path, request_log: bool,
) -> None:
    home = ctloop_home / ".ctloop"
    home.mkdir()
    store = open_metadata_store(f"sqlite:///{home / 'metadata.db'}")
    artifacts = open_artifact_store((home / "artifacts").as_uri())
    registry = ModelRegistry(store, actor="test")
    data = flights([1]).head(3000)
    fit_model(data, label="delayed", features=["origin", "hour", "distance"],
              algorithm="lightgbm", params={"n_estimators": 20, "n_jobs": 1}).save(
        ctloop_home / "m")
    stored = artifacts.put(ctloop_home / "m")
    art = store.add_artifact(
        ArtifactRecord(new_id(), "Model", stored.uri, stored.sha256, stored.size))
    registry.register("flights", art.id)
    registry.promote("flights", 1)
    model = registry.load("flights:1")
    assert compile_predictor(model, VersionCompiledCache(store, artifacts, "flights", 1))
    rows = data[["origin", "hour", "distance"]].head(3)
    expected = model.predict(rows)
    (ctloop_home / "ctloop.toml").write_text(
        "[ctloop.serving]\ncompiled = true\n" + ("" if request_log else 'prediction_log = ""\n'))

    port = free_port()
    report = (ctloop_home / "imports.txt").open("w+")  # a file: the report outgrows a pipe
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "ctloop"), "serve", "flights", "--port", str(port),
         "--log-level", "warning"],
        cwd=ctloop_home, env={**os.environ, "CTLOOP_ACTOR": "test", "PYTHONPROFILEIMPORTTIME": "1"},
        stdout=subprocess.DEVNULL, stderr=report, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + patience(120)
        while True:
            try:
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None:
                report.seek(0)
                errors = [x for x in report.read().splitlines() if "import time" not in x]
                pytest.fail("ctloop serve exited: " + "\n".join(errors[-20:]))
            assert time.monotonic() < deadline, "not ready in 120 s"
            time.sleep(0.2)
        body = httpx.post(f"{base}/v1/models/flights:predict",
                          json={"rows": rows.to_dict("records")}, timeout=30).json()
        np.testing.assert_allclose(body["predictions"], expected, rtol=1e-9, atol=0)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        store.close()
    report.seek(0)
    text = report.read()
    report.close()
    imported = _imported(text)
    assert {"ctloop", "numpy", "fastapi"} <= imported  # the report is read right
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
    if not request_log:  # (the log's writer process reports into the same file)
        assert not imported & set(FRAMES), sorted(imported & set(FRAMES))
        modules = _imported(text, top_level=False)
        assert "sqlalchemy" in modules and not modules & set(UNNEEDED), sorted(
            modules & set(UNNEEDED))
    if shutil.which("cc"):  # compiled into a shared library: loaded without LLVM
        assert "llvmlite" not in imported
