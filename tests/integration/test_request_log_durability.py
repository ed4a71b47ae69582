"""The request log of a started `ctloop serve`, over real HTTP: bursts and SIGKILL lose nothing.

A burst of 20,000 requests at concurrency 32 then a clean shutdown: every
request id is in the log exactly once. SIGKILL mid-load at concurrency 32:
what is missing of the acknowledged answers is only what was acknowledged in
the last moments before the kill (the documented write-ahead window, 100 ms;
the test allows 1 s on this shared machine and prints what it measured).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ctloop.artifacts import open_artifact_store
from ctloop.core.net import free_port
from ctloop.examples.flights.data import flights
from ctloop.metadata import ArtifactRecord, new_id, open_metadata_store
from ctloop.models import fit_model
from ctloop.pipeline.task import load_module_from_file
from ctloop.registry import ModelRegistry
from ctloop.requestlog.log import open_prediction_log

_http = load_module_from_file(Path(__file__).with_name("http_load.py"), "http_load")
_load = _http.load

pytestmark = pytest.mark.slow

WINDOW_S = 0.1  # documented: an acknowledged answer is in the write-ahead spool within this
ALLOWED_S = 1.0  # what the test tolerates on a 2-core machine shared with other test runs


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serve-log")
    home = root / ".ctloop"
    home.mkdir()
    store = open_metadata_store(f"sqlite:///{home / 'metadata.db'}")
    artifacts = open_artifact_store((home / "artifacts").as_uri())
    registry = ModelRegistry(store, actor="test")
    fit_model(flights([1]).head(2000), label="delayed", features=["origin", "hour"],
              algorithm="lightgbm", params={"n_estimators": 5, "n_jobs": 1}).save(root / "m")
    stored = artifacts.put(root / "m")
    art = store.add_artifact(ArtifactRecord(new_id(), "Model", stored.uri, stored.sha256,
                                            stored.size))
    registry.register("flights", art.id)
    registry.promote("flights", 1)
    store.close()
    return root


def _serve(project: Path) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTLOOP_")}
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "ctloop"), "serve", "flights", "--port", str(port),
         "--log-level", "warning"],
        cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"ctloop serve did not get ready: {proc.stderr.read()}")
        time.sleep(0.1)


def test_a_20000_request_burst_is_logged_exactly_once(project: Path) -> None:
    proc, base = _serve(project)
    ids = [f"burst-{i}" for i in range(20_000)]
    acked: dict[str, float] = {}
    try:
        asyncio.run(_load(base, ids, acked, concurrency=32))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    assert len(acked) == len(ids)
    log = open_prediction_log(project / ".ctloop" / "predictions")
    frame = log.read(model_name="flights")
    got = frame[frame["request_id"].str.startswith("burst-")]["request_id"]
    assert got.is_unique, got[got.duplicated()].head()
    assert set(got) == set(ids)
    log.close()


def test_sigkill_mid_load_loses_at_most_the_window(project: Path) -> None:
    proc, base = _serve(project)
    ids = [f"kill-{i}" for i in range(100_000)]
    acked: dict[str, float] = {}

    async def run() -> float:
        stop = asyncio.Event()
        load = asyncio.create_task(_load(base, ids, acked, concurrency=32, stop=stop))
        while len(acked) < 3000:
            await asyncio.sleep(0.01)
        killed_at = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        stop.set()
        await load
        return killed_at

    try:
        killed_at = asyncio.run(run())
    finally:
        proc.kill()
        proc.wait(timeout=30)
    log = open_prediction_log(project / ".ctloop" / "predictions")
    frame = log.read(model_name="flights")  # publishes what the killed writer spooled
    got = frame[frame["request_id"].str.startswith("kill-")]["request_id"]
    assert got.is_unique
    missing = sorted(set(acked) - set(got), key=acked.__getitem__)
    oldest = killed_at - acked[missing[0]] if missing else 0.0
    print(f"\nSIGKILL after {len(acked)} acknowledged answers: {len(missing)} missing, "
          f"the oldest acknowledged {oldest * 1000:.0f} ms before the kill "
          f"(documented window {WINDOW_S * 1000:.0f} ms)")
    last_second = sum(1 for t in acked.values() if t >= killed_at - ALLOWED_S)
    assert len(missing) <= last_second
    assert oldest <= ALLOWED_S, f"lost an answer acknowledged {oldest:.2f}s before the kill"
    log.close()
