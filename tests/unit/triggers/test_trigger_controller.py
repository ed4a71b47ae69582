"""The controller on a real project: new files, cron with a fixed clock, cooldowns,
failing pipelines, manual fires and two controllers sharing one state file."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from ctloop.core.clock import ManualClock
from ctloop.core.errors import NotFound, UserInputError
from ctloop.core.settings import load_settings
from ctloop.metadata import open_metadata_store
from ctloop.triggers import Controller, TriggerDef, make_trigger

PIPES = Path(__file__).resolve().parents[2] / "integration" / "triggers_pipelines.py"


@pytest.fixture
def project(ctloop_home: Path) -> Path:
    (ctloop_home / "landing").mkdir()
    return ctloop_home


def _drop(folder: Path, name: str, rows: int, mtime: float | None = None) -> Path:
    path = folder / name
    pd.DataFrame({"x": range(rows)}).to_parquet(path)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def _landing(project: Path, **kw) -> TriggerDef:
    return make_trigger("landing", f"{PIPES}:ingest", new_data="landing/*.parquet",
                        params={"path": "{path}"}, root=project, **kw)


def _runs():
    return open_metadata_store(load_settings().metadata_url).list_runs(limit=100)


def test_new_file_fires_exactly_one_run_with_that_file(project: Path) -> None:
    controller = Controller([_landing(project)])
    assert controller.tick() == []
    path = _drop(project / "landing", "jan.parquet", 5)
    (project / "landing" / ".partial.parquet").write_bytes(b"being written")
    (firing,) = controller.tick()
    assert firing.status == "succeeded" and firing.kind == "new_data"
    assert controller.tick() == []
    (run,) = _runs()
    assert run.trigger == "new_data"
    assert run.trigger_info["path"] == str(path)
    assert run.trigger_info["trigger"] == "landing"
    assert run.parameters["path"] == str(path)
    state = controller.state.read()
    assert state["landing"].seen == [str(path)]
    assert state["landing"].last_run_id == run.id


def test_new_files_fire_oldest_first(project: Path) -> None:
    _drop(project / "landing", "b.parquet", 2, mtime=2_000_000)
    _drop(project / "landing", "a.parquet", 3, mtime=3_000_000)
    _drop(project / "landing", "c.parquet", 4, mtime=1_000_000)
    firings = Controller([_landing(project)]).tick()
    assert [Path(f.info["path"]).name for f in firings] == ["c.parquet", "b.parquet", "a.parquet"]
    assert len(_runs()) == 3


def test_cooldown_holds_back_the_next_file(project: Path) -> None:
    clock = ManualClock(datetime(2024, 1, 1, tzinfo=UTC))
    controller = Controller([_landing(project, cooldown="10m")], clock=clock)
    _drop(project / "landing", "a.parquet", 1, mtime=1)
    _drop(project / "landing", "b.parquet", 1, mtime=2)
    assert [Path(f.info["path"]).name for f in controller.tick()] == ["a.parquet"]
    clock.advance(minutes=9)
    assert controller.tick() == []
    clock.advance(minutes=1)
    assert [Path(f.info["path"]).name for f in controller.tick()] == ["b.parquet"]


def test_cron_with_a_fixed_clock(project: Path) -> None:
    clock = ManualClock(datetime(2024, 5, 1, 10, 0, 30, tzinfo=UTC))
    trigger = make_trigger("every5", f"{PIPES}:hello", cron="*/5 * * * *",
                           params={"message": "at {scheduled}"})
    controller = Controller([trigger], clock=clock)
    assert controller.tick() == []  # the first look only anchors the schedule
    clock.set(datetime(2024, 5, 1, 10, 4, 59, tzinfo=UTC))
    assert controller.tick() == []
    clock.set(datetime(2024, 5, 1, 10, 5, 0, tzinfo=UTC))
    (firing,) = controller.tick()
    assert firing.info["scheduled"] == "2024-05-01T10:05:00+00:00"
    clock.advance(seconds=30)
    assert controller.tick() == []
    clock.set(datetime(2024, 5, 1, 10, 17, tzinfo=UTC))  # two ticks missed: one run
    (late,) = controller.tick()
    assert late.info["scheduled"] == "2024-05-01T10:15:00+00:00"
    assert controller.tick() == []
    runs = _runs()
    assert len(runs) == 2 and {r.trigger for r in runs} == {"cron"}
    assert {r.parameters["message"] for r in runs} == {
        "at 2024-05-01T10:05:00+00:00", "at 2024-05-01T10:15:00+00:00"}


def test_failing_pipeline_is_recorded_and_the_controller_goes_on(project: Path) -> None:
    clock = ManualClock(datetime(2024, 5, 1, tzinfo=UTC))
    bad = make_trigger("bad", f"{PIPES}:broken", cron="* * * * *")
    good = make_trigger("good", f"{PIPES}:hello", cron="* * * * *")
    controller = Controller([bad, good], clock=clock)
    controller.tick()
    clock.advance(minutes=1)
    firings = {f.trigger: f for f in controller.tick()}
    assert firings["bad"].status == "failed" and "told to fail" in (firings["bad"].error or "")
    assert firings["good"].status == "succeeded"
    status = controller.status()
    assert status["bad"]["last_status"] == "failed" and "running" not in status["bad"]
    assert controller.entries()["bad"].history[-1].run_id == firings["bad"].run_id
    clock.advance(minutes=1)
    assert len(controller.tick()) == 2  # and it keeps firing on schedule


def test_a_pipeline_that_cannot_load_is_recorded_too(project: Path) -> None:
    (project / "gone.py").write_text("x = 1\n")
    trigger = make_trigger("gone", f"{project / 'gone.py'}:nothing", manual=True)
    firing = Controller([trigger]).fire("gone")
    assert firing.status == "failed" and "defines no @pipeline" in (firing.error or "")


def test_manual_fire(project: Path) -> None:
    trigger = make_trigger("by_hand", f"{PIPES}:hello", manual=True, cooldown="1d")
    controller = Controller([trigger])
    assert controller.tick() == []  # manual triggers never fire by themselves
    firing = controller.fire("by_hand", {"reason": "test"})
    assert firing.status == "succeeded" and firing.kind == "manual"
    assert controller.fire("by_hand").status == "succeeded"  # a person overrides the cooldown
    assert firing.run_id is not None
    run = open_metadata_store(load_settings().metadata_url).get_run(firing.run_id)
    assert run.trigger == "manual" and run.trigger_info["reason"] == "test"
    with pytest.raises(NotFound, match="No trigger named 'nope'; defined: by_hand"):
        controller.fire("nope")


def test_a_running_claim_blocks_a_second_start(project: Path) -> None:
    trigger = make_trigger("by_hand", f"{PIPES}:hello", manual=True)
    controller = Controller([trigger])
    # Written as a controller before leases did: a claim without "expires" or "since".
    with controller.state.store.update("triggers") as docs:
        docs["by_hand"] = {"running": {"pid": os.getpid(), "host": os.uname().nodename}}
    with pytest.raises(UserInputError, match="already running"):
        controller.fire("by_hand")
    with controller.state.store.update("triggers") as docs:  # a dead process's claim is stale
        docs["by_hand"]["running"]["pid"] = 2**22 + 12345
    assert controller.fire("by_hand").status == "succeeded"


def test_two_controllers_with_one_state_file_never_double_fire(project: Path) -> None:
    for i in range(6):
        _drop(project / "landing", f"f{i}.parquet", i + 1, mtime=1000 + i)
    controllers = [Controller([_landing(project)]) for _ in range(2)]
    results: list[list] = [[], []]
    barrier = threading.Barrier(2)

    def work(i: int) -> None:
        barrier.wait()
        for _ in range(3):
            results[i].extend(controllers[i].tick())

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    paths = [f.info["path"] for r in results for f in r]
    assert sorted(Path(p).name for p in paths) == [f"f{i}.parquet" for i in range(6)]
    runs = _runs()
    assert len(runs) == 6
    assert len({r.trigger_info["path"] for r in runs}) == 6
