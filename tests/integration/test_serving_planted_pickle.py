"""The planted-pickle attack against a real `ctloop serve` process: refused, then healed.

An attacker who can write to the unpacked model cache swaps the model for a
pickle whose ``__reduce__`` writes a marker file and rewrites the manifest to
match. `ctloop artifacts show --verify` must say the copy changed, `ctloop
serve` must never unpickle it (not ready, marker absent), and once the operator
deletes the folder the service loads the genuine model on its own retry.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ctloop.artifacts import open_artifact_store
from ctloop.cli.main import main
from ctloop.core.net import free_port
from ctloop.examples.flights.data import flights
from ctloop.metadata import ArtifactRecord, new_id, open_metadata_store
from ctloop.models import fit_model
from ctloop.registry import ModelRegistry
from ctloop.testing.attacks import plant_pickle
from ctloop.testing.services import patience


def _wait(client: httpx.Client, proc: subprocess.Popen[str], path: str, status: int) -> dict:
    deadline = time.monotonic() + patience(30)
    while True:
        try:
            response = client.get(path)
            if response.status_code == status:
                return response.json()
        except httpx.TransportError:
            pass
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, f"{path} never answered {status}"
        time.sleep(0.1)


def test_ctloop_serve_refuses_a_planted_pickle_and_heals_when_the_copy_is_removed(
    ctloop_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = ctloop_home / ".ctloop"
    home.mkdir()
    store = open_metadata_store(f"sqlite:///{home / 'metadata.db'}")
    artifacts = open_artifact_store((home / "artifacts").as_uri())
    fit_model(
        flights([1]).head(2000),
        label="delayed",
        features=["origin", "hour"],
        algorithm="lightgbm",
        params={"n_estimators": 5, "n_jobs": 1},
    ).save(ctloop_home / "model")
    stored = artifacts.put(ctloop_home / "model")
    art = store.add_artifact(
        ArtifactRecord(new_id(), "Model", stored.uri, stored.sha256, stored.size)
    )
    registry = ModelRegistry(store, actor="test")
    registry.register("flights", art.id)
    registry.promote("flights", 1)  # verified, and unpacked into the cache
    store.close()
    folder = artifacts.get(stored.uri, stored.sha256)
    assert folder.is_relative_to(home / "artifacts" / ".cache" / "trees")
    marker = ctloop_home / "pwned"
    plant_pickle(folder, marker)

    capsys.readouterr()
    assert main(["artifacts", "show", art.id, "--verify"]) != 0
    err = capsys.readouterr().err
    assert "changed after ctloop unpacked it" in err and "\n" not in err.strip()

    port = free_port()
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "ctloop"),
            "serve",
            "flights",
            "--port",
            str(port),
            "--reload-interval",
            "0",
            "--log-level",
            "warning",
        ],
        cwd=ctloop_home,
        env={**os.environ, "CTLOOP_ACTOR": "test"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            _wait(client, proc, "/health", 200)
            ready = _wait(client, proc, "/ready", 503)
            assert "changed after ctloop unpacked it" in ready["errors"]["flights"]["champion"]
            refused = client.post(
                "/v1/models/flights:predict", json={"rows": [{"origin": "JFK", "hour": 8}]}
            )
            assert refused.status_code == 503
            assert not marker.exists()
            shutil.rmtree(folder)  # the repair the error asks for; the service retries alone
            _wait(client, proc, "/ready", 200)
            body = client.post(
                "/v1/models/flights:predict", json={"rows": [{"origin": "JFK", "hour": 8}]}
            ).json()
            assert body["versions"] == [1] and 0 < body["predictions"][0] < 1
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    assert not marker.exists()
    assert main(["artifacts", "show", art.id, "--verify"]) == 0
