"""Content hashes and exact fingerprints.

``fingerprint`` gives a cache key part for a parameter value. It is exact: it
hashes a canonical, type-tagged encoding of the whole value (never ``repr``,
which NumPy and pandas truncate), so two values get the same fingerprint only
when they are equal, down to types, dtypes, shapes, index and column names.
Supported out of the box: ``None``, bool, int, float, str, bytes, lists, tuples,
dicts, sets, enums, paths, dates and times, decimals, UUIDs, dataclasses,
pydantic models, NumPy arrays and scalars, pandas DataFrames, Series, Index and
extension arrays, and PyArrow tables, record batches, arrays and scalars.

Any other type raises :class:`NotHashable`; the engine then runs the step
without the cache and says why in the run record. ``fingerprint`` is an open
registry (``functools.singledispatch``): register a function returning a string
that identifies the value exactly to make your own type cacheable::

    @fingerprint.register
    def _(value: MyConfig) -> str:
        return hash_bytes(value.to_canonical_bytes())

Hashes are hex sha256 strings. NumPy, pandas and PyArrow are imported only when
a value of theirs is hashed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import functools
import hashlib
import inspect
import json
import struct
import textwrap
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePath
from typing import Any

__all__ = [
    "NotHashable",
    "fingerprint",
    "hash_bytes",
    "hash_file",
    "hash_source",
    "stable_json",
]

_CHUNK = 1 << 20


class NotHashable(TypeError):
    """A value has no exact fingerprint (its type is not supported or registered)."""


def hash_bytes(data: bytes) -> str:
    """sha256 of ``data`` as hex."""
    return hashlib.sha256(data).hexdigest()


def hash_file(path: str | Path) -> str:
    """sha256 of a file, read in 1 MiB chunks so large files stay out of memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def stable_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace, the canonical form we hash."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return repr(value)


def hash_source(func: Callable[..., Any]) -> str:
    """Hash of a function's source text (dedented), its code version by default."""
    try:
        source = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        source = getattr(func, "__qualname__", repr(func))
    return hash_bytes(source.encode())[:16]


@functools.singledispatch
def fingerprint(value: Any) -> str:
    """Exact fingerprint of a parameter value for cache keys; :class:`NotHashable` if none."""
    encoder = _Encoder()
    encoder.feed(value)
    return encoder.hexdigest()


_DEFAULT = fingerprint.dispatch(object)


