"""The request log of a started `ctloop serve`, over real HTTP: bursts and SIGKILL lose nothing.

A burst of 20,000 requests at concurrency 32 then a clean shutdown: every
request id is in the log exactly once. SIGKILL of the server and its writer
process mid-load at concurrency 32: what is missing of the acknowledged answers
is never more than ``window_rows`` rows (back-pressure: past them the service answers
503); how long before the kill the oldest lost answer was acknowledged (documented: 100 ms
while the writer keeps up) is printed, not asserted, as a timed bound would be. SIGKILL
of the server alone: its writer process spools and publishes what it was handed, and
exits.

The spool on a small tmpfs that fills up mid-load, then SIGKILL: the service
stops acknowledging (503 naming the spool) and the acknowledged-but-lost rows
are at most the window in rows (``window_rows``). A server started after a
SIGKILL publishes what the dead one spooled, before any request.
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
import pandas as pd
import pytest

from ctloop.artifacts import open_artifact_store
from ctloop.core.net import free_port
from ctloop.examples.flights.data import flights
from ctloop.metadata import ArtifactRecord, new_id, open_metadata_store
from ctloop.models import fit_model
from ctloop.pipeline.task import load_module_from_file
from ctloop.registry import ModelRegistry
from ctloop.requestlog.log import LogOptions, open_prediction_log
from ctloop.requestlog.spool import spooled_chunks
from ctloop.testing.services import patience, user_environment, wait_until

_http = load_module_from_file(Path(__file__).with_name("http_load.py"), "http_load")
_load = _http.load

pytestmark = pytest.mark.slow

WINDOW_S = 0.1  # documented (window_ms): an acknowledged answer is spooled within this
DEFAULT_WINDOW_ROWS = 50_000  # documented (window_rows): never more held outside the spool


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make_project(tmp_path_factory.mktemp("serve-log"))


KILL_WINDOW_ROWS = 300  # well under the 3,000 answers before the kill: back-pressure shows


@pytest.fixture(scope="module")
def small_window(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose log holds at most ``KILL_WINDOW_ROWS`` acknowledged rows outside the
    spool: the bound a SIGKILL can lose, whatever the machine's load (the 100 ms is what
    that takes while the writer keeps up; it is printed, not asserted: a timed bound)."""
    root = _make_project(tmp_path_factory.mktemp("serve-log-window"))
    (root / "ctloop.toml").write_text(
        f"[ctloop.prediction_log]\nwindow_rows = {KILL_WINDOW_ROWS}\n")
    return root


def _make_project(root: Path) -> Path:
    home = root / ".ctloop"
    home.mkdir(parents=True)
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
    """``ctloop serve`` in ``project`` (its ctloop.toml, none of this process's CTLOOP_*)."""
    port = free_port()
    env = user_environment()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "ctloop"), "serve", "flights", "--port", str(port),
         "--log-level", "warning"],
        cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # a process group: the server and its log writer process
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
            detail = proc.stderr and proc.stderr.read()
            raise AssertionError(f"ctloop serve did not get ready: {detail}")
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


def _kill_mid_load(project: Path, prefix: str, *, group: bool) -> tuple[
        dict[str, float], float]:
    """SIGKILL the server (with ``group``, its writer process too) after 3,000 answers at
    concurrency 32; the acknowledged ids with when, and when the kill was."""
    proc, base = _serve(project)
    ids = [f"{prefix}-{i}" for i in range(100_000)]
    acked: dict[str, float] = {}

    async def run() -> float:
        stop = asyncio.Event()
        load = asyncio.create_task(_load(base, ids, acked, concurrency=32, stop=stop))
        while len(acked) < 3000:
            await asyncio.sleep(0.01)
        killed_at = time.monotonic()
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.send_signal(signal.SIGKILL)
        stop.set()
        await load
        return killed_at

    try:
        killed_at = asyncio.run(run())
    finally:
        proc.kill()
        proc.wait(timeout=30)
    return acked, killed_at


