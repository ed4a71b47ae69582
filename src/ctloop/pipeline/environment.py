"""Who ran a run, where, and with what software: recorded on every run."""

from __future__ import annotations

import functools
import getpass
import importlib.metadata
import os
import platform
import socket
import subprocess
from pathlib import Path

from ctloop.core.jsontypes import JSONValue

__all__ = ["capture_environment", "capture_executor"]

_KEY_PACKAGES = (
    "ctloop", "numpy", "pandas", "pyarrow", "duckdb", "scikit-learn", "lightgbm", "xgboost",
    "sqlalchemy",
)


def capture_executor(runner: str) -> dict[str, JSONValue]:
    """User, host, process and runner."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {"user": user, "host": socket.gethostname(), "pid": os.getpid(), "runner": runner}


@functools.cache
def _packages() -> dict[str, str]:
    out = {}
    for name in _KEY_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def _git(folder: Path) -> dict[str, JSONValue]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return {}
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
            capture_output=True, text=True, timeout=5,
        )
        return {"git_commit": commit.stdout.strip(), "git_dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {}


def capture_environment(project: Path | None = None) -> dict[str, JSONValue]:
    """Python and key package versions, and the git commit of ``project`` if any."""
    env: dict[str, JSONValue] = {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "packages": _packages(),
    }
    if project is not None:
        env.update(_git(project))
    return env
