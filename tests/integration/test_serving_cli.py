"""`ctloop serve` as a real process on a free loopback port, called over HTTP."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from ctloop.artifacts import open_artifact_store
from ctloop.core.net import free_port
from ctloop.examples.flights.data import flights
from ctloop.metadata import ArtifactRecord, new_id, open_metadata_store
from ctloop.models import fit_model
from ctloop.registry import ModelRegistry
from ctloop.requestlog.log import open_prediction_log
from ctloop.testing.services import patience


def test_ctloop_serve_answers_over_http_and_follows_promotions(ctloop_home: Path) -> None:
    home = ctloop_home / ".ctloop"
    home.mkdir()
    store = open_metadata_store(f"sqlite:///{home / 'metadata.db'}")
    artifacts = open_artifact_store((home / "artifacts").as_uri())
    registry = ModelRegistry(store, actor="test")
    data = flights([1]).head(2000)
    for trees in (5, 15):
        fit_model(
            data,
            label="delayed",
            features=["origin", "hour"],
            algorithm="lightgbm",
            params={"n_estimators": trees, "n_jobs": 1},
        ).save(ctloop_home / f"m{trees}")
        stored = artifacts.put(ctloop_home / f"m{trees}")
        art = store.add_artifact(
            ArtifactRecord(new_id(), "Model", stored.uri, stored.sha256, stored.size)
        )
        registry.register("flights", art.id)
    registry.promote("flights", 1)

    port = free_port()
    exe = Path(sys.executable).parent / "ctloop"
    proc = subprocess.Popen(
        [
            str(exe),
            "serve",
            "flights",
            "--port",
            str(port),
            "--reload-interval",
            "0.2",
            "--log-level",
            "warning",
        ],
        cwd=ctloop_home,
        env={**os.environ, "CTLOOP_ACTOR": "test"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=5) as client:
            deadline = time.monotonic() + patience(30)
            while True:
                try:
                    if client.get("/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()  # before reading: a live server's pipe never ends
                    pytest.fail(f"ctloop serve did not get ready: {proc.communicate()[1]}")
                time.sleep(0.1)
            rows = [{"origin": "JFK", "hour": 8}, {"origin": "LGA", "hour": 19}]
            body = client.post("/v1/models/flights:predict", json={"rows": rows}).json()
            assert body["versions"] == [1, 1]
            registry.promote("flights", 2)
            deadline = time.monotonic() + patience(10)
            while body["versions"] != [2, 2] and time.monotonic() < deadline:
                time.sleep(0.1)
                body = client.post("/v1/models/flights:predict", json={"rows": rows}).json()
            assert body["versions"] == [2, 2]
            bad = client.post("/v1/models/flights:predict", json={"rows": [{"hour": 1}]})
            assert bad.status_code == 422 and "origin" in bad.json()["detail"]
            assert "ctloop_requests_total" in client.get("/metrics").text
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
        store.close()
    logged = open_prediction_log(home / "predictions").read(
        model_name="flights", include_rejected=True, include_unserved=True
    )
    answered = logged[logged["served"]]
    assert len(answered) >= 4 and set(answered["model_version"]) == {1, 2}
    assert (~logged["served"]).sum() == 1  # the 422 is logged as well


def _start(cwd: Path, *args: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    exe = Path(sys.executable).parent / "ctloop"
    errors = tempfile.TemporaryFile(mode="w+")  # a pipe nobody reads could fill and block it
    proc = subprocess.Popen(
        [str(exe), "serve", *args, "--port", str(port), "--log-level", "warning"],
        cwd=cwd, env={**os.environ, "CTLOOP_ACTOR": "test"},
        stdout=subprocess.DEVNULL, stderr=errors, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + patience(60)
    while True:
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            errors.seek(0)
            pytest.fail(f"ctloop serve did not get ready: {errors.read()[-2000:]}")
        time.sleep(0.2)


@pytest.mark.slow
def test_workers_share_metrics_and_each_follows_promotions(ctloop_home: Path) -> None:
    home = ctloop_home / ".ctloop"
    home.mkdir()
    store = open_metadata_store(f"sqlite:///{home / 'metadata.db'}")
    artifacts = open_artifact_store((home / "artifacts").as_uri())
    registry = ModelRegistry(store, actor="test")
    data = flights([1]).head(2000)
    for trees in (5, 15):
        fit_model(data, label="delayed", features=["origin", "hour"], algorithm="lightgbm",
                  params={"n_estimators": trees, "n_jobs": 1}).save(ctloop_home / f"m{trees}")
        stored = artifacts.put(ctloop_home / f"m{trees}")
        art = store.add_artifact(
            ArtifactRecord(new_id(), "Model", stored.uri, stored.sha256, stored.size)
        )
        registry.register("flights", art.id)
    registry.promote("flights", 1)
    proc, base = _start(ctloop_home, "flights", "--workers", "2", "--reload-interval", "0.2")
    rows = [{"origin": "JFK", "hour": 8}]
    try:
        for _ in range(30):  # a new connection each time: both workers answer
            answer = httpx.post(f"{base}/v1/models/flights:predict", json={"rows": rows})
            assert answer.status_code == 200
        pattern = re.compile(
            r'ctloop_requests_total\{endpoint="predict",model="flights",protocol="v1",'
            r'status="200"\} (\S+)'
        )
        for _ in range(4):  # whichever worker answers /metrics counts all 30
            text = httpx.get(f"{base}/metrics").text
            found = pattern.search(text)
            assert found is not None and float(found.group(1)) == 30.0, text
        registry.promote("flights", 2)
        deadline = time.monotonic() + patience(20)
        streak = 0
        while streak < 20:
            assert time.monotonic() < deadline, "not every worker picked up version 2"
            answer = httpx.post(f"{base}/v1/models/flights:predict", json={"rows": rows})
            streak = streak + 1 if answer.json()["versions"] == [2] else 0
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        store.close()


def test_hash_key_prints_only_the_hash(ctloop_home: Path) -> None:
    from ctloop.serving.auth import hash_key

    exe = Path(sys.executable).parent / "ctloop"
    key = "k-0123456789abcdef"
    done = subprocess.run([str(exe), "serve", "--hash-key"], input=key + "\n",
                          capture_output=True, text=True, cwd=ctloop_home, check=True)
    assert done.stdout.strip() == f'hash = "{hash_key(key)}"'
    assert key not in done.stdout + done.stderr
    short = subprocess.run([str(exe), "serve", "--hash-key"], input="short\n",
                           capture_output=True, text=True, cwd=ctloop_home)
    assert short.returncode != 0 and "16 characters" in short.stdout + short.stderr


def _stderr_until_banner(cwd: Path, *args: str) -> str:
    """What `ctloop serve` prints before it listens (it is stopped right after)."""
    exe = Path(sys.executable).parent / "ctloop"
    proc = subprocess.Popen(
        [str(exe), "serve", *args, "--port", str(free_port()), "--log-level", "info"],
        cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    lines = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("serving "):
                break
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return "".join(lines)


def test_serve_names_what_it_serves_and_warns_of_a_typo_and_exposure(ctloop_home: Path) -> None:
    store = open_metadata_store()
    artifacts = open_artifact_store()
    (ctloop_home / "m").write_text("model bytes")
    stored = artifacts.put(ctloop_home / "m")
    art = store.add_artifact(ArtifactRecord(new_id(), "Model", stored.uri, stored.sha256,
                                            stored.size))
    registry = ModelRegistry(store, actor="test")
    registry.register("flights-delay", art.id)
    registry.promote("flights-delay", 1)
    store.close()

    typo = _stderr_until_banner(ctloop_home, "flight-delay", "--host", "0.0.0.0")
    assert "warning: no model named 'flight-delay' is registered (did you mean " \
        "'flights-delay'?)" in typo
    assert "[ctloop.serving.keys]" in typo  # the exposure warning, as text, not markup
    assert "alembic" not in typo.lower()  # library INFO lines only with --log-level debug

    every = _stderr_until_banner(ctloop_home)
    assert "flights-delay@champion -> version 1" in every and "warning" not in every


@pytest.mark.parametrize("option", ["--port", "--grpc-port"])
def test_a_port_out_of_range_is_a_usage_error_before_anything_starts(
    ctloop_home: Path, option: str
) -> None:
    exe = Path(sys.executable).parent / "ctloop"
    done = subprocess.run([str(exe), "serve", option, "99999999"], cwd=ctloop_home,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "65535" in done.stderr
