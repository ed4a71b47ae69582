"""The one liveness check the engine (and the trigger controller) use for recorded processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from ctloop.core.processes import Liveness, process_liveness, this_process
from ctloop.testing.services import patience


def test_this_process_is_alive() -> None:
    assert process_liveness(this_process()) is Liveness.ALIVE


def test_a_live_python_child_is_alive_and_a_finished_one_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "print('up', flush=True); "
                              "import time; time.sleep(30)"], stdout=subprocess.PIPE)
    assert child.stdout is not None and child.stdout.readline() == b"up\n"
    try:
        assert process_liveness({"host": socket.gethostname(), "pid": child.pid}) is Liveness.ALIVE
    finally:
        child.kill()
        child.wait()
    assert process_liveness({"host": socket.gethostname(), "pid": child.pid}) is Liveness.DEAD


def test_a_zombie_is_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.time() + patience(10)
    while time.time() < deadline:  # exited but not reaped: a zombie
        with open(f"/proc/{child.pid}/stat", "rb") as fh:
            if fh.read().rpartition(b")")[2].split()[0] == b"Z":
                break
        time.sleep(0.02)
    try:
        assert process_liveness({"host": socket.gethostname(), "pid": child.pid}) is Liveness.DEAD
    finally:
        child.wait()


def test_a_pid_reused_by_another_program_is_dead() -> None:
    child = subprocess.Popen(["sh", "-c", "echo up; exec sleep 30"], stdout=subprocess.PIPE)
    assert child.stdout is not None and child.stdout.readline() == b"up\n"
    deadline = time.time() + patience(10)
    while b"sleep" not in Path(f"/proc/{child.pid}/cmdline").read_bytes():
        assert time.time() < deadline
        time.sleep(0.01)
    try:
        assert process_liveness({"host": socket.gethostname(), "pid": child.pid}) is Liveness.DEAD
    finally:
        child.kill()
        child.wait()


def test_another_host_is_unknown_and_missing_records_dead() -> None:
    assert process_liveness({"host": "elsewhere.example", "pid": os.getpid()}) is Liveness.UNKNOWN
    assert process_liveness(None) is Liveness.DEAD
    assert process_liveness({"host": socket.gethostname()}) is Liveness.DEAD
    assert process_liveness({"host": socket.gethostname(), "pid": "x"}) is Liveness.DEAD