class _Encoder:
    """Feeds a canonical, type-tagged, length-prefixed encoding of a value into sha256.

    Every item is ``tag`` + 8-byte length + payload, so no two different values
    can produce the same byte stream.
    """

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def put(self, tag: bytes, payload: bytes = b"") -> None:
        self._hash.update(tag + b":" + len(payload).to_bytes(8, "big") + payload)

    def digest_of(self, value: Any) -> bytes:
        sub = _Encoder()
        sub.feed(value)
        return sub._hash.digest()

    def feed(self, value: Any) -> None:
        kind = type(value)
        registered = fingerprint.dispatch(kind)
        if registered is not _DEFAULT:
            self.put(b"registered", f"{_qualname(kind)}={registered(value)}".encode())
            return
        # One chain split in three, tried in this order (bool before int, an IntEnum as
        # an enum): the order is part of the fingerprint, never reorder it.
        if not (self._feed_scalar(value, kind) or self._feed_container(value)
                or self._feed_other(value, kind)):
            raise NotHashable(
                f"a {_qualname(kind)} has no exact fingerprint; register one with "
                "@ctloop.core.hashing.fingerprint.register, or pass the value as an artifact"
            )

    def _feed_scalar(self, value: Any, kind: type) -> bool:
        """None, bool, NumPy/pandas/Arrow values, enums, numbers, text and bytes."""
        module = kind.__module__.partition(".")[0]
        if value is None:
            self.put(b"none")
        elif kind is bool:
            self.put(b"bool", b"1" if value else b"0")
        elif module == "numpy":
            _feed_numpy(self, value)
        elif module == "pandas":
            _feed_pandas(self, value)
        elif module == "pyarrow":
            _feed_arrow(self, value)
        elif isinstance(value, enum.Enum):
            self.put(b"enum", _qualname(kind).encode())
            self.feed(value.value)
        elif isinstance(value, int):
            self.put(b"int", value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))
        elif isinstance(value, float):
            self.put(b"float", struct.pack(">d", value))
        elif isinstance(value, complex):
            self.put(b"complex", struct.pack(">dd", value.real, value.imag))
        elif isinstance(value, str):
            self.put(b"str", value.encode("utf-8", "surrogatepass"))
        elif isinstance(value, bytes | bytearray | memoryview):
            self.put(b"bytes", bytes(value))
        else:
            return False
        return True

    def _feed_container(self, value: Any) -> bool:
        """Tuples, lists, mappings (by key digest) and sets (by item digest)."""
        if isinstance(value, tuple | list):
            self.put(b"tuple" if isinstance(value, tuple) else b"list",
                     len(value).to_bytes(8, "big"))
            for item in value:
                self.feed(item)
        elif isinstance(value, Mapping):
            items = sorted(((self.digest_of(k), k, v) for k, v in _pairs(value)),
                           key=lambda item: item[0])
            self.put(b"dict", len(items).to_bytes(8, "big"))
            for key_digest, _, item in items:
                self.put(b"key", key_digest)
                self.feed(item)
        elif isinstance(value, set | frozenset):
            self.put(b"set", b"".join(sorted(self.digest_of(v) for v in value)))
        else:
            return False
        return True

    def _feed_other(self, value: Any, kind: type) -> bool:
        """Paths, times, decimals, UUIDs, dataclasses and pydantic models."""
        if isinstance(value, PurePath):
            self.put(b"path", _qualname(kind).encode() + b"|" + str(value).encode())
        elif isinstance(value, dt.datetime | dt.date | dt.time):
            self.put(b"time", _qualname(kind).encode() + b"|" + value.isoformat().encode())
            tz = getattr(value, "tzinfo", None)
            self.put(b"tz", str(tz).encode() if tz is not None else b"")
        elif isinstance(value, dt.timedelta):
            self.put(b"timedelta", f"{value.days},{value.seconds},{value.microseconds}".encode())
        elif isinstance(value, decimal.Decimal):
            self.put(b"decimal", str(value).encode())
        elif isinstance(value, uuid.UUID):
            self.put(b"uuid", value.bytes)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            self.put(b"dataclass", _qualname(kind).encode())
            for f in dataclasses.fields(value):
                self.put(b"field", f.name.encode())
                self.feed(getattr(value, f.name))
        elif hasattr(kind, "model_fields") and callable(getattr(value, "model_dump", None)):
            self.put(b"pydantic", _qualname(kind).encode())
            self.feed(value.model_dump(mode="python"))
        else:
            return False
        return True


def _pairs(value: Mapping[Any, Any]) -> Iterable[tuple[Any, Any]]:
    return value.items()


