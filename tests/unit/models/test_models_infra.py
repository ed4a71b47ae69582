"""Infra check: load in a fresh process, predict sample rows, or fail clearly."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

import pytest

from ctloop.examples.flights.data import flights
from ctloop.models import fit_model, infra_check, read_manifest
from ctloop.models.flavors import MANIFEST
from ctloop.testing.services import patience


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("infra") / "m"
    fit_model(
        flights([1]).head(5000),
        label="delayed",
        features=["origin", "hour", "distance"],
        algorithm="lightgbm",
        params={"n_estimators": 10, "n_jobs": 1},
    ).save(path)
    return path


def test_servable_model_passes(model_dir: Path) -> None:
    result = infra_check(model_dir, flights([2]).head(50))
    assert result["passed"], result
    assert {c["check"] for c in result["checks"]} >= {"loads", "shape", "type", "latency"}
    assert 0 < result["latency_ms"] < 1000


def test_missing_package_fails_clearly(model_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "m"
    broken.mkdir()
    for f in model_dir.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    manifest = read_manifest(broken)
    manifest["requirements"]["ctloop_absent"] = "ctloop-absent==2.0"
    (broken / MANIFEST).write_text(json.dumps(manifest))
    result = infra_check(broken, flights([2]).head(5))
    assert not result["passed"]
    assert "pip install 'ctloop-absent==2.0'" in result["error"]


def test_sample_missing_a_column_fails(model_dir: Path) -> None:
    result = infra_check(model_dir, flights([2]).head(5).drop(columns=["distance"]))
    assert not result["passed"] and "distance" in result["error"]


PREDICTOR = '''
import numpy as np


class Constant:
    """A predictor whose class exists only in this file: no server can import it."""

    def predict(self, frame):
        return np.full(len(frame), 0.5)
'''


def test_a_class_only_the_training_process_loaded_fails(tmp_path: Path) -> None:
    """The probe's process never saw the module the training process imported. The model
    carries that module's code, so the probe loads it as the prediction service would; a
    model saved without its code (before models carried it) cannot be read there, which
    is exactly what the prediction service would hit."""
    import json

    from ctloop.core.importing import import_file
    from ctloop.models.flavors import MANIFEST, load_model, save_model
    from ctloop.models.signature import Signature

    (tmp_path / "notebook_cell.py").write_text(PREDICTOR)
    module = import_file(tmp_path / "notebook_cell.py", "ctloop_notebook")
    sample = flights([2]).head(5)
    signature = Signature.from_frame(sample, ["distance"], {"name": "delayed",
                                                             "type": "probability"})
    save_model(module.Constant(), tmp_path / "m", signature=signature, flavor="python")
    assert load_model(tmp_path / "m").predict(sample).tolist() == [0.5] * 5  # here it works
    assert infra_check(tmp_path / "m", sample)["passed"]  # and there: its code travels
    manifest = json.loads((tmp_path / "m" / MANIFEST).read_text())
    manifest.pop("code")
    (tmp_path / "m" / MANIFEST).write_text(json.dumps(manifest))
    result = infra_check(tmp_path / "m", sample)
    assert not result["passed"]
    assert "ctloop_notebook" in result["error"], result["error"]


def test_the_check_runs_inside_a_daemonic_process(model_dir: Path) -> None:
    """A pool worker (or a Dask worker) is daemonic: multiprocessing may not start children
    there, but the probe server is a plain subprocess, so the check runs the same."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result = pool.apply(infra_check, (str(model_dir), flights([2]).head(20)))
    assert result["passed"], result
    assert {c["check"] for c in result["checks"]} >= {"loads", "shape", "type", "latency"}


def test_a_script_without_a_main_guard_runs_once(model_dir: Path, tmp_path: Path) -> None:
    """The check's child never re-runs the caller's ``__main__`` (multiprocessing's fork
    server would: a user's script without ``if __name__ == "__main__"`` ran twice)."""
    marker = tmp_path / "ran.txt"
    script = tmp_path / "train_and_check.py"
    script.write_text(
        "from pathlib import Path\n"
        "from ctloop.examples.flights.data import flights\n"
        "from ctloop.models import infra_check\n"
        f"with open({str(marker)!r}, 'a') as f:\n"
        "    f.write('ran\\n')\n"
        f"print(infra_check({str(model_dir)!r}, flights([2]).head(20))['passed'])\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"
    assert marker.read_text() == "ran\n"


SLEEPY = '''
import time

import numpy as np


class Sleepy:
    def predict(self, frame):
        time.sleep(60)
        return np.zeros(len(frame))
'''


def test_a_model_that_hangs_is_killed_and_the_server_goes_on(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ctloop.models.flavors import save_model
    from ctloop.models.probe_server import ProbeServer
    from ctloop.models.signature import Signature

    (tmp_path / "sleepy_model.py").write_text(SLEEPY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # importable where it is served
    import sleepy_model

    sample = flights([2]).head(5)
    signature = Signature.from_frame(sample, ["distance"], {"name": "delayed",
                                                             "type": "probability"})
    save_model(sleepy_model.Sleepy(), tmp_path / "m", signature=signature, flavor="python")
    sample.to_parquet(tmp_path / "sample.parquet")
    server = ProbeServer()
    try:
        # readiness first: a healthy probe with a generous bound (the server's own start
        # under load used to eat the hanging probe's 3 s; issue 20.7)
        warm = server.probe(str(model_dir), str(tmp_path / "sample.parquet"),
                            tmp_path / "r0.json", timeout_s=patience(60))
        assert isinstance(warm, dict) and warm["error"] is None, warm
        bound = patience(3)  # far below the model's 60 s hang, however loaded the machine
        answer = server.probe(str(tmp_path / "m"), str(tmp_path / "sample.parquet"),
                              tmp_path / "r1.json", timeout_s=bound)
        assert answer == f"Loading and predicting took over {bound:g} s."  # killed, not waited
        report = server.probe(str(model_dir), str(tmp_path / "sample.parquet"),
                              tmp_path / "r2.json", timeout_s=patience(60))
        assert isinstance(report, dict) and report["error"] is None, report
        assert report["shape"] == [5]
    finally:
        server.close()
    assert not server.alive()
