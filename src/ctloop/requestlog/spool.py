"""The local write-ahead spool of a prediction-log writer: one append-only journal.

Each writer (one service process) owns one folder under the spool root and
holds an exclusive ``flock`` on it while alive. Every write appends its chunks
(an Arrow table as an IPC file, or each raw frame of
:mod:`ctloop.requestlog.rawchunks` as it was piped) to the folder's open journal
``<first seq>.wal`` as numbered records, one ``write`` and, with ``fsync``, one
``fdatasync`` for all of them: once ``write`` returns, the rows survive the
process being killed (and, with ``fsync``, the machine losing power).

Why one journal (issue 21): a file per chunk (open, write, fsync, rename, later
unlink) cost the writer process about a third of its fixed CPU, most of it in the
kernel, ~13 times a second whatever the traffic; making a file costs as much as a
few hundred appends. A publish takes the records after the last one published
(:meth:`Spool.take`, read from where the previous publish stopped) and, once the
index holds them, moves that mark past them (:meth:`Spool.remove`). A journal of
:data:`ROLL_BYTES` or more is rolled by the publish that takes it (the next write
starts a new one) and deleted once its last record is indexed: a file is made and
deleted every few MB, not per chunk, and the published part of the one open is
never more than that on disk.

A record is a header (magic, kind, payload bytes, rows, sequence number, the
payload's CRC-32, the header's own CRC-32) and the payload. A journal is read
record by record: a tail cut short by a crash (a header or payload past the end
of the file, or bytes that are no header) was never acknowledged and is ignored,
never half-read; a complete record whose payload fails its checksum, or bytes
between two good records, is set aside as a ``*.bad`` file (:meth:`set_aside`)
and the rest is published.

A publisher turns records into segments and deletes them. A folder whose lock
can be taken belongs to a dead writer: any live writer on the machine adopts
it and publishes what it left (exactly once, by the record numbers the index
records per writer). Folders of the layout before the journal (one file
``<seq>.arrow`` per chunk) are read the same way, so spools left by an older
version are published after an upgrade.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import struct
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ctloop.core.errors import StoreError
from ctloop.requestlog.rawchunks import MAGIC as _RAW_FILE_MAGIC
from ctloop.requestlog.rawchunks import RawChunk, is_raw, records

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["ROLL_BYTES", "Chunk", "Spool", "chunk_rows", "load_chunk", "orphaned_spools",
           "parse", "read_chunk", "spooled_chunks"]

log = logging.getLogger("ctloop.requestlog")

_LOCK = ".lock"
_OLD_SUFFIX = ".arrow"  # one file per chunk: the layout before the journal
_JOURNAL = ".wal"
_BAD = ".bad"
_SET_ASIDE = ".set-aside"  # under the spool root: unreadable chunks, kept when a folder goes
# magic, kind, pad, payload bytes, rows, seq, payload CRC-32, header CRC-32 (of the rest)
_HEAD = struct.Struct("<4sB3xIIQII")
_MAGIC = b"CTJ1"
_ARROW, _FRAME = 1, 2  # record kinds: an Arrow IPC file, one raw frame (a pickle)
_IOV = 512  # buffers per writev (IOV_MAX is 1024)
ROLL_BYTES = 8 << 20  # a journal this large is rolled by the next publish
_datasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)  # not on macOS


@dataclass(frozen=True)
class Chunk:
    """One spooled chunk: a journal record (``data``) or a file of the old layout
    (``path``); ``error`` says why a record cannot be read (its bytes are ``data``)."""

    seq: int
    rows: int
    kind: int = _ARROW
    data: bytes | memoryview | None = None
    path: Path | None = None
    error: str = ""
    where: str = ""  # file and offset, for messages and the set-aside file's name
    end: int = 0  # in a journal: the offset just past the record

    def load(self) -> pa.Table | list[RawChunk]:
        """The chunk as written: an Arrow table, or raw frames (decoded by the publisher);
        raises ``ValueError`` for a record that failed its checksum."""
        if self.error:
            raise ValueError(self.error)
        if self.path is not None:
            return load_chunk(self.path)
        assert self.data is not None
        if self.kind == _FRAME:
            return [RawChunk(bytes(self.data), self.rows)]
        import pyarrow as pa

        return pa.ipc.open_file(pa.py_buffer(self.data)).read_all()


@dataclass
class _Journal:
    """A journal file. This process's own know where their whole records end (``end``)
    and where the unpublished ones start (``start``); a dead writer's are read whole."""

    path: Path
    first: int
    end: int | None = None  # bytes of whole records (None: read to the end, tail may be torn)
    start: int = 0  # the offset of the first record not yet published (own journals)
    last: int = -1  # the last record's number, once known (-1: none yet / not read)
    rows: int | None = None  # rows of its records after ``start``, once known
    # (number, end offset, rows) of the records the last take read (not their bytes)
    read: list[tuple[int, int, int]] = field(default_factory=list)


