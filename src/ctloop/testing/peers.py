"""Virtual environments for peer clients that cannot share ctloop's own.

Some official clients the tests must use pin libraries ctloop has moved past
(the kserve SDK 0.21 pins ``pandas<3``; ctloop runs on pandas 3). Such a peer
gets a venv of its own, built once per machine under a cache folder that
outlives test runs, and is driven as a subprocess. Building takes a minute or
so; reusing costs one import check (about a second). The venv is made without
a pip of its own: this interpreter's pip installs into it (``pip --python``).

The folder is ``$CTLOOP_PEERS_DIR``, else ``$XDG_CACHE_HOME/ctloop/peers``
(``~/.cache/ctloop/peers``). A file lock keeps two pytest workers from
building the same venv at once; a venv that no longer imports its peer is
removed and rebuilt. Each build is noted in ``<name>.builds`` beside it (time,
process, seconds, outcome), to tell a cold run from a warm one.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ctloop.core.errors import ConfigError
from ctloop.testing.services import in_ci

__all__ = [
    "KSERVE",
    "MLFLOW",
    "Peer",
    "PeerUnavailable",
    "ensure_peer",
    "peers_root",
    "require_peer",
]

_READY = ".ctloop-peer-ready"


class PeerUnavailable(ConfigError):
    """The peer's venv could not be built (pip failed, or the peer does not import)."""


@dataclass(frozen=True)
class Peer:
    """A client installed in its own venv: folder name, pip requirements, an import check."""

    name: str
    requirements: tuple[str, ...]
    check: str  # Python source that exits 0 only when the peer is usable

    def marker(self) -> str:
        """What the ready file holds: a venv built for other requirements is rebuilt."""
        return "\n".join(self.requirements) + "\n"


# The SDK's REST client (httpx) and gRPC client (grpcio) are in its base install; no extra.
KSERVE = Peer(
    name="kserve-0.21.0",
    requirements=("kserve==0.21.0",),
    check=(
        "from importlib.metadata import version\n"
        "from kserve import InferenceGRPCClient, InferenceRESTClient, InferRequest, InferInput\n"
        "assert version('kserve') == '0.21.0', version('kserve')\n"
    ),
)




def _same_as_here(*dists: str) -> tuple[str, ...]:
    """Pins to the versions installed beside ctloop, so files written there read here."""
    return tuple(f"{d}=={importlib.metadata.version(d)}" for d in dists)


# MLflow writes the model folders `ctloop models import` reads; the libraries it saves with are
# pinned to ctloop's own versions (a pickle reads back only under the version that wrote it).
MLFLOW = Peer(
    name="mlflow-skinny-3.17.2",
    requirements=(
        "mlflow-skinny==3.17.2",
        *_same_as_here("scikit-learn", "lightgbm", "pandas", "numpy", "skops"),
    ),
    check=(
        "import mlflow.sklearn, mlflow.lightgbm, sklearn, lightgbm, pandas\n"
        "from importlib.metadata import version\n"
        "assert version('mlflow-skinny') == '3.17.2', version('mlflow-skinny')\n"
    ),
)


def peers_root() -> Path:
    """Where peer venvs live; survives between runs on one machine."""
    explicit = os.environ.get("CTLOOP_PEERS_DIR")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(cache) / "ctloop" / "peers"


def _python(folder: Path) -> Path:
    return folder / "bin" / "python"


def _usable(peer: Peer, folder: Path) -> bool:
    """Built for these requirements and the peer still imports."""
    ready = folder / _READY
    if not ready.is_file() or ready.read_text() != peer.marker():
        return False
    try:
        proc = subprocess.run([str(_python(folder)), "-I", "-c", peer.check],
                              capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def _last_line(text: str) -> str:
    """pip's own error line (its last ERROR line), else the last line it printed."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["(pip printed nothing)"])[-1]


def _host_pip_drives_others() -> bool:
    """Whether this interpreter's pip can install into another venv (``--python``, pip 22.3+).

    Seeding a venv with its own pip (ensurepip) costs more than the rest of a small
    build: about 3 s of CPU, 20 s of wall time on a loaded machine.
    """
    try:
        version = importlib.metadata.version("pip")
    except importlib.metadata.PackageNotFoundError:
        return False
    parts = [int(p) for p in re.findall(r"\d+", version)[:2]]
    return len(parts) == 2 and (parts[0], parts[1]) >= (22, 3)


def _build(peer: Peer, folder: Path, timeout: float) -> None:
    """A fresh venv with the requirements; PeerUnavailable with pip's last line on failure."""
    shutil.rmtree(folder, ignore_errors=True)
    host_pip = _host_pip_drives_others()
    created = subprocess.run(
        [sys.executable, "-m", "venv", *(["--without-pip"] if host_pip else []), str(folder)],
        capture_output=True, text=True)
    if created.returncode != 0:
        raise PeerUnavailable(f"Could not create the venv for peer {peer.name!r} in {folder}: "
                              f"{_last_line(created.stderr + created.stdout)}")
    pip = ([sys.executable, "-m", "pip", "--python", str(_python(folder))] if host_pip
           else [str(_python(folder)), "-m", "pip"])
    try:
        proc = subprocess.run(
            [*pip, "install", "--quiet", "--disable-pip-version-check", *peer.requirements],
            capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        shutil.rmtree(folder, ignore_errors=True)
        raise PeerUnavailable(f"pip install {' '.join(peer.requirements)} for peer "
                              f"{peer.name!r} took over {timeout:.0f} s") from None
    if proc.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise PeerUnavailable(f"pip install {' '.join(peer.requirements)} for peer "
                              f"{peer.name!r} failed: {_last_line(proc.stderr + proc.stdout)}")
    (folder / _READY).write_text(peer.marker())
    if not _usable(peer, folder):
        raise PeerUnavailable(f"Peer {peer.name!r} was installed in {folder} but does not "
                              "import; delete the folder to retry")


def ensure_peer(peer: Peer, *, timeout: float = 600.0) -> Path:
    """The python executable of ``peer``'s venv, built first if missing or broken."""
    root = peers_root()
    folder = root / peer.name
    if _usable(peer, folder):
        return _python(folder)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{peer.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder per peer across processes
        if not _usable(peer, folder):  # another worker may have built it meanwhile
            _noted(peer, root, lambda: _build(peer, folder, timeout))
    return _python(folder)


def _noted(peer: Peer, root: Path, build: Callable[[], None]) -> None:
    """Run ``build``, appending one line per attempt to ``<name>.builds``."""
    start = time.monotonic()
    outcome = "stopped"  # an interrupt or an unexpected error
    try:
        build()
        outcome = "built"
    except PeerUnavailable as exc:
        outcome = f"failed: {exc}"
        raise
    finally:
        with open(root / f"{peer.name}.builds", "a") as notes:
            notes.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} pid {os.getpid()} "
                        f"{time.monotonic() - start:.1f}s {outcome}\n")


def require_peer(peer: Peer) -> Path:
    """``ensure_peer`` for a test: a failed build skips it, or fails it when ``CI`` is set."""
    try:
        return ensure_peer(peer)
    except PeerUnavailable as exc:
        if in_ci():
            pytest.fail(f"{exc} (CI is set: the peer tests must run)")
        pytest.skip(str(exc))
