"""The infra check's probe server: a clean interpreter that forks a fresh child per check.

Starting a new interpreter per candidate cost more than loading and predicting
(about 1.2 s of imports each; a loop's replay checks every candidate). So one
``python -m ctloop.models.infra_probe --serve`` is started per process, on first
use: it imports only the serving side (numpy, pandas, the model flavors), never
anything the training process loaded, and forks a child per check, which is
therefore as fresh as a new interpreter and starts in milliseconds.

The standard library's fork server was the first choice, but its children
re-run the parent's ``__main__`` script (a user's script without a
``__name__ == "__main__"`` guard would run again inside the check) and it
refuses to start from daemonic processes such as Dask workers. A plain
subprocess speaking JSON lines has neither problem.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["PROBE_MODULE", "ProbeServer", "probe_server"]

PROBE_MODULE = "ctloop.serving.probe"
"""The probe server's module, named not imported (serving sits below models): it probes
in-process as :mod:`ctloop.models.infra_probe` does, then asks the real service."""

_lock = threading.Lock()
_server: ProbeServer | None = None


class ProbeServer:
    """One running probe server and the pipes to it; one check at a time."""

    def __init__(self, python: str = sys.executable) -> None:
        self.proc = subprocess.Popen(
            [python, "-m", PROBE_MODULE, "--serve"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
        )
        self._lock = threading.Lock()
        self._buffer = b""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def probe(self, model_path: str, sample_path: str, out: Path,
              timeout_s: float) -> dict[str, Any] | str:
        """The child's report, or why there is none (timeout, crash)."""
        with self._lock:
            assert self.proc.stdin is not None
            request = {"model": model_path, "sample": sample_path, "out": str(out)}
            try:
                self.proc.stdin.write(json.dumps(request).encode() + b"\n")
                pid = self._read(timeout_s)["pid"]
            except (OSError, KeyError, TimeoutError) as exc:
                self.close()
                return f"The probe server stopped answering ({type(exc).__name__})."
            try:
                code = self._read(timeout_s)["exit"]
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                self._read(30.0)  # the server reaps the killed child and answers
                return f"Loading and predicting took over {timeout_s:g} s."
        if code != 0 or not out.exists():
            return f"The probe process crashed (exit {code}); its error is on stderr."
        report: dict[str, Any] = json.loads(out.read_text())
        return report

    def _read(self, timeout_s: float) -> dict[str, int]:
        """The server's next answer line, unbuffered so ``select`` sees what is pending."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError
            chunk = os.read(fd, 4096)
            if not chunk:
                raise OSError("the probe server exited")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        answer: dict[str, int] = json.loads(line)
        return answer

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()  # end of input: the server exits
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def probe_server() -> ProbeServer | None:
    """This process's probe server, started on first use; None where ``fork`` is missing."""
    global _server
    if not hasattr(os, "fork"):
        return None
    with _lock:
        if _server is None or not _server.alive():
            _server = ProbeServer()
            atexit.register(_server.close)
        return _server