class Spool:
    """One writer's folder: its journals ``<first seq>.wal`` (and old ``<seq>.arrow`` files)."""

    def __init__(self, folder: Path, lock_fd: int, *, fsync: bool = True) -> None:
        self.folder = folder
        self.writer = folder.name
        self.fsync = fsync
        self._lock_fd = lock_fd
        self._mutex = threading.Lock()  # the writer thread appends while a publisher takes
        self._fd = -1  # the open journal (the last of ``_journals`` while open)
        self._journals: list[_Journal] = []
        self._old: list[tuple[int, Path]] = []
        for path in folder.iterdir():
            name, suffix = path.stem, path.suffix
            if not name.isdigit():
                continue
            if suffix == _JOURNAL:
                self._journals.append(_Journal(path, int(name)))
            elif suffix == _OLD_SUFFIX:
                self._old.append((int(name), path))
        self._journals.sort(key=lambda j: j.first)
        self._old.sort()
        self._next = -1 if self._journals or self._old else 0  # -1: read the folder first

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

    # -- writing ---------------------------------------------------------------------------

    def write(self, chunk: pa.Table | Sequence[RawChunk]) -> int:
        """Append ``chunk`` (a table, or raw frames: one record each) to the journal;
        durable against a process crash on return. Returns the last record's number."""
        if isinstance(chunk, Sequence):
            payloads = [(_FRAME, frame.data, frame.rows) for frame in chunk]
        else:
            payloads = [(_ARROW, _ipc_bytes(chunk), int(chunk.num_rows))]
        with self._mutex:
            if self._next < 0:  # an adopted folder: number after what it holds
                held = self._chunks([(j, j.start, j.end) for j in self._journals], self._old)
                self._next = max((c.seq for c in held), default=-1) + 1
            seq = self._next
            parts: list[bytes | memoryview] = []
            size = 0
            for kind, data, rows in payloads:
                parts += [_header(kind, data, rows, seq), data]
                size += _HEAD.size + len(data)
                seq += 1
            journal = self._open()
            assert journal.end is not None
            try:
                _write_all(self._fd, parts)
                if self.fsync:
                    _datasync(self._fd)
                    if journal.end == 0:  # a new file: its name durable too
                        _sync_folder(self.folder)
            except OSError as exc:
                self._undo(journal)
                raise StoreError(
                    f"Cannot write the prediction log's write-ahead journal {journal.path}: "
                    f"{exc}. Free disk space or move the spool ('spool' in "
                    "[ctloop.prediction_log])."
                ) from exc
            journal.end += size
            journal.last = seq - 1
            journal.rows = (journal.rows or 0) + sum(rows for _, _, rows in payloads)
            self._next = seq
            return seq - 1

    def _open(self) -> _Journal:
        """The open journal, a new one when there is none (under the mutex)."""
        if self._fd >= 0:
            return self._journals[-1]
        path = self.folder / f"{self._next:012d}{_JOURNAL}"
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                               0o644)
        except OSError as exc:
            raise StoreError(
                f"Cannot create the prediction log's write-ahead journal {path}: {exc}. "
                "Free disk space or move the spool ('spool' in [ctloop.prediction_log])."
            ) from exc
        journal = _Journal(path, self._next, end=0, rows=0)
        self._journals.append(journal)
        return journal

    def _undo(self, journal: _Journal) -> None:
        """After a failed append: cut the journal back to its whole records, or (when even
        that fails) close it there, so the next write never follows a torn record."""
        assert journal.end is not None
        try:
            os.ftruncate(self._fd, journal.end)
        except OSError:
            self._seal()

    def _seal(self) -> None:
        """Close the open journal: later writes go to a new one (under the mutex)."""
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        os.close(fd)
        journal = self._journals[-1]
        if journal.end == 0:  # nothing in it
            self._journals.pop()
            journal.path.unlink(missing_ok=True)

    # -- reading ---------------------------------------------------------------------------

    def take(self) -> list[Chunk]:
        """Everything spooled and not yet removed, oldest first. A journal of
        :data:`ROLL_BYTES` or more is rolled: later writes go to a new one, so this one
        is deleted by the :meth:`remove` after the publish."""
        with self._mutex:
            if self._fd >= 0 and (self._journals[-1].end or 0) >= ROLL_BYTES:
                self._seal()
        return self.chunks()

    def chunks(self) -> list[Chunk]:
        """The chunks spooled and not yet removed, oldest first (a torn tail left out)."""
        with self._mutex:
            journals = [(j, j.start, j.end) for j in self._journals]
            old = list(self._old)
        return self._chunks(journals, old)

    def _chunks(self, journals: list[tuple[_Journal, int, int | None]],
                old: list[tuple[int, Path]]) -> list[Chunk]:
        out = [Chunk(seq, _old_rows(path), path=path, where=path.name) for seq, path in old]
        for journal, start, end in journals:
            if end is None or end > start:
                out += self._read(journal, start, end)
        out.sort(key=lambda c: c.seq)
        return out

    def _read(self, journal: _Journal, start: int, end: int | None) -> list[Chunk]:
        """A journal's records from ``start`` (up to ``end``: the whole records this
        process wrote; or, for a journal of a dead writer, all of it but a torn tail)."""
        try:
            with journal.path.open("rb") as f:
                f.seek(start)
                data = f.read() if end is None else f.read(end - start)
        except FileNotFoundError:  # removed meanwhile (published)
            return []
        except OSError as exc:
            raise StoreError(
                f"Cannot read the prediction log's write-ahead journal {journal.path}: {exc}."
            ) from exc
        # this process's own records were checked as written (whole, in the page cache):
        # the payloads' checksums guard what a crash or the disk may have done to a dead
        # writer's (~3 ms a second at 70,000 rows a second, issue 21)
        chunks, whole = parse(data, journal.path.name, start, verify=end is None)
        if whole < len(data):
            log.info("request log journal %s ends in %d bytes of an unfinished write (never "
                     "acknowledged); ignored", journal.path, len(data) - whole)
        if end is None:
            journal.last = max((c.seq for c in chunks), default=-1)
            journal.rows = sum(c.rows for c in chunks)
        else:
            journal.read = [(c.seq, c.end, c.rows) for c in chunks]
        return chunks

    def pending_rows(self) -> int:
        """Rows of the chunks spooled and not yet removed."""
        with self._mutex:
            journals = list(self._journals)
            old = list(self._old)
        rows = sum(_old_rows(path) for _, path in old)
        for journal in journals:
            if journal.rows is None:
                self._read(journal, journal.start, journal.end)
            rows += journal.rows or 0
        return rows

    # -- after a publish ---------------------------------------------------------------------

    def remove(self, upto: int) -> None:
        """Forget the chunks numbered ``<= upto`` (they are in published segments): old
        files and rolled journals holding nothing later are deleted; the open journal's
        next take starts after them."""
        with self._mutex:
            for seq, path in [o for o in self._old if o[0] <= upto]:
                path.unlink(missing_ok=True)
                self._old.remove((seq, path))
            keep = []
            for i, journal in enumerate(self._journals):
                open_now = self._fd >= 0 and i == len(self._journals) - 1
                if not open_now and journal.rows is not None and journal.last <= upto:
                    journal.path.unlink(missing_ok=True)
                    continue
                done = [r for r in journal.read if r[0] <= upto]
                if done and journal.end is not None:  # this process's: skip them from now on
                    journal.start = done[-1][1]
                    journal.rows = (journal.rows or 0) - sum(r[2] for r in done)
                    journal.read = journal.read[len(done):]
                keep.append(journal)
            self._journals = keep

    def set_aside(self, chunk: Chunk, reason: str) -> bool:
        """Keep a chunk that cannot be read as ``<root>/.set-aside/<writer>-<where>.bad``,
        out of the way of the rest and of the folder's removal. False when it was set
        aside before (a journal record is read again until its publish is indexed)."""
        folder = self.folder.parent / _SET_ASIDE
        target = folder / f"{self.writer}-{chunk.where}{_BAD}"
        if target.exists():
            return False
        log.error("request log chunk %s of writer %s cannot be read (%s); set aside as %s",
                  chunk.where, self.writer, reason, target)
        folder.mkdir(exist_ok=True)
        if chunk.path is not None:
            chunk.path.rename(target)
            with self._mutex:
                self._old = [o for o in self._old if o[1] != chunk.path]
        else:
            target.write_bytes(bytes(chunk.data or b""))
        return True

    def close(self, *, remove: bool) -> None:
        """Release the lock; with ``remove``, delete the (published) folder first."""
        with self._mutex:
            self._seal()
        if remove:
            shutil.rmtree(self.folder, ignore_errors=True)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        finally:
            os.close(self._lock_fd)


