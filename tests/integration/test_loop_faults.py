"""The live loop controller under faults: two at once, kill -9 mid-training, a failing run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ctloop.core.settings import load_settings
from ctloop.loop.controller import LoopController, TickResult
from ctloop.loop.declaration import parse_loop
from ctloop.metadata import open_metadata_store
from ctloop.testing.loops import churn_loop
from ctloop.testing.services import patience

pytestmark = pytest.mark.slow

TRAINERS = Path(__file__).with_name("loop_trainers.py")


def _spec(project: Path, trainer: str | None = None, **extra):  # type: ignore[no-untyped-def]
    table = {"model": "churn", "data": "landing/*.parquet", "event_time": "ts",
             "label": "churned", "retrain_on": ["new_span"], "window": "2 spans",
             "train": f"{TRAINERS}:{trainer}" if trainer else {
                 "flavor": "lightgbm", "params": {"n_estimators": 10}}, **extra}
    return parse_loop("churn", table, root=project)


def _kill_mid_training(project: Path) -> None:
    """Run ``ctloop loop run churn --once`` (lease 2 s) with the trainer hanging on the
    ``LOOP_TEST_HANG`` marker; SIGKILL it once training has started, then drop the marker
    so the next controller's training goes through."""
    marker = project / "hang"
    marker.write_text("")
    env = {**os.environ, "LOOP_TEST_HANG": str(marker)}
    proc = subprocess.Popen([sys.executable, "-m", "ctloop", "loop", "run", "churn", "--once",
                             "--lease-ttl", "2"], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + patience(90)
    while not (project / "started").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the training never started"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    marker.unlink()


def _tick_once_the_dead_lease_expired(controller: LoopController) -> TickResult:
    """The first tick not blocked by the killed controller's lease (it stops renewing)."""
    deadline = time.monotonic() + patience(60)
    while (result := controller.tick()).blocked_by is not None:
        assert time.monotonic() < deadline, "the dead controller's lease never expired"
        time.sleep(0.5)
    return result


def _training_runs(project: Path) -> list:  # type: ignore[type-arg]
    store = open_metadata_store(load_settings().metadata_url)
    return [r for r in store.list_runs(limit=500) if r.pipeline == "loop_train"]


def test_two_controllers_at_once_never_double_fire(project: Path) -> None:
    spec = _spec(project)
    controllers = [LoopController(spec, load_settings()) for _ in range(2)]
    barrier = threading.Barrier(2)
    results: list = [None, None]  # type: ignore[type-arg]

    def work(i: int) -> None:
        barrier.wait()
        results[i] = controllers[i].tick()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    handled = [r.span for res in results for r in res.reports]
    assert sorted(handled) == ["week-00", "week-01", "week-02"]  # each once, by one of them
    assert sum(1 for res in results if res.blocked_by) == 1
    assert [controller.tick().reports for controller in controllers] == [[], []]
    runs = _training_runs(project)
    assert sorted(r.trigger_info["span"] for r in runs) == ["week-00", "week-01", "week-02"]
    for controller in controllers:
        controller.close()


def test_a_failing_training_run_does_not_stop_the_controller(project: Path) -> None:
    controller = LoopController(_spec(project, "fails_on_week_01"), load_settings())
    result = controller.tick()
    assert [r.span for r in result.reports] == ["week-00", "week-01", "week-02"]
    assert len(result.errors) == 1 and "out of memory on week-01" in result.errors[0]
    week01, week02 = result.reports[1], result.reports[2]
    assert week01.gate is not None and "out of memory" in week01.gate["error"]
    assert week02.gate is not None and week02.gate.get("blessed") is not None
    assert not week02.gate.get("error")
    controller.close()


def test_kill_9_mid_training_then_restart_resumes_without_duplicating(project: Path) -> None:
    (project / "ctloop.toml").write_text(churn_loop(f'train = "{TRAINERS}:hangs_once"'))
    for extra in ("week-01", "week-02"):
        (project / "landing" / f"{extra}.parquet").unlink()
    _kill_mid_training(project)
    (started,) = _training_runs(project)
    assert started.status.value == "running"  # the dead controller's run, left as it was
    blocked = LoopController(_spec(project, "hangs_once"), load_settings(), lease_ttl=2)
    result = _tick_once_the_dead_lease_expired(blocked)
    assert result.blocked_by is None
    (report,) = result.reports
    assert report.span == "week-00" and report.runs["resumed"] == started.id
    assert report.promoted == 1 and report.bootstrap
    (run,) = _training_runs(project)  # resumed, not started again
    assert run.id == started.id and run.status.value == "succeeded"
    assert blocked.tick().reports == []
    blocked.close()


def test_a_declared_pipeline_killed_mid_training_resumes_with_itself(project: Path) -> None:
    """``pipeline = "file.py:name"`` with steps named its own way: a controller killed
    while it trains is resumed with that pipeline (not ``loop_train``), and its gate and
    push are read by what they return, not by their step names."""
    pipelines = Path(__file__).with_name("loop_pipelines.py")
    (project / "ctloop.toml").write_text(churn_loop(
        'retrain_on = ["new_span"]', 'window = "2 spans"',
        f'pipeline = "{pipelines}:custom_train"'))
    (project / "landing" / "week-02.parquet").unlink()
    _kill_mid_training(project)
    store = open_metadata_store(load_settings().metadata_url)
    (started,) = [r for r in store.list_runs(limit=50) if r.pipeline == "custom_train"]
    assert started.status.value == "running"
    spec = load_settings()
    from ctloop.loop import get_loop

    controller = LoopController(get_loop("churn", spec), spec, lease_ttl=2)
    result = _tick_once_the_dead_lease_expired(controller)
    first, second = result.reports
    assert first.span == "week-00" and first.runs["resumed"] == started.id
    assert first.bootstrap and first.promoted == 1
    assert first.gate is not None and first.gate["blessed"] and first.gate["version"] == 1
    assert second.span == "week-01" and second.gate is not None
    assert not second.gate.get("error") and second.gate["version"] == 2
    assert second.gate["candidate"] is not None and second.gate["champion"] is not None
    runs = [r for r in store.list_runs(limit=50) if r.pipeline == "custom_train"]
    assert len(runs) == 2 and all(r.status.value == "succeeded" for r in runs)
    assert result.errors == []
    controller.close()
    store.close()
