"""The local write-ahead spool of a prediction-log writer.

Each writer (one service process) owns one folder under the spool root and
holds an exclusive ``flock`` on it while alive. Every append becomes one
numbered chunk (an Arrow IPC file, or the raw frames of
:mod:`ctloop.requestlog.rawchunks`, both named ``.arrow``), written to a hidden
name, optionally fsynced, then renamed: once ``write`` returns, the rows survive
the process being killed.
A publisher turns chunks into segments and deletes them. A folder whose lock
can be taken belongs to a dead writer: any live writer on the machine adopts
it and publishes what it left (exactly once, by the chunk numbers the index
records per writer).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ctloop.core.errors import StoreError
from ctloop.requestlog.rawchunks import MAGIC, RawChunk, is_raw, records

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Spool", "chunk_rows", "load_chunk", "orphaned_spools", "read_chunk"]

_LOCK = ".lock"
_SUFFIX = ".arrow"


class Spool:
    """One writer's folder of write-ahead chunks ``<seq>.arrow``."""

    def __init__(self, folder: Path, lock_fd: int, *, fsync: bool = True) -> None:
        self.folder = folder
        self.writer = folder.name
        self.fsync = fsync
        self._lock_fd = lock_fd
        seqs = [seq for seq, _ in self.chunks()]
        self._next = max(seqs) + 1 if seqs else 0

    @classmethod
    def create(cls, root: Path, writer: str, *, fsync: bool = True) -> Spool:
        """A new locked folder for ``writer`` (made under a hidden name, then renamed)."""
        try:
            root.mkdir(parents=True, exist_ok=True)
            hidden = root / f".{writer}.new"
            hidden.mkdir()
            fd = os.open(hidden / _LOCK, os.O_CREAT | os.O_RDWR, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.replace(hidden, root / writer)
        except OSError as exc:
            raise StoreError(
                f"Cannot create the prediction log's write-ahead spool under {root}: {exc}. "
                "Check that the folder is writable and the disk is not full, or set "
                "'spool' in the [ctloop.prediction_log] table of ctloop.toml."
            ) from exc
        return cls(root / writer, fd, fsync=fsync)

    def write(self, chunk: pa.Table | bytes) -> int:
        """Write ``chunk`` (a table, or raw frames already encoded) as the next chunk;
        durable against a process crash on return."""
        seq = self._next
        final = self.folder / f"{seq:012d}{_SUFFIX}"
        tmp = self.folder / f".{seq:012d}.tmp"
        if isinstance(chunk, bytes):
            view = memoryview(chunk)
        else:
            import pyarrow as pa

            sink = pa.BufferOutputStream()  # built in memory, then one open, write, fsync
            with pa.ipc.new_file(sink, chunk.schema) as out:
                out.write_table(chunk)
            view = memoryview(sink.getvalue())
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                while view:
                    view = view[os.write(fd, view):]
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StoreError(
                f"Cannot write the prediction log's write-ahead chunk {final}: {exc}. "
                "Free disk space or move the spool ('spool' in [ctloop.prediction_log])."
            ) from exc
        self._next = seq + 1
        return seq

    def chunks(self) -> list[tuple[int, Path]]:
        """Complete chunks, oldest first (hidden half-written ones are ignored)."""
        out = []
        for path in self.folder.glob(f"*{_SUFFIX}"):
            try:
                out.append((int(path.stem), path))
            except ValueError:
                continue
        return sorted(out)

    def remove(self, upto: int) -> None:
        """Delete chunks numbered ``<= upto`` (they are in published segments)."""
        for seq, path in self.chunks():
            if seq <= upto:
                path.unlink(missing_ok=True)

    def pending_rows(self) -> int:
        return sum(chunk_rows(path) for _, path in self.chunks())

    def close(self, *, remove: bool) -> None:
        """Release the lock; with ``remove``, delete the (published) folder first."""
        if remove:
            shutil.rmtree(self.folder, ignore_errors=True)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        finally:
            os.close(self._lock_fd)


def read_chunk(path: Path) -> pa.Table:
    """An Arrow chunk's table (see :func:`load_chunk` for either kind)."""
    import pyarrow as pa

    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


def load_chunk(path: Path) -> pa.Table | list[RawChunk]:
    """A chunk as written: an Arrow table, or the raw frames (decoded by the publisher)."""
    with path.open("rb") as f:
        head = f.read(len(MAGIC))
        if not is_raw(head):
            return read_chunk(path)
        return records(head + f.read())


def chunk_rows(path: Path) -> int:
    """Rows in a chunk of either kind."""
    chunk = load_chunk(path)
    if isinstance(chunk, list):
        return sum(r.rows for r in chunk)
    return int(chunk.num_rows)


def orphaned_spools(root: Path, *, fsync: bool = True) -> Iterator[Spool]:
    """Folders of dead writers under ``root``, each locked for the caller while yielded."""
    if not root.is_dir():
        return
    for folder in sorted(root.iterdir()):
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        try:
            fd = os.open(folder / _LOCK, os.O_CREAT | os.O_RDWR, 0o644)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a live writer holds it
            os.close(fd)
            continue
        if not folder.exists():  # adopted and removed by another process meanwhile
            os.close(fd)
            continue
        for stale in folder.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
        yield Spool(folder, fd, fsync=fsync)
