"""Attacks on stored models, for tests that prove ctloop refuses them.

``plant_pickle`` does what an attacker with write access to the unpacked model
cache would do: replace the model with a pickle that runs code when loaded and
rewrite the manifest beside it so that the manifest's own hash check passes.
The "code" only writes a marker file, so a test can tell whether it ran.
"""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import stat
from pathlib import Path

from ctloop.core.hashing import hash_file

__all__ = ["EvilPayload", "plant_pickle"]

MANIFEST = "ctloop-model.json"


class EvilPayload:
    """Unpickling this writes ``marker``: a stand-in for arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        # Pickled by reference to pathlib only: the victim needs no test code to run it.
        return (pathlib.Path.write_text, (pathlib.Path(self.marker), "the planted pickle ran"))


def _writable(path: Path) -> None:
    if path.exists():
        os.chmod(path, path.stat().st_mode | stat.S_IWUSR)


def plant_pickle(folder: Path, marker: Path) -> Path:
    """Swap the model in an unpacked model ``folder`` for ``EvilPayload(marker)``.

    The manifest is rewritten to point at the pickle with its correct sha256
    (flavor ``sklearn``), as a careful attacker would. Returns the pickle's path.
    """
    folder = Path(folder)
    _writable(folder)
    manifest_path = folder / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    old = folder / str(manifest["model_file"])
    _writable(old)
    old.unlink(missing_ok=True)
    evil = folder / "model.joblib"
    evil.write_bytes(pickle.dumps(EvilPayload(marker), protocol=4))
    manifest.update(flavor="sklearn", model_file=evil.name, sha256=hash_file(evil))
    _writable(manifest_path)
    manifest_path.write_text(json.dumps(manifest, sort_keys=True))
    return evil
