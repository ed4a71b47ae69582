"""Entry point of a step's own process: ``python -m ctloop.pipeline.worker TASK RESULT``.

With ``--lifeline FD`` the worker watches a pipe held open by the process that
started it; when that process dies (even by SIGKILL) the pipe reads EOF and the
worker kills its own process group, the step and anything the step started.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
from pathlib import Path

from ctloop.pipeline.task import run_task


def _watch(fd: int) -> None:
    """Block until the parent's end of the pipe closes, then end the whole group."""
    try:
        while os.read(fd, 1):
            pass
    except OSError:
        pass
    try:
        os.killpg(os.getpgrp(), signal.SIGKILL)
    finally:
        os._exit(137)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--lifeline" in args:
        at = args.index("--lifeline")
        fd = int(args[at + 1])
        del args[at:at + 2]
        threading.Thread(target=_watch, args=(fd,), daemon=True, name="ctloop-lifeline").start()
    task_file, result_file = Path(args[0]), Path(args[1])
    task = pickle.loads(task_file.read_bytes())
    result = run_task(task)
    tmp = result_file.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(result))
    tmp.replace(result_file)


if __name__ == "__main__":
    main()
