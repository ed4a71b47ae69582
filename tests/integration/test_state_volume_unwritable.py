"""A state folder this user cannot write (a root-owned volume) is named, never a "connection" error.

Containers run as a non-root user on volumes that may be mounted as root. SQLite
then answers "unable to open database file", which ctloop used to report as a
metadata store that does not answer. Each entry point that writes state
(``serve``, the controllers, the deploy probe, any command on the SQLite store)
must say which folder, which user and what to do, in one line, exit 2.

As root (CI, containers) the commands run as uid 65534 through ``setpriv``; as
another user the folder is made read-only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ctloop.testing.services import patience

NOBODY = 65534


def _as_other_user(folder: Path) -> list[str]:
    """The command prefix that runs as a user who cannot write ``folder``."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        if os.environ.get("CI"):
            pytest.fail("setpriv (util-linux) is needed to run as another user under CI")
        pytest.skip("setpriv is not installed")
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


@pytest.fixture
def state() -> Iterator[Path]:
    # not under pytest's tmp_path: its root is private to this user, as /tmp is not
    volume = Path(tempfile.mkdtemp(prefix="ctloop-volume-"))
    volume.chmod(0o755)  # reachable by the other user, as a mount point is
    folder = volume / "state"
    folder.mkdir()
    yield folder
    folder.chmod(0o755)
    shutil.rmtree(volume, ignore_errors=True)


@pytest.mark.parametrize("command", [
    ["serve", "flights", "--port", "1"],
    ["deploy", "probe"],
    ["runs", "list"],
])
def test_an_unwritable_state_folder_is_named_with_the_user_and_the_fix(
        state: Path, command: list[str]) -> None:
    prefix = _as_other_user(state)
    env = {**os.environ, "CTLOOP_HOME": str(state), "HOME": str(state.parent)}
    for variable in ("CTLOOP_METADATA_URL", "CTLOOP_ARTIFACTS_URL", "CTLOOP_ENV"):
        env.pop(variable, None)
    done = subprocess.run([*prefix, sys.executable, "-m", "ctloop", *command],
                          cwd=state.parent, env=env, capture_output=True, text=True,
                          timeout=patience(120))
    lines = [line for line in done.stderr.splitlines() + done.stdout.splitlines()
             if line.strip()]
    assert done.returncode == 2, (done.returncode, lines)
    assert len(lines) == 1, lines
    assert str(state) in lines[0] and "not writable by" in lines[0], lines
    assert "chown" in lines[0] and "connect" not in lines[0].lower(), lines
    assert not (state / "metadata.db").exists()  # nothing was half made


def test_a_project_file_this_user_may_not_read_is_one_line(state: Path) -> None:
    toml = state.parent / "ctloop.toml"
    toml.write_text("[ctloop]\n")
    toml.chmod(0o600)
    prefix = _as_other_user(state)
    if not prefix:
        toml.chmod(0o000)
    env = {**os.environ, "CTLOOP_HOME": str(state)}
    done = subprocess.run([*prefix, sys.executable, "-m", "ctloop", "runs", "list"],
                          cwd=state.parent, env=env, capture_output=True, text=True,
                          timeout=patience(120))
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, (done.returncode, lines)
    assert "Permission denied on" in lines[0] and str(toml) in lines[0], lines
