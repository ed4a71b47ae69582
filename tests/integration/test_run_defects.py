"""Regression tests for the run defects of issue 14 (markup, parameters, liveness, kills)."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from ctloop.core.errors import UserInputError
from ctloop.core.settings import load_settings
from ctloop.metadata import open_metadata_store
from ctloop.metadata.base import RunStatus, RunUpdate
from ctloop.pipeline import run
from ctloop.pipeline.api import resume
from ctloop.testing.cli import cli, one_error_line
from ctloop.testing.databases import METADATA_BACKENDS, temporary_metadata_url
from ctloop.testing.services import patience

PIPES = Path(__file__).parent / "defect_pipelines.py"
ERROR = "column [/bold] has [red]bad[/red] values like [/] and [link=x]"


def test_markup_in_a_step_error_prints_verbatim(box: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "run", f"{PIPES}:markup_error")
    assert code == 1 and ERROR in err and "Traceback" not in err
    code, out, _ = cli(capsys, "runs", "list", "--json")
    run_id = json.loads(out)["runs"][0]["id"]
    code, out, err = cli(capsys, "runs", "show", run_id)
    assert code == 0, err
    assert ERROR in out  # in the run's error line and the traceback
    code, out, err = cli(capsys, "runs", "list")
    assert code == 0 and run_id[:12] in out and "…" not in out.split(run_id[:12])[0][-3:]
    code, out, err = cli(capsys, "--wide", "runs", "list")  # the 12-character prefix, or whole
    assert code == 0 and run_id in out
    code, _, err = cli(capsys, "resume", run_id)
    assert code == 1 and ERROR in err and "Traceback" not in err
    (box / "fixed").touch()
    code, _, err = cli(capsys, "resume", run_id)
    assert code == 0, err


@pytest.mark.parametrize("backend", METADATA_BACKENDS)
def test_unstorable_parameters_fail_alike_on_every_backend(
    box: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    with temporary_metadata_url(backend, tmp_path) as url:
        monkeypatch.setenv("CTLOOP_METADATA_URL", url)
        for bad in (math.nan, math.inf, -math.inf):
            with pytest.raises(UserInputError, match=r"threshold.*cannot be stored"):
                run(f"{PIPES}:markup_error", {"threshold": bad})
        with pytest.raises(UserInputError, match=r"parameter 'n'.*digits"):
            run(f"{PIPES}:markup_error", {"n": 10**100_000})
        store = open_metadata_store(url)
        assert store.list_runs() == []  # refused before anything was recorded
        (box / "fixed").touch()
        done = run(f"{PIPES}:markup_error", {"threshold": 1e308, "n": 4})
        assert done.ok, done.run.error
        assert store.get_run(done.run.id).parameters == {"threshold": 1e308, "n": 4}
        store.close()


def test_unstorable_parameters_on_the_command_line(box: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "run", f"{PIPES}:markup_error", "--param", "threshold=NaN")
    assert code == 2 and "cannot be stored" in one_error_line(err)
    code, _, err = cli(capsys, "run", f"{PIPES}:markup_error", "--param", "n=" + "7" * 100_000)
    line = one_error_line(err)
    assert code == 2 and "--param n" in line and len(line) < 400


def _failed_run(box: Path) -> str:
    failed = run(f"{PIPES}:markup_error")
    assert not failed.ok
    (box / "fixed").touch()
    return failed.run.id


def test_resume_refuses_a_run_whose_process_is_alive(box: Path) -> None:
    run_id = _failed_run(box)
    store = open_metadata_store(load_settings().metadata_url)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        executor = {**store.get_run(run_id).executor, "pid": child.pid,
                    "host": socket.gethostname()}
        store.update_run(run_id, RunUpdate(status=RunStatus.RUNNING, executor=executor))
        with pytest.raises(UserInputError, match=f"still running \\(pid {child.pid}"):
            resume(run_id)
    finally:
        child.kill()
        child.wait()
    assert resume(run_id).ok  # the process is gone: resume goes ahead


def test_resume_of_a_run_on_another_host_needs_force(box: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    run_id = _failed_run(box)
    store = open_metadata_store(load_settings().metadata_url)
    executor = {**store.get_run(run_id).executor, "host": "elsewhere.example", "pid": 4242}
    store.update_run(run_id, RunUpdate(status=RunStatus.RUNNING, executor=executor))
    code, _, err = cli(capsys, "resume", run_id)
    line = one_error_line(err)
    assert code == 2 and "elsewhere.example" in line and "--force" in line
    code, _, err = cli(capsys, "resume", run_id, "--force")
    assert code == 0, err


def _pids(box: Path) -> list[int]:
    path = box / "lingering-pids"
    if not path.exists():
        return []
    return [int(p) for line in path.read_text().splitlines() for p in line.split()]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat", "rb") as fh:  # a zombie waiting for init counts as gone
        return fh.read().rpartition(b")")[2].split()[0] == b"Z"


@pytest.mark.slow
def test_subprocess_steps_die_with_the_run_and_resume_on_its_runner(
    box: Path, ctloop_home: Path
) -> None:
    ctloop = [sys.executable, "-m", "ctloop"]
    proc = subprocess.Popen([*ctloop, "run", f"{PIPES}:slow_in_subprocess",
                             "--runner", "subprocess"],
                            cwd=ctloop_home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + patience(60)
    while not _pids(box):
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    step_pid, grandchild = _pids(box)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + patience(10)
    while not (_gone(step_pid) and _gone(grandchild)):
        assert time.time() < deadline, "the step outlived the run's process"
        time.sleep(0.05)
    store = open_metadata_store(load_settings().metadata_url)
    (killed,) = store.list_runs()
    assert killed.status == "running" and killed.executor["runner_spec"] == "subprocess"
    (box / "fast").touch()
    out = subprocess.run([*ctloop, "resume", killed.id], cwd=ctloop_home,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    steps = {s.name: s for s in store.get_steps(killed.id)}
    assert steps["lingering"].status == "succeeded"
    assert steps["lingering"].executor["runner"] == "subprocess"  # not silently local
    assert steps["lingering"].outputs["return"] != os.getpid()
    assert len(_pids(box)) == 4  # the first attempt and the resumed one, nothing more


def test_an_explicit_runner_still_overrides_the_recorded_one(box: Path) -> None:
    run_id = _failed_run(box)
    store = open_metadata_store(load_settings().metadata_url)
    record = store.get_run(run_id)
    store.update_run(
        run_id, RunUpdate(executor={**replace(record).executor, "runner_spec": "subprocess"})
    )
    resumed = resume(run_id, runner="local")
    assert resumed.ok and resumed.steps["strict_check"].executor["runner"] == "local"