def _qualname(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


# NumPy ---------------------------------------------------------------------
def _feed_numpy(enc: _Encoder, value: Any) -> None:
    import numpy as np

    if isinstance(value, np.ndarray):
        _feed_ndarray(enc, value)
    elif isinstance(value, np.generic):
        _feed_ndarray(enc, np.asarray(value), tag=b"np-scalar")
    elif isinstance(value, np.dtype):
        enc.put(b"np-dtype", _dtype_text(value))
    else:
        raise NotHashable(f"a {_qualname(type(value))} has no exact fingerprint")


def _dtype_text(dtype: Any) -> bytes:
    """dtype with byte order, unit and fields (``<f8``, ``<M8[ns]``, structured descr)."""
    return (str(dtype.descr) if dtype.fields else dtype.str).encode()


def _feed_ndarray(enc: _Encoder, array: Any, tag: bytes = b"np-array") -> None:
    import numpy as np

    enc.put(tag, _dtype_text(array.dtype) + b"|" + str(array.shape).encode())
    if array.dtype.hasobject:
        for item in array.ravel(order="C"):
            enc.feed(item)
    else:
        enc.put(b"data", np.ascontiguousarray(array).tobytes())


# pandas --------------------------------------------------------------------
def _feed_pandas(enc: _Encoder, value: Any) -> None:
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        enc.put(b"pd-frame", str(value.shape).encode())
        _feed_index(enc, value.columns)
        _feed_index(enc, value.index)
        for position in range(value.shape[1]):
            _feed_values(enc, value.iloc[:, position].array)
    elif isinstance(value, pd.Series):
        enc.put(b"pd-series")
        enc.feed(value.name)
        _feed_index(enc, value.index)
        _feed_values(enc, value.array)
    elif isinstance(value, pd.Index):
        _feed_index(enc, value)
    elif isinstance(value, pd.api.extensions.ExtensionArray):
        _feed_values(enc, value)
    elif value is pd.NA:
        enc.put(b"pd-NA")
    elif value is pd.NaT:
        enc.put(b"pd-NaT")
    elif isinstance(value, pd.Timestamp):
        enc.put(b"pd-timestamp", f"{value.value}|{value.unit}|{value.tz}".encode())
    elif isinstance(value, pd.Timedelta):
        enc.put(b"pd-timedelta", f"{value.value}|{value.unit}".encode())
    elif isinstance(value, pd.Period):
        enc.put(b"pd-period", f"{value.ordinal}|{value.freqstr}".encode())
    elif isinstance(value, pd.Interval):
        enc.put(b"pd-interval", value.closed.encode())
        enc.feed(value.left)
        enc.feed(value.right)
    elif isinstance(value, pd.api.extensions.ExtensionDtype | pd.CategoricalDtype):
        enc.put(b"pd-dtype", str(value).encode())
        if isinstance(value, pd.CategoricalDtype) and value.categories is not None:
            _feed_index(enc, value.categories)
    else:
        raise NotHashable(f"a {_qualname(type(value))} has no exact fingerprint")


def _feed_index(enc: _Encoder, index: Any) -> None:
    import pandas as pd

    enc.put(b"pd-index", _qualname(type(index)).encode())
    enc.feed(list(index.names))
    if isinstance(index, pd.RangeIndex):
        enc.put(b"range", f"{index.start},{index.stop},{index.step}".encode())
    elif isinstance(index, pd.MultiIndex):
        for level in range(index.nlevels):
            _feed_values(enc, index.get_level_values(level).array)
    else:
        _feed_values(enc, index.array)


def _feed_values(enc: _Encoder, values: Any) -> None:
    """A column's values with their dtype: NumPy bytes, Arrow buffers or element by element."""
    import numpy as np
    import pandas as pd

    enc.put(b"pd-values", str(values.dtype).encode())
    if isinstance(values, np.ndarray):
        _feed_ndarray(enc, values)
    elif isinstance(values, pd.Categorical):
        _feed_index(enc, values.categories)
        enc.put(b"ordered", b"1" if values.ordered else b"0")
        _feed_ndarray(enc, values.codes)
    elif hasattr(values, "_pa_array"):  # Arrow-backed strings and ArrowDtype columns
        _feed_arrow(enc, values._pa_array)
    elif hasattr(values, "_ndarray") and isinstance(values._ndarray, np.ndarray):
        _feed_ndarray(enc, values._ndarray)  # NumpyExtensionArray, datetime, timedelta, period
    elif hasattr(values, "_data") and hasattr(values, "_mask"):  # nullable Int64, boolean ...
        _feed_ndarray(enc, np.asarray(values._mask))
        _feed_ndarray(enc, np.where(values._mask, np.zeros_like(values._data), values._data))
    else:
        enc.put(b"objects", len(values).to_bytes(8, "big"))
        for item in values:
            enc.feed(item)


# PyArrow -------------------------------------------------------------------
def _feed_arrow(enc: _Encoder, value: Any) -> None:
    import pyarrow as pa

    if isinstance(value, pa.Table | pa.RecordBatch):
        table = pa.Table.from_batches([value]) if isinstance(value, pa.RecordBatch) else value
        _feed_arrow_table(enc, b"pa-table", table)
    elif isinstance(value, pa.ChunkedArray | pa.Array):
        _feed_arrow_table(enc, b"pa-array", pa.table({"values": value}))
    elif isinstance(value, pa.Scalar):
        _feed_arrow_table(enc, b"pa-scalar", pa.table({"value": pa.array([value.as_py()],
                                                                         type=value.type)}))
    elif isinstance(value, pa.DataType | pa.Schema):
        enc.put(b"pa-type", str(value).encode())
    else:
        raise NotHashable(f"a {_qualname(type(value))} has no exact fingerprint")


def _feed_arrow_table(enc: _Encoder, tag: bytes, table: Any) -> None:
    """Schema (with metadata) and values as one Arrow IPC stream of a single record batch."""
    import pyarrow as pa

    table = table.combine_chunks()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=None):
            writer.write_batch(batch)
    enc.put(tag, str(table.num_rows).encode())
    enc.put(b"ipc", sink.getvalue().to_pybytes())
