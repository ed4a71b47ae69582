"""Peer venvs (``ctloop.testing.peers``): built once, reused, rebuilt when broken, one builder.

Real venvs in a temporary peers folder, with a one-module wheel written here so
nothing is fetched; the failing install is a requirement pip refuses to parse.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ctloop.testing.peers import Peer, PeerUnavailable, ensure_peer, peers_root, require_peer

pytestmark = pytest.mark.slow


def _wheel(folder: Path, version: str) -> Path:
    """A pure-Python wheel of the module ``tinypeer`` that knows its version."""
    files = {
        "tinypeer/__init__.py": f"VERSION = {version!r}\n",
        f"tinypeer-{version}.dist-info/METADATA":
            f"Metadata-Version: 2.1\nName: tinypeer\nVersion: {version}\n",
        f"tinypeer-{version}.dist-info/WHEEL":
            "Wheel-Version: 1.0\nGenerator: ctloop-tests\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n",
    }
    record = f"tinypeer-{version}.dist-info/RECORD"
    lines = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        lines.append(f"{name},sha256={digest.decode()},{len(text.encode())}")
    files[record] = "\n".join([*lines, f"{record},,"]) + "\n"
    path = folder / f"tinypeer-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return path


def _peer(wheel: Path, version: str) -> Peer:
    return Peer("tinypeer", (str(wheel),),
                f"import tinypeer\nassert tinypeer.VERSION == {version!r}\n")


def _builds(peers_dir: Path, name: str = "tinypeer") -> list[str]:
    """The helper's note of each build, one line per attempt."""
    notes = peers_dir / f"{name}.builds"
    return notes.read_text().splitlines() if notes.exists() else []


@pytest.fixture
def peers_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CTLOOP_PEERS_DIR", str(tmp_path / "peers"))
    return tmp_path / "peers"


def test_builds_once_reuses_and_rebuilds_when_broken_or_outdated(
        peers_dir: Path, tmp_path: Path) -> None:
    assert peers_root() == peers_dir
    peer = _peer(_wheel(tmp_path, "1.0"), "1.0")
    python = ensure_peer(peer)
    assert python == peers_dir / "tinypeer" / "bin" / "python"
    assert ensure_peer(peer) == python and len(_builds(peers_dir)) == 1  # reused
    assert _builds(peers_dir)[0].endswith(" built")

    site = subprocess.run([str(python), "-c", "import tinypeer; print(tinypeer.__file__)"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site).unlink()  # the venv no longer imports its peer
    assert ensure_peer(peer) == python and len(_builds(peers_dir)) == 2
    subprocess.run([str(python), "-I", "-c", peer.check], check=True)

    newer = _peer(_wheel(tmp_path, "2.0"), "2.0")  # other requirements: a fresh venv
    ensure_peer(newer)
    assert len(_builds(peers_dir)) == 3
    subprocess.run([str(python), "-I", "-c", newer.check], check=True)


def test_two_processes_asking_at_once_build_it_once(peers_dir: Path, tmp_path: Path) -> None:
    wheel = _wheel(tmp_path, "1.0")
    script = (
        "from ctloop.testing.peers import Peer, ensure_peer\n"
        f"peer = Peer('tinypeer', ({str(wheel)!r},), 'import tinypeer')\n"
        "print(ensure_peer(peer))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [proc.communicate(timeout=240) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], [err for _, err in outputs]
    python = peers_dir / "tinypeer" / "bin" / "python"
    assert {out.strip() for out, _ in outputs} == {str(python)}
    subprocess.run([str(python), "-I", "-c", "import tinypeer"], check=True)
    # Without the lock both would find no venv and build one, the second over the first.
    assert len(_builds(peers_dir)) == 1 and _builds(peers_dir)[0].endswith(" built")


def test_a_failed_install_names_pips_error_then_skips_or_fails_under_ci(
        peers_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = Peer("broken", ("no such requirement ((",), "import sys")
    with pytest.raises(PeerUnavailable) as raised:
        ensure_peer(broken)
    message = str(raised.value)
    assert message.startswith("pip install no such requirement (( for peer 'broken' failed: ")
    assert "ERROR: Invalid requirement" in message and "\n" not in message
    assert not (peers_dir / "broken").exists()  # nothing half-built left to reuse
    assert "s failed: pip install" in _builds(peers_dir, "broken")[0]

    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Invalid requirement"):
        require_peer(broken)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        require_peer(broken)
