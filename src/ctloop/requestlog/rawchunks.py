"""Raw spool chunks: a request's entries as the server pickled them, built into Arrow at publish.

Why (issue 21): building an Arrow table and writing it as an IPC file for every chunk
cost the writer ~1.3 ms a chunk, a dozen chunks a second whatever the traffic. The
server's sender already pickles the packed entries for the pipe; the writer process
spools those bytes as they are (one journal record per frame,
:mod:`ctloop.requestlog.spool`) and the publisher turns all the frames of a publish into
tables at once (:func:`ctloop.requestlog.entries.merge_packs`: one table per model
version and route, not one per frame).

Spools written before the journal hold one file per chunk, named ``.arrow`` whichever
kind it is: an Arrow IPC file (``ARROW1``), or :data:`MAGIC` then one record per frame,
``<u32 bytes><u32 rows>`` and the pickle (:func:`join`, read by :func:`records`). They
are still read, so a spool left by an older version is published after an upgrade.

The pickles are read back by another process when a dead writer's spool is adopted,
so they are never trusted: :func:`encode` refuses (returns None; the caller builds
Arrow instead) any pickle naming a class or function outside :data:`ALLOWED`, and
:func:`decode` loads with the same list, nothing else.
"""

from __future__ import annotations

import io
import pickle
import struct
from collections.abc import Sequence
from types import BuiltinFunctionType, FunctionType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ctloop.requestlog.entries import Item

__all__ = ["ALLOWED", "MAGIC", "RawChunk", "decode", "encode", "is_raw", "join", "records"]

MAGIC = b"CTLOGRW1"
_RECORD = struct.Struct("<II")

# Every global a packed entry's pickle names: the log's records, NumPy arrays, scalars
# and dtypes (NumPy 1 and 2 module names), datetimes, the outlier detector.
ALLOWED = frozenset({
    ("ctloop.requestlog.entries", "Entry"),
    ("ctloop.requestlog.entries", "ModelFacts"),
    ("ctloop.requestlog.entries", "Packed"),
    ("ctloop.models.outliers", "OutlierDetector"),
    ("datetime", "date"), ("datetime", "datetime"), ("datetime", "time"),
    ("datetime", "timedelta"), ("datetime", "timezone"),
    ("decimal", "Decimal"),
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex"),
    ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer"),
})


class RawChunk:
    """Frames for the spool as received (bytes, rows): what the writer process queues."""

    __slots__ = ("data", "rows")

    def __init__(self, data: bytes, rows: int) -> None:
        self.data = data
        self.rows = rows


class _NotAllowed(Exception):
    pass


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: object) -> object:  # type: ignore[override]
        if isinstance(obj, (type, FunctionType, BuiltinFunctionType)):
            name = (getattr(obj, "__module__", None), getattr(obj, "__qualname__", None))
            if name not in ALLOWED:
                raise _NotAllowed(f"{name[0]}.{name[1]}")
        return NotImplemented


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in ALLOWED:
            raise pickle.UnpicklingError(f"a request log chunk names {module}.{name}, which "
                                         "a request log entry never holds")
        return super().find_class(module, name)


def encode(items: Sequence[Item]) -> bytes | None:
    """The items pickled (facts inline), or None when they hold a type :func:`decode`
    would refuse."""
    out = io.BytesIO()
    try:
        _Pickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(list(items))
    except (_NotAllowed, pickle.PicklingError, TypeError, AttributeError):
        return None
    return out.getvalue()


def decode(data: bytes) -> list[Item]:
    """What :func:`encode` pickled; raises ``pickle.UnpicklingError`` on anything else."""
    items: list[Item] = _Unpickler(io.BytesIO(data)).load()
    if not isinstance(items, list):
        raise pickle.UnpicklingError("a request log chunk does not hold a list of entries")
    return items


def join(chunks: Sequence[RawChunk]) -> bytes:
    """One spool chunk of the frames, in order."""
    parts = [MAGIC]
    for chunk in chunks:
        parts.append(_RECORD.pack(len(chunk.data), chunk.rows))
        parts.append(chunk.data)
    return b"".join(parts)


def is_raw(head: bytes) -> bool:
    return head.startswith(MAGIC)


def records(data: bytes) -> list[RawChunk]:
    """The frames of a raw spool chunk; raises ``ValueError`` when it is torn."""
    if not data.startswith(MAGIC):
        raise ValueError("not a raw request log chunk")
    out = []
    at = len(MAGIC)
    view = memoryview(data)
    while at < len(data):
        if at + _RECORD.size > len(data):
            raise ValueError("a raw request log chunk ends inside a record header")
        size, rows = _RECORD.unpack_from(data, at)
        at += _RECORD.size
        if at + size > len(data):
            raise ValueError("a raw request log chunk ends inside a record")
        out.append(RawChunk(bytes(view[at:at + size]), rows))
        at += size
    return out
