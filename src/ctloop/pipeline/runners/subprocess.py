"""Run each step in its own Python process, optionally in its own virtualenv.

A step whose component declares ``requirements=[...]`` runs in a virtual
environment built once per requirement set under the ctloop cache folder and
reused. The environment sees ctloop's own packages through a ``.pth`` file
placed after its own site-packages, so the step's pinned versions win.

Each step process leads its own process group and holds the read end of a
pipe whose write end only this process has: when this process ends in any way
(even SIGKILL), the pipe closes and the worker kills its whole group, so no
step outlives the run and runs a second time beside a resumed copy.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pickle
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from ctloop.core.errors import ConfigError
from ctloop.core.processes import Liveness, process_liveness
from ctloop.pipeline.component import AnyComponent
from ctloop.pipeline.task import StepTask, TaskResult

__all__ = ["SubprocessRunner", "ensure_venv", "kill_group", "run_in_process"]


def _cache_root() -> Path:
    base = os.environ.get("CTLOOP_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "ctloop"
    )
    return Path(base)


_venv_lock = threading.Lock()


def ensure_venv(requirements: tuple[str, ...]) -> Path:
    """The python executable of a cached venv with ``requirements`` installed."""
    key = hashlib.sha256("\n".join(sorted(requirements)).encode()).hexdigest()[:16]
    root = _cache_root() / "venvs" / key
    python = root / "bin" / "python"
    ready = root / ".ctloop-ready"
    if ready.exists():
        return python
    root.parent.mkdir(parents=True, exist_ok=True)
    with _venv_lock, open(root.parent / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder per requirement set, across processes
        if ready.exists():
            return python
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True,
                       capture_output=True)
        purelib = Path(
            subprocess.run(
                [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                check=True, capture_output=True, text=True,
            ).stdout.strip()
        )
        # pip of the parent environment installs into the child's site-packages.
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--target", str(purelib), *requirements],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
            raise ConfigError(
                f"Could not install the step requirements {list(requirements)}: {tail}"
            )
        parent = sysconfig.get_paths()["purelib"]
        (purelib / "zz_ctloop_parent.pth").write_text(parent + "\n")
        ready.write_text(" ".join(requirements))
    return python


class SubprocessRunner:
    """One fresh Python process per step attempt."""

    name = "subprocess"

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._max = 1
        self._active: set[Future[TaskResult]] = set()
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()

    def init(self, max_workers: int) -> None:
        self._max = max_workers
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="ctloop-proc")

    def can_submit(self) -> bool:
        self._active = {f for f in self._active if not f.done()}
        return len(self._active) < self._max

    def submit(self, task: StepTask, component: AnyComponent) -> Future[TaskResult]:
        assert self._pool is not None, "init() first"
        future = self._pool.submit(self._run, task)
        self._active.add(future)
        return future

    def _run(self, task: StepTask) -> TaskResult:
        return run_in_process(task, self._procs, self._lock)

    def cancel_all(self) -> None:
        for future in self._active:
            future.cancel()

    def finalize(self) -> None:
        with self._lock:
            for proc in self._procs:
                kill_group(proc)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a step process and everything in its process group."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


_swept: set[Path] = set()


def _remove_dead_task_folders(work: Path) -> None:
    """Remove ``.task-PID-*`` folders that processes now gone left in any run's work
    folder beside ``work`` (once per process and project)."""
    import shutil

    root = work.parent
    if root in _swept:
        return
    _swept.add(root)
    for folder in root.glob("*/.task-*-*"):
        pid = folder.name.split("-")[1]
        if pid.isdigit() and process_liveness(
                {"host": socket.gethostname(), "pid": int(pid)}) is Liveness.DEAD:
            shutil.rmtree(folder, ignore_errors=True)


def run_in_process(
    task: StepTask,
    procs: set[subprocess.Popen[bytes]] | None = None,
    lock: threading.Lock | None = None,
) -> TaskResult:
    """Run one attempt in a fresh Python process (in the step's venv when it has requirements).

    ``procs``/``lock`` let a runner kill still-running processes when it is finalized.
    """
    procs = procs if procs is not None else set()
    lock = lock or threading.Lock()
    started = time.time()
    try:
        python = ensure_venv(task.requirements) if task.requirements else Path(sys.executable)
    except ConfigError as exc:
        return TaskResult(ok=False, error=exc.message, started=started, ended=time.time())
    # The task (its parameters, input references) is handed over inside the run's own work
    # folder, never the system temp folder; a killed attempt's leftovers go at the next one.
    work = Path(task.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    _remove_dead_task_folders(work)
    with tempfile.TemporaryDirectory(prefix=f".task-{os.getpid()}-", dir=work) as tmp:
        task_file, result_file = Path(tmp) / "task.pkl", Path(tmp) / "result.pkl"
        task_file.write_bytes(pickle.dumps(task))
        env = dict(os.environ)
        src_root = str(Path(__file__).resolve().parents[3])
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (src_root, env.get("PYTHONPATH", "")) if p
        )
        lifeline, keep = os.pipe()  # both ends non-inheritable: each child gets only its own
        try:
            proc = subprocess.Popen(
                [str(python), "-m", "ctloop.pipeline.worker", str(task_file), str(result_file),
                 "--lifeline", str(lifeline)],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                pass_fds=(lifeline,), start_new_session=True,
            )
        finally:
            os.close(lifeline)
        try:
            with lock:
                procs.add(proc)
            output, _ = proc.communicate()
        finally:
            os.close(keep)
            kill_group(proc)  # what the step itself started dies with it
            with lock:
                procs.discard(proc)
        if result_file.exists():
            result: TaskResult = pickle.loads(result_file.read_bytes())
            result.executor["process"] = str(python)
            return result
        tail = output.decode(errors="replace").strip().splitlines()[-5:]
        return TaskResult(
            ok=False,
            error=f"Worker process for step {task.step!r} died with exit code "
            f"{proc.returncode}" + (": " + " | ".join(tail) if tail else ""),
            started=started, ended=time.time(),
            executor={"pid": proc.pid, "process": str(python)},
        )