def parse(data: bytes, name: str = "journal", base: int = 0, *,
          verify: bool = True) -> tuple[list[Chunk], int]:
    """The records of a journal's bytes (read from offset ``base``) and how many bytes
    they (and bad regions) span; ``verify``: check the payloads' checksums too.

    What follows the last whole record and holds no good header (a crash cut the
    write short) is left out; a record failing its payload checksum, or bytes between
    two good records, become chunks with ``error`` set (set aside by the publisher).
    """
    view = memoryview(data)
    out: list[Chunk] = []
    at, n = 0, len(view)
    while at < n:
        head = _head_at(view, at)
        if head is None:  # no header here: skip to the next good one, if any
            nxt = _next_head(data, view, at + 1)
            if nxt is None:
                break  # a torn tail
            seq = out[-1].seq + 1 if out else 0  # (numbered as the record it most likely was)
            out.append(Chunk(seq, 0, data=view[at:nxt], where=f"{name}@{base + at}",
                             end=base + nxt,
                             error=f"{nxt - at} bytes between records are no record"))
            at = nxt
            continue
        kind, size, rows, seq, crc = head
        start = at + _HEAD.size
        if start + size > n:
            break  # a torn tail: the payload was cut short
        payload = view[start:start + size]
        error = "" if not verify or zlib.crc32(payload) == crc \
            else f"record {seq} fails its checksum"
        out.append(Chunk(seq, rows, kind, data=payload, where=f"{name}@{base + at}",
                         end=base + start + size, error=error))
        at = start + size
    return out, at


