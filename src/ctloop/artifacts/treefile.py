"""Folders as one deterministic tar, so equal folders get equal content hashes.

Entries are sorted and stripped of what varies between machines and runs
(mtime, owner, group, permission bits other than "executable"), so the same
files always produce the same bytes and therefore the same cache keys.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path
from typing import IO

__all__ = ["extract_tree", "write_tree"]

_CHUNK = 1 << 20


class _HashingWriter:
    """A write-only file that hashes and counts what passes through it."""

    def __init__(self, sink: IO[bytes]) -> None:
        self.sink = sink
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.sink.write(data)


def _entry(path: Path, arcname: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(arcname)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if path.is_dir():
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.size = path.stat().st_size
        info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
    return info


def write_tree(folder: Path, target: Path) -> tuple[str, int]:
    """Write ``folder`` as a deterministic tar to ``target``; return (sha256, size)."""
    entries = sorted(p for p in folder.rglob("*"))
    with open(target, "wb") as raw:
        sink = _HashingWriter(raw)
        with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            for path in entries:
                if not (path.is_dir() or path.is_file()):
                    continue  # sockets, dangling links: not data
                info = _entry(path, path.relative_to(folder).as_posix())
                if info.isdir():
                    tar.addfile(info)
                else:
                    with open(path, "rb") as fh:
                        tar.addfile(info, fh)
    return sink.digest.hexdigest(), sink.size


def extract_tree(archive: Path, folder: Path) -> None:
    """Unpack a tree written by ``write_tree`` into the (new) ``folder``, files read-only."""
    folder.mkdir(parents=True)
    with tarfile.open(archive, mode="r:") as tar:
        tar.extractall(folder, filter="data")
    for path in folder.rglob("*"):
        if path.is_file():
            os.chmod(path, path.stat().st_mode & 0o555)