def _logged(project: Path, prefix: str) -> pd.Series:
    log = open_prediction_log(project / ".ctloop" / "predictions")
    frame = log.read(model_name="flights")  # publishes what a killed writer spooled
    log.close()
    got = frame[frame["request_id"].str.startswith(f"{prefix}-")]["request_id"]
    assert got.is_unique
    return got


def test_sigkill_of_server_and_writer_loses_at_most_the_window(small_window: Path) -> None:
    acked, killed_at = _kill_mid_load(small_window, "kill", group=True)
    # A SIGKILLed writer caught in an fsync holds its spool's lock until the kernel has
    # finished it; read only then, or its spool is left for the next live writer to adopt.
    spools = small_window / ".ctloop" / "predictions" / ".spool"
    wait_until(lambda: not _live_writers(spools), timeout=60,
               what="the killed writer process to be gone")
    missing = sorted(set(acked) - set(_logged(small_window, "kill")), key=acked.__getitem__)
    oldest = killed_at - acked[missing[0]] if missing else 0.0
    print(f"\nSIGKILL of the group after {len(acked)} acknowledged answers: {len(missing)} "
          f"missing (window_rows {KILL_WINDOW_ROWS}), the oldest acknowledged "
          f"{oldest * 1000:.0f} ms before the kill (documented: {WINDOW_S * 1000:.0f} ms "
          "while the writer keeps up)")
    assert len(missing) <= KILL_WINDOW_ROWS


def test_sigkill_of_the_server_alone_loses_only_what_it_had_not_handed_over(
    small_window: Path,
) -> None:
    acked, killed_at = _kill_mid_load(small_window, "alone", group=False)
    spools = small_window / ".ctloop" / "predictions" / ".spool"
    wait_until(lambda: not _live_writers(spools), timeout=60,
               what="the orphaned writer process to publish and exit")
    missing = sorted(set(acked) - set(_logged(small_window, "alone")), key=acked.__getitem__)
    oldest = killed_at - acked[missing[0]] if missing else 0.0
    print(f"\nSIGKILL of the server alone after {len(acked)} acknowledged answers: "
          f"{len(missing)} missing, the oldest acknowledged {oldest * 1000:.0f} ms before")
    assert len(missing) <= KILL_WINDOW_ROWS