def _head_at(view: memoryview, at: int) -> tuple[int, int, int, int, int] | None:
    if len(view) - at < _HEAD.size:
        return None
    magic, kind, size, rows, seq, crc, head_crc = _HEAD.unpack_from(view, at)
    if magic != _MAGIC or zlib.crc32(view[at:at + _HEAD.size - 4]) != head_crc:
        return None
    return kind, size, rows, seq, crc


def _next_head(data: bytes, view: memoryview, start: int) -> int | None:
    at = start
    while (at := data.find(_MAGIC, at)) >= 0:
        if _head_at(view, at) is not None:
            return at
        at += 1
    return None


def _header(kind: int, data: bytes | memoryview, rows: int, seq: int) -> bytes:
    head = _HEAD.pack(_MAGIC, kind, len(data), rows, seq, zlib.crc32(data), 0)
    return head[:-4] + struct.pack("<I", zlib.crc32(head[:-4]))


def _ipc_bytes(table: pa.Table) -> memoryview:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as out:
        out.write_table(table)
    return memoryview(sink.getvalue())


def _write_all(fd: int, parts: list[bytes | memoryview]) -> None:
    """``writev`` until every byte is written (a regular file rarely takes less)."""
    views = [memoryview(p) for p in parts if len(p)]
    while views:
        done = os.writev(fd, views[:_IOV])
        while done and views:
            if done >= len(views[0]):
                done -= len(views.pop(0))
            else:
                views[0] = views[0][done:]
                done = 0


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _old_rows(path: Path) -> int:
    try:
        return chunk_rows(path)
    except Exception:  # unreadable: the publisher sets it aside
        return 0


def read_chunk(path: Path) -> pa.Table:
    """An Arrow chunk file's table (see :func:`load_chunk` for either kind)."""
    import pyarrow as pa

    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


def load_chunk(path: Path) -> pa.Table | list[RawChunk]:
    """A chunk file of the old layout: an Arrow table, or the raw frames."""
    with path.open("rb") as f:
        head = f.read(len(_RAW_FILE_MAGIC))
        if not is_raw(head):
            return read_chunk(path)
        return records(head + f.read())


def chunk_rows(path: Path) -> int:
    """Rows in a chunk file of the old layout, of either kind."""
    chunk = load_chunk(path)
    if isinstance(chunk, list):
        return sum(r.rows for r in chunk)
    return int(chunk.num_rows)


def spooled_chunks(root: Path) -> list[Chunk]:
    """Every chunk in the writers' folders under ``root`` (at any depth), live or dead,
    without taking their locks: for status displays and tests. A live writer's open
    journal still holds what it published since the journal was last rolled."""
    out: list[Chunk] = []
    for lock in sorted(root.rglob(_LOCK)) if root.is_dir() else []:
        if not lock.parent.name.startswith("."):
            out += Spool(lock.parent, -1).chunks()
    return out


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
        for stale in folder.glob(".*.tmp"):  # half-written chunks of the old layout
            stale.unlink(missing_ok=True)
        yield Spool(folder, fd, fsync=fsync)
