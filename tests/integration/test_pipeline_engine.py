"""The engine end to end on the real SQLite store and local artifact store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ctloop.core.errors import UserInputError
from ctloop.core.jsontypes import as_number, as_object, as_str
from ctloop.core.settings import load_settings
from ctloop.metadata import open_metadata_store
from ctloop.pipeline import run
from ctloop.pipeline.api import resume
from ctloop.testing.services import patience

HERE = Path(__file__).parent
PIPES = HERE / "pipelines_for_tests.py"


def runs_of(box: Path, name: str) -> int:
    path = box / f"ran-{name}"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_run_records_steps_artifacts_and_lineage(box: Path) -> None:
    result = run(f"{PIPES}:diamond", {"n": 10}, max_workers=2)
    assert result.ok, result.run.error
    assert [s.status for s in result.steps.values()] == ["succeeded"] * 5
    assert result.steps["total"].outputs == {"return": 45 + 55}
    store = open_metadata_store(load_settings().metadata_url)
    run_rec = store.get_run(result.run.id[:8])
    assert run_rec.parameters == {"n": 10, "seconds": 0.0}
    assert run_rec.executor["runner"] == "local" and run_rec.environment["python"]
    assert run_rec.source.endswith("pipelines_for_tests.py:diamond")
    metrics = result.output("total")
    assert metrics.type == "Metrics" and metrics.size > 0 and len(metrics.sha256) == 64
    assert metrics.properties["total"] == 100
    step_ids = {s.id for s in store.get_steps(result.run.id)}
    assert metrics.producer_step_id in step_ids
    inputs = [e for e in store.get_events(step_id=result.steps["total"].id) if e.kind == "input"]
    assert sorted(e.name for e in inputs) == ["a", "b"]
    from ctloop.metadata.lineage import lineage

    graph = lineage(store, metrics.id)
    names = sorted(s.name for s, _ in graph.steps.values())
    assert names == ["slow", "slow-2", "source", "source-2", "total"]


def _span(returned: object) -> dict[str, float]:
    """A step's returned ``start`` and ``end`` (JSON numbers)."""
    doc = as_object(returned)
    start, end = as_number(doc["start"]), as_number(doc["end"])
    assert start is not None and end is not None, doc
    return {"start": start, "end": end}


def test_independent_steps_run_in_parallel(box: Path) -> None:
    result = run(f"{PIPES}:rendezvous", {"n": 3}, max_workers=2)
    left, right = (_span(result.steps[n].outputs["return"]) for n in ("meet", "meet-2"))
    assert left["start"] < right["end"] and right["start"] < left["end"]  # intervals overlap
    serial = run(f"{PIPES}:diamond", {"n": 4, "seconds": 0.3}, max_workers=1)
    left, right = (_span(serial.steps[n].outputs["return"]) for n in ("slow", "slow-2"))
    assert left["end"] <= right["start"] or right["end"] <= left["start"]


def test_rerun_is_cached_and_no_cache_reruns(box: Path) -> None:
    first = run(f"{PIPES}:diamond", {"n": 5})
    second = run(f"{PIPES}:diamond", {"n": 5})
    assert {s.status for s in second.steps.values()} == {"cached"}
    assert second.steps["total"].cached_from == first.steps["total"].id
    assert second.steps["total"].outputs == first.steps["total"].outputs
    assert second.output("total").id == first.output("total").id
    from ctloop.metadata.lineage import lineage

    store = open_metadata_store(load_settings().metadata_url)
    graph = lineage(store, second.output("total").id)  # the producers, not the cached copies
    assert sorted(s.name for s, _ in graph.steps.values()) == [
        "slow", "slow-2", "source", "source-2", "total"]
    assert {s.run_id for s, _ in graph.steps.values()} == {first.run.id}
    assert runs_of(box, "total") == 1
    changed = run(f"{PIPES}:diamond", {"n": 6})  # new parameter: everything downstream reruns
    assert changed.steps["total"].status == "succeeded"
    forced = run(f"{PIPES}:diamond", {"n": 5}, cache=False)
    assert {s.status for s in forced.steps.values()} == {"succeeded"}
    assert runs_of(box, "total") == 3