def _live_writers(spools: Path) -> list[Path]:
    """Spool folders a live writer holds (its lock cannot be taken)."""
    import fcntl

    held = []
    for lock in spools.glob("*/*/.lock"):
        with lock.open("rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                held.append(lock.parent)
    return held


def _tmpfs(folder: Path, size: str) -> Path:
    """A tmpfs of ``size`` at ``folder``; skipped where mounting is refused (failed under CI)."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        why = f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return folder


def _fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` to the last byte; returns the filler file."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as out:
        for size in (65536, 1):
            try:
                while True:
                    out.write(b"\0" * size)
            except OSError:
                pass
    return filler


WINDOW_ROWS = 500  # the bound under test: acknowledged rows held in memory, not yet spooled


def test_disk_full_then_sigkill_loses_at_most_the_window(tmp_path: Path) -> None:
    spool = _tmpfs(tmp_path / "spool", "8m")
    try:
        root = _make_project(tmp_path / "project")
        (root / "ctloop.toml").write_text(
            f"[ctloop.prediction_log]\nspool = {str(spool)!r}\nwindow_rows = {WINDOW_ROWS}\n")
        proc, base = _serve(root)
        ids = [f"full-{i}" for i in range(200_000)]
        acked: dict[str, float] = {}
        refused: dict[str, bytes] = {}

        async def run() -> None:
            stop = asyncio.Event()
            load = asyncio.create_task(_load(base, ids, acked, concurrency=32, stop=stop,
                                             refused=refused))
            while len(acked) < 2000:
                await asyncio.sleep(0.01)
            _fill(spool)
            deadline = time.monotonic() + patience(120)
            while (len(refused) < 500 or not _names_the_spool(refused)) \
                    and time.monotonic() < deadline:
                await asyncio.sleep(0.01)  # the service notices and stops acknowledging
            os.killpg(proc.pid, signal.SIGKILL)  # the server and its writer process
            stop.set()
            await load

        try:
            asyncio.run(run())
        finally:
            proc.kill()
            proc.wait(timeout=30)
        (spool / "filler").unlink()
        log = open_prediction_log(root / ".ctloop" / "predictions",
                                  options=LogOptions(spool=str(spool)))
        frame = log.read(model_name="flights")  # publishes what the killed writer spooled
        log.close()
    finally:
        subprocess.run(["umount", "-l", str(spool)], check=False)
    got = set(frame["request_id"])
    missing = set(acked) - got
    statuses = {body.split(b" ")[1] for body in refused.values()}
    print(f"\ndisk full then SIGKILL: {len(acked)} acknowledged, {len(refused)} refused "
          f"{sorted(statuses)}, {len(missing)} acknowledged and lost (window_rows "
          f"{WINDOW_ROWS})")
    assert statuses == {b"503"}
    assert _names_the_spool(refused)
    assert frame["request_id"].is_unique
    assert len(missing) <= WINDOW_ROWS


def _names_the_spool(refused: dict[str, bytes]) -> bool:
    """A 503 says the spool cannot be written (the first ones may say the writer is
    ``window_rows`` behind: the writer process reports the failed write after it)."""
    return any(b"cannot write its spool" in body for body in list(refused.values()))


def test_a_restarted_server_publishes_a_dead_writers_spool_without_traffic(
    tmp_path: Path,
) -> None:
    root = _make_project(tmp_path / "project")
    (root / "ctloop.toml").write_text("[ctloop.prediction_log]\npublish_interval = 60\n")
    proc, base = _serve(root)
    ids = [f"orphan-{i}" for i in range(300)]
    acked: dict[str, float] = {}
    try:
        asyncio.run(_load(base, ids, acked, concurrency=8))
        deadline = time.monotonic() + patience(60)
        spools = root / ".ctloop" / "predictions" / ".spool"
        while _spooled_rows(spools) < len(acked) and time.monotonic() < deadline:
            time.sleep(0.05)  # the writer spools what it acknowledged
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the server and its writer process: both dead
        proc.wait(timeout=30)
    log = open_prediction_log(root / ".ctloop" / "predictions")
    log.close()  # a closed log reads the index only: it publishes nothing itself
    assert log.segments() == [] and spooled_chunks(spools)  # all still spooled
    proc, base = _serve(root)  # no request is sent to it
    try:
        deadline = time.monotonic() + patience(120)
        while not log.segments() and time.monotonic() < deadline:
            time.sleep(0.1)
        frame = log.read(model_name="flights")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    got = set(frame["request_id"])
    assert got <= set(ids) and len(set(acked) - got) <= WINDOW_ROWS
    assert set(acked) <= got, f"{len(set(acked) - got)} acknowledged rows not published"
    assert not spooled_chunks(spools)


def _spooled_rows(folder: Path) -> int:
    """Rows in the spool's chunks (Arrow tables, or raw frames the writer process spools)."""
    return sum(chunk.rows for chunk in spooled_chunks(folder))


def test_segments_never_go_through_the_system_temp_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    system_temp = tmp_path / "system-temp"
    system_temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(system_temp))  # the server's too
    monkeypatch.setattr(tempfile, "tempdir", str(system_temp))
    root = _make_project(tmp_path / "project")
    spool = root / ".ctloop" / "predictions" / ".spool"
    log = open_prediction_log(root / ".ctloop" / "predictions")
    stale = spool / log.spool_root.name / ".tmp" / "999999999-dead.parquet"
    log.close()
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"left by a killed process")
    log = open_prediction_log(root / ".ctloop" / "predictions")  # cleans what the dead left
    assert not stale.exists()
    proc, base = _serve(root)
    try:
        asyncio.run(_load(base, [f"t-{i}" for i in range(200)], {}, concurrency=4))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    assert len(log.read(model_name="flights")) == 200
    assert list(system_temp.iterdir()) == []
    log.close()
