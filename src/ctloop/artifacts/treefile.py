"""Folders as one deterministic tar, so equal folders get equal content hashes.

Entries are sorted and stripped of what varies between machines and runs
(mtime, owner, group, permission bits other than "executable"), so the same
files always produce the same bytes and therefore the same cache keys.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

__all__ = ["TreeSnapshot", "extract_tree", "read_tree", "tree_digest", "write_tree"]

_CHUNK = 1 << 20


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...


class _HashingWriter:
    """A write-only file that hashes and counts what passes through it."""

    def __init__(self, sink: _Sink) -> None:
        self.sink = sink
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.sink.write(data)


class _NullSink:
    """Discards what it is given: hashing a tree without writing the tar."""

    def write(self, data: bytes, /) -> int:
        return len(data)


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


def _members(folder: Path) -> Iterator[Path]:
    """The entries a tree is made of, in the order its tar lists them."""
    for path in sorted(folder.rglob("*")):
        if path.is_dir() or path.is_file():  # sockets, dangling links: not data
            yield path


_Items = Iterator[tuple[tarfile.TarInfo, IO[bytes] | None]]


def _write_tar(sink: _HashingWriter, items: _Items) -> None:
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        for info, fh in items:
            tar.addfile(info, fh)


def _file_items(folder: Path) -> _Items:
    for path in _members(folder):
        info = _entry(path, path.relative_to(folder).as_posix())
        if info.isdir():
            yield info, None
        else:
            with open(path, "rb") as fh:
                yield info, fh


def write_tree(folder: Path, target: Path) -> tuple[str, int]:
    """Write ``folder`` as a deterministic tar to ``target``; return (sha256, size)."""
    with open(target, "wb") as raw:
        sink = _HashingWriter(raw)
        _write_tar(sink, _file_items(folder))
    return sink.digest.hexdigest(), sink.size


@dataclass(frozen=True)
class TreeSnapshot:
    """A folder's files read once into memory, with the sha256 its tree tar would have.

    Whoever checks ``sha256`` against a recorded hash and then uses ``files``
    uses exactly the bytes that were checked: nothing can be swapped on disk
    between the check and the use.
    """

    sha256: str
    files: dict[str, bytes]  # relative posix path -> content


def read_tree(folder: Path) -> TreeSnapshot:
    """Read every file under ``folder`` and hash them as ``write_tree`` would store them."""
    files: dict[str, bytes] = {}

    def items() -> _Items:
        for path in _members(folder):
            name = path.relative_to(folder).as_posix()
            info = _entry(path, name)
            if info.isdir():
                yield info, None
                continue
            data = path.read_bytes()
            info.size = len(data)  # what was read, even if the file grew meanwhile
            files[name] = data
            yield info, io.BytesIO(data)

    sink = _HashingWriter(_NullSink())
    _write_tar(sink, items())
    return TreeSnapshot(sink.digest.hexdigest(), files)


def tree_digest(folder: Path) -> str:
    """The sha256 ``write_tree`` would give ``folder``, without writing or keeping the tar."""
    sink = _HashingWriter(_NullSink())
    _write_tar(sink, _file_items(folder))
    return sink.digest.hexdigest()


def _plain_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """Every member, if each is a plain file or folder inside the archive's root."""
    from pathlib import PurePosixPath

    from ctloop.core.errors import IntegrityError

    members = tar.getmembers()
    for member in members:
        path = PurePosixPath(member.name)
        if path.is_absolute() or ".." in path.parts or not (member.isfile() or member.isdir()):
            raise IntegrityError(f"The stored folder holds {member.name!r}, which is not a "
                                 "plain file inside it: refused.")
    return members


def extract_tree(archive: Path, folder: Path) -> None:
    """Unpack a tree written by ``write_tree`` into the (new) ``folder``, files read-only."""
    folder.mkdir(parents=True)
    with tarfile.open(archive, mode="r:") as tar:
        if hasattr(tarfile, "data_filter"):  # Python 3.11.4+ (PEP 706)
            tar.extractall(folder, filter="data")
        else:  # an older 3.11 (Debian 12's 3.11.2): the same refusals, checked by hand
            tar.extractall(folder, members=_plain_members(tar))
    for path in folder.rglob("*"):
        if path.is_file():
            os.chmod(path, path.stat().st_mode & 0o555)