def test_failure_is_recorded_and_resume_runs_only_what_is_missing(box: Path) -> None:
    (box / "fail-total").touch()
    failed = run(f"{PIPES}:diamond", {"n": 7})
    assert not failed.ok and "total was told to fail" in (failed.run.error or "")
    step = failed.steps["total"]
    assert step.status == "failed" and "RuntimeError" in (step.traceback or "")
    assert failed.steps["slow"].status == "succeeded"
    store = open_metadata_store(load_settings().metadata_url)
    assert store.get_run(failed.run.id).status == "failed"
    (box / "fail-total").unlink()
    resumed = resume(failed.run.id)
    assert resumed.ok and resumed.run.id == failed.run.id
    assert runs_of(box, "slow") == 2 and runs_of(box, "source-7") == 1
    assert runs_of(box, "total") == 2
    assert resumed.steps["total"].attempts == 2
    with pytest.raises(UserInputError, match="already succeeded"):
        resume(failed.run.id)


def test_retries_with_backoff(box: Path) -> None:
    result = run(f"{PIPES}:retrying")
    assert result.ok
    assert result.steps["flaky"].attempts == 3 and runs_of(box, "flaky") == 3
    assert result.steps["flaky"].outputs == {"return": 3}


def test_step_that_forgets_its_output_fails_clearly(box: Path) -> None:
    result = run(f"{PIPES}:forgetful")
    assert not result.ok
    assert "did not write its output 'out'" in (result.steps["writes_nothing"].error or "")


def test_command_component(box: Path) -> None:
    result = run(f"{PIPES}:shell", {"n": 4})
    assert result.ok, result.run.error
    art = result.output("byte_count")
    assert art.size > 0
    assert "counted" in as_str(as_object(result.steps["byte_count"].outputs["return"])["stdout"])
    bad = run(f"{PIPES}:shell_fails")
    assert not bad.ok
    assert "exited with code 3" in (bad.steps["failing_command"].error or "")
    assert "broken input" in (bad.steps["failing_command"].error or "")


def test_subprocess_runner_runs_each_step_in_its_own_process(box: Path) -> None:
    result = run(f"{PIPES}:diamond", {"n": 8}, runner="subprocess", max_workers=2)
    assert result.ok, result.run.error
    pids = {s.executor["pid"] for s in result.steps.values()}
    assert os.getpid() not in pids and len(pids) == 5
    again = run(f"{PIPES}:diamond", {"n": 8}, runner="subprocess")
    assert {s.status for s in again.steps.values()} == {"cached"}


def test_subprocess_tasks_stay_in_the_project_and_leftovers_are_swept(
    box: Path, ctloop_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(system_tmp))
    tempfile.tempdir = None  # read TMPDIR again
    try:
        first = run(f"{PIPES}:diamond", {"n": 3}, runner="subprocess")
        assert first.ok, first.run.error
        # what an attempt killed in an earlier run leaves behind
        dead = ctloop_home / ".ctloop" / "work" / "killed-run" / ".task-999999999-left"
        dead.mkdir(parents=True)
        (dead / "task.pkl").write_bytes(b"params of a killed step")
        from ctloop.pipeline.runners import subprocess as runner_module

        runner_module._swept.clear()  # as in the next process
        (box / "fail-total").touch()
        failed = run(f"{PIPES}:diamond", {"n": 3}, runner="subprocess", cache=False)
        assert not failed.ok
        (box / "fail-total").unlink()
        from ctloop.pipeline.api import resume

        assert resume(failed.run.id).ok
    finally:
        tempfile.tempdir = None
    assert list(system_tmp.iterdir()) == []  # nothing of a step in the system temp folder
    assert not any((ctloop_home / ".ctloop" / "work").glob("*/.task-*"))


def test_changed_bytes_are_caught_when_read(box: Path) -> None:
    first = run(f"{PIPES}:diamond", {"n": 9})
    art = first.output("source")
    path = Path(art.uri.removeprefix("file://"))
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes()[:-3] + b"xyz")
    from ctloop.artifacts import open_artifact_store
    from ctloop.core.errors import IntegrityError

    with pytest.raises(IntegrityError, match=art.id):
        open_artifact_store(load_settings().artifacts_url).get(art.uri, art.sha256, name=art.id)
    # `source` is a cache hit; `slow` (new parameter) reads the damaged bytes, fails, names them.
    second = run(f"{PIPES}:diamond", {"n": 9, "seconds": 0.001})
    assert not second.ok and second.steps["source"].status == "cached"
    error = second.steps["slow"].error or ""
    assert "changed after it was written" in error and art.id in error
    # Rerunning without the cache writes the bytes again and heals the store.
    healed = run(f"{PIPES}:diamond", {"n": 9}, cache=False)
    assert healed.ok, healed.run.error
    store = open_metadata_store(load_settings().metadata_url)
    assert store.get_run(first.run.id).status == "succeeded"  # nothing recorded was lost


