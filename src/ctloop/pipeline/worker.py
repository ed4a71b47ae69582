"""Entry point of a step's own process: ``python -m ctloop.pipeline.worker TASK RESULT``."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

from ctloop.pipeline.task import run_task


def main() -> None:
    task_file, result_file = Path(sys.argv[1]), Path(sys.argv[2])
    task = pickle.loads(task_file.read_bytes())
    result = run_task(task)
    tmp = result_file.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(result))
    tmp.replace(result_file)


if __name__ == "__main__":
    main()