@pytest.mark.slow
def test_resume_after_sigkill_mid_step(box: Path, ctloop_home: Path) -> None:
    ctloop = [sys.executable, "-m", "ctloop"]
    proc = subprocess.Popen(
        [*ctloop, "run", f"{PIPES}:diamond", "--param", "n=12", "--param", "seconds=30",
         "--max-workers", "1"],
        cwd=ctloop_home, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + patience(60)  # a python start and two steps, under load
    while not (box / "slow-started").exists():
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = open_metadata_store(load_settings().metadata_url)
    (killed,) = store.list_runs()
    assert killed.status == "running"  # nobody could record the end
    steps = {s.name: s.status for s in store.get_steps(killed.id)}
    assert steps["slow"] == "running" and steps["source"] == "succeeded"
    sources_before = runs_of(box, "source-12") + runs_of(box, "source-13")
    (box / "fast").touch()  # the resumed run keeps its parameters; skip the long sleep now
    out = subprocess.run([*ctloop, "resume", killed.id[:10]], cwd=ctloop_home,
                         capture_output=True, text=True, timeout=patience(120))
    assert out.returncode == 0, out.stderr
    done = store.get_run(killed.id)
    assert done.status == "succeeded"
    assert runs_of(box, "source-12") + runs_of(box, "source-13") == sources_before


@pytest.mark.parametrize("runner", ["local", "subprocess"])
def test_steps_know_their_run_and_stores(box: Path, runner: str) -> None:
    result = run(f"{PIPES}:introspective", runner=runner)
    assert result.ok, result.run.error
    value = as_object(result.steps["who_am_i"].outputs["return"])
    assert value["run_id"] == result.run.id and value["step"] == "who_am_i"
    assert value["metadata_url"] == load_settings().metadata_url


@pytest.mark.slow
@pytest.mark.parametrize("runner", ["subprocess", "local"])
def test_each_requirement_set_gets_its_own_cached_venv(
    box: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runner: str
) -> None:
    monkeypatch.setenv("CTLOOP_CACHE_DIR", str(tmp_path / "cache"))
    result = run(f"{PIPES}:two_sixes", runner=runner, max_workers=2)
    assert result.ok, result.run.error
    assert result.steps["old_six"].outputs["return"] == "1.16.0"
    assert result.steps["new_six"].outputs["return"] == "1.17.0"
    assert result.steps["old_six"].executor["pid"] != os.getpid()  # in its own process
    venvs = sorted(p.name for p in (tmp_path / "cache" / "venvs").iterdir() if p.is_dir())
    assert len(venvs) == 2  # built once per requirement set ...
    again = run(f"{PIPES}:two_sixes", runner=runner, cache=False)
    assert again.ok  # ... and reused
    assert sorted(p.name for p in (tmp_path / "cache" / "venvs").iterdir() if p.is_dir()) == venvs


def test_what_a_failed_step_wrote_is_kept_for_people_not_for_steps(box: Path) -> None:
    result = run(f"{PIPES}:reports_then_fails")
    assert not result.ok
    store = open_metadata_store(load_settings().metadata_url)
    step = result.steps["half_done"]
    (event,) = [e for e in store.get_events(step_id=step.id) if e.kind != "input"]
    assert event.kind == "partial" and event.name == "report"
    art = store.get_artifact(event.artifact_id)
    assert art.properties["partial"] is True and art.properties["checked"] == 3
    assert "half_done" not in result.artifacts  # never an input, a cache hit or a resume source
    from ctloop.artifacts import open_artifact_store

    path = open_artifact_store(load_settings().artifacts_url).get(art.uri, art.sha256)
    assert '"checked": 3' in path.read_text()
    again = run(f"{PIPES}:reports_then_fails")
    assert again.steps["half_done"].status == "failed"  # a failed step is never a cache hit
