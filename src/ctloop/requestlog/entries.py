"""Request-log entries and the Arrow tables the writer builds from them, off the request path.

A handler hands over an :class:`Entry`: the arrays it already has (typed model
inputs, scores, decisions), no per-row work. The writer thread groups the
entries of one model version, route, protocol and status and turns each group
into one Arrow table column by column (NumPy arrays become Arrow arrays without
a Python object per value), then spools it.

The table of a model version has a fixed schema: the first table built for a
version fixes each column's type (``f_<input>``, ``e_<key>``, ``probabilities``)
and later tables are cast to it. An entry that does not fit (a value of another
type, arrays of the wrong length, an answer of an unexpected shape) cannot jam
the log: its group is rebuilt entry by entry and whatever still fails goes to a
quarantine table, with the reason, instead of the spool's normal chunks.

Answers: a 1-d score per row is ``prediction`` (binary P(positive), a
regression's value); an ``(n, k)`` array of class probabilities is
``probabilities`` (a typed ``list<double>`` column in class order), with
``prediction`` the winning class's probability and ``predicted_label`` its label
(the model signature's classes, or the labels the handler passed).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from ctloop.core.secrets import mask_secrets

if TYPE_CHECKING:
    import pyarrow as pa

    from ctloop.models.flavors import LoadedModel
    from ctloop.models.outliers import OutlierDetector

__all__ = ["QUARANTINE", "Built", "Entry", "Gathering", "Item", "ModelFacts", "Packed",
           "SchemaBook", "build_tables", "facts_of", "merge_packs", "pack", "pack_group",
           "packed_table", "quarantine_table", "table_quarantine"]

log = logging.getLogger("ctloop.requestlog")

QUARANTINE = "quarantine"
_RECORD_CHARS = 4000  # what of an unwritable entry the quarantine keeps, as text


@dataclass(frozen=True)
class ModelFacts:
    """What the table builder needs of a served model: its class names (to label the
    winning class) and its outlier detector (to score the rows). Small and picklable, so
    a writer process gets them once per model version instead of the model."""

    classes: tuple[Any, ...] | None = None
    detector: OutlierDetector | None = None


def facts_of(model: LoadedModel | ModelFacts | None) -> ModelFacts:
    """The facts of a loaded model (or the facts themselves)."""
    if model is None:
        return ModelFacts()
    if isinstance(model, ModelFacts):
        return model
    signature = getattr(model, "signature", None)
    classes = getattr(signature, "classes", None)
    return ModelFacts(classes=tuple(classes) if classes else None,
                      detector=getattr(model, "_outlier_detector", None))


@dataclass(slots=True)
class Entry:
    """The rows of one request answered (or refused) on one route.

    Made once per request on the request path, so a slotted, unfrozen record: a frozen
    dataclass of 21 fields costs ~3 us more to build (one ``object.__setattr__`` per
    field). Nothing changes an entry once it is submitted (:func:`dataclasses.replace`
    makes new ones)."""

    model_name: str
    model_version: int
    route: str
    protocol: str
    ts: datetime
    latency_ms: float
    request_ids: list[str]
    scores: np.ndarray  # (n,) or (n, k) class probabilities
    inputs: Mapping[str, np.ndarray] = field(default_factory=dict)
    entity: Mapping[str, Sequence[Any] | np.ndarray] = field(default_factory=dict)
    row_ids: list[str | None] | None = None
    decisions: np.ndarray | None = None
    served: bool = True
    status: int = 200
    error: str = ""
    missing: tuple[str, ...] = ()
    model: LoadedModel | ModelFacts | None = None  # labels classes, scores outliers; per group
    labels: np.ndarray | Sequence[Any] | None = None  # predicted class labels, when known
    outlier_scores: np.ndarray | None = None  # already scored (batch scoring), else by ``model``
    outputs: Mapping[str, np.ndarray] = field(default_factory=dict)  # o_<name>, one per row
    tensors: Mapping[str, np.ndarray] | None = None  # a tensor model's N-d inputs, as received
    output_tensors: Mapping[str, np.ndarray] | None = None  # and its N-d outputs

    @property
    def rows(self) -> int:
        return len(self.request_ids)

    @property
    def acknowledged(self) -> bool:
        """An answer the caller gets as a success: it must be logged before it is lost.
        (Shadow and explain rows are not answers: they never make a request fail.)"""
        return self.status < 400 and self.served

    def key(self) -> tuple[Any, ...]:
        return (self.model_name, self.model_version, self.route, self.protocol, self.served,
                self.status, self.error, self.missing, tuple(self.inputs), tuple(self.entity),
                self.decisions is None, self.labels is None, _ndim(self.scores),
                self.outlier_scores is None, id(self.model), tuple(self.outputs),
                None if self.tensors is None else tuple(self.tensors),
                None if self.output_tensors is None else tuple(self.output_tensors))


class SchemaBook:
    """The fixed column types of each model version's tables (first table wins)."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, int], dict[str, pa.DataType]] = {}

    def conform(self, model: str, version: int, columns: dict[str, pa.Array]) -> None:
        """Cast ``columns`` to the version's types in place; new columns fix theirs."""
        import pyarrow as pa

        known = self._types.setdefault((model, version), {})
        for name, array in columns.items():
            want = known.get(name)
            if want is None or pa.types.is_null(want):
                if not pa.types.is_null(array.type) or want is None:
                    known[name] = array.type
            elif array.type != want:
                try:
                    columns[name] = array.cast(want)
                except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                    raise ValueError(
                        f"column {name} of {model} v{version} is {want}, these values are "
                        f"{array.type} ({exc})") from exc

    def forget(self, model: str, version: int) -> None:
        self._types.pop((model, version), None)


@dataclass
class Built:
    """What one drain became: tables to spool (one per group) and the quarantined entries."""

    tables: list[pa.Table] = field(default_factory=list)
    quarantined: list[tuple[Entry, str]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(t.num_rows for t in self.tables)


@dataclass(frozen=True)
class Packed:
    """The entries of one group end to end as NumPy arrays: what a writer process receives.

    Packing is the part of building a table that visits every entry (cheap NumPy
    concatenations); turning a pack into Arrow (:func:`packed_table`) only touches
    whole columns. A pack pickles as a handful of arrays, not one object per entry.
    """

    model_name: str
    model_version: int
    route: str
    protocol: str
    served: bool
    status: int
    error: str
    missing: tuple[str, ...]
    sizes: np.ndarray  # rows of each entry
    request_ids: list[str]
    ts_us: np.ndarray  # per entry, microseconds since the epoch (UTC)
    latency_ms: np.ndarray  # per entry
    scores: np.ndarray  # (rows,) or (rows, classes)
    inputs: dict[str, np.ndarray]
    entity: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    row_ids: list[str | None] | None = None
    decisions: np.ndarray | None = None
    labels: np.ndarray | None = None
    outlier_scores: np.ndarray | None = None
    model: LoadedModel | ModelFacts | None = None

    @property
    def rows(self) -> int:
        return len(self.request_ids)

    @property
    def acknowledged(self) -> bool:
        return self.status < 400 and self.served

    def entries(self) -> list[Entry]:
        """The pack as one entry per request again (to find the one that cannot be written)."""
        bounds = np.concatenate([[0], np.cumsum(self.sizes)]).tolist()
        out = []
        for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
            out.append(Entry(
                model_name=self.model_name, model_version=self.model_version, route=self.route,
                protocol=self.protocol,
                ts=_EPOCH + int(self.ts_us[i]) * _MICRO, latency_ms=float(self.latency_ms[i]),
                request_ids=self.request_ids[lo:hi], scores=self.scores[lo:hi],
                inputs={k: v[lo:hi] for k, v in self.inputs.items()},
                entity={k: v[lo:hi] for k, v in self.entity.items()},
                outputs={k: v[lo:hi] for k, v in self.outputs.items()},
                row_ids=None if self.row_ids is None else self.row_ids[lo:hi],
                decisions=None if self.decisions is None else self.decisions[lo:hi],
                served=self.served, status=self.status, error=self.error, missing=self.missing,
                model=self.model, labels=None if self.labels is None else self.labels[lo:hi],
                outlier_scores=None if self.outlier_scores is None
                else self.outlier_scores[lo:hi]))
        return out


Item = Entry | Packed


def pack(entries: Sequence[Entry]) -> tuple[list[Packed], list[Entry]]:
    """The entries as one pack per group, and the entries of groups that cannot be packed
    (their arrays do not line up: left for :func:`build_tables` to quarantine)."""
    gathering = Gathering()
    for entry in entries:
        gathering.add(entry)
    return gathering.pack()


def pack_group(group: Sequence[Entry]) -> Packed:
    """One group's entries (same :meth:`Entry.key`) end to end; raises when they do not fit."""
    gathered = _Group(group[0])
    for entry in group:
        gathered.add(entry)
    return gathered.packed()


class Gathering:
    """Entries gathered per group as they are submitted, field by field into lists.

    Why on the request path: each entry's fields are read while they are still in the
    cache of the thread that made them (~1.5 us a 1-row entry). Packing them later on
    the sender thread visited every entry again, cold and between requests fighting it
    for the interpreter: ~15 us an entry on a busy 2-core server, in bursts of a few ms
    that set the p99 (issue 21). What is left for the sender is joining whole columns.
    """

    __slots__ = ("_groups", "entries")

    def __init__(self) -> None:
        self._groups: dict[tuple[Any, ...], _Group] = {}
        self.entries = 0

    def __len__(self) -> int:
        return self.entries

    def add(self, entry: Entry) -> None:
        key = entry.key()
        group = self._groups.get(key)
        if group is None:
            self._groups[key] = group = _Group(entry)
        try:
            group.add(entry)
        except Exception:  # never on the request path: the group is built entry by entry
            group.broken = True
        self.entries += 1

    def pack(self) -> tuple[list[Packed], list[Entry]]:
        """One pack per group; the entries of a group whose arrays do not line up apart."""
        packs: list[Packed] = []
        unpacked: list[Entry] = []
        for group in self._groups.values():
            try:
                packs.append(group.packed())
            except Exception:
                unpacked.extend(group.entries)
        return packs, unpacked


class _Group:
    """One group's fields, entry by entry (the group's key fixes the names and kinds)."""

    __slots__ = ("broken", "decisions", "entity", "entries", "first", "ids", "inputs",
                 "labels", "latency", "outliers", "outputs", "row_ids", "scores", "sizes",
                 "tensors", "ts_us")

    def __init__(self, first: Entry) -> None:
        self.first = first
        self.broken = False  # an entry's fields could not be read: its lists do not line up
        self.entries: list[Entry] = []
        # a tensor model's entries are summarized (digests) when packed, off the request path
        self.tensors = first.tensors is not None or first.output_tensors is not None
        self.sizes: list[int] = []
        self.ids: list[str] = []
        self.ts_us: list[int] = []
        self.latency: list[float] = []
        self.scores: list[np.ndarray] = []
        self.inputs: dict[str, list[np.ndarray]] = {k: [] for k in first.inputs}
        self.entity: dict[str, list[np.ndarray]] = {k: [] for k in first.entity}
        self.outputs: dict[str, list[np.ndarray]] = {k: [] for k in first.outputs}
        self.row_ids: list[list[str | None] | None] = []
        self.decisions: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.outliers: list[np.ndarray] = []

    def add(self, e: Entry) -> None:
        """Append ``e``'s fields, each checked to hold one value per row (raises if not)."""
        self.entries.append(e)
        if self.tensors:
            return
        n = len(e.request_ids)
        self.sizes.append(n)
        self.ids.extend(e.request_ids)
        self.ts_us.append(_micros(e.ts))
        self.latency.append(e.latency_ms)
        self.scores.append(_rows(e.scores, n, "scores"))
        inputs = e.inputs
        for name, values in self.inputs.items():
            value = inputs[name]  # the common case inline: an array of the entry's rows
            values.append(value if type(value) is np.ndarray and value.ndim and len(value) == n
                          else _rows(value, n, "input", name, object))
        for name, values in self.entity.items():
            values.append(_rows(e.entity[name], n, "key", name, object))
        for name, values in self.outputs.items():
            values.append(_rows(e.outputs[name], n, "output", name, object))
        self.row_ids.append(e.row_ids)
        if e.decisions is not None:
            self.decisions.append(_rows(e.decisions, n, "decisions"))
        if e.labels is not None:
            self.labels.append(_rows(np.asarray(e.labels, dtype=object), n, "labels"))
        if e.outlier_scores is not None:
            self.outliers.append(_rows(np.asarray(e.outlier_scores, dtype=np.float64), n,
                                       "outlier scores"))

    def packed(self) -> Packed:
        """The group end to end; raises when an entry's arrays did not fit its rows."""
        if self.broken:
            raise ValueError("an entry of this group could not be gathered")
        if self.tensors:
            return pack_group([_summarized(e) for e in self.entries])
        first = self.first

        def columns(parts: dict[str, list[np.ndarray]], what: str) -> dict[str, np.ndarray]:
            out = {name: _joined(values) for name, values in parts.items()}
            for name, values in out.items():
                if values.ndim != 1:
                    raise ValueError(f"{what} {name!r} holds {values.ndim}-d values; the log "
                                     "keeps one per row")
            return out

        return Packed(
            model_name=first.model_name, model_version=int(first.model_version),
            route=first.route, protocol=first.protocol, served=bool(first.served),
            status=int(first.status), error=first.error, missing=first.missing,
            sizes=np.array(self.sizes, dtype=np.int64), request_ids=self.ids,
            ts_us=np.array(self.ts_us, dtype=np.int64),
            latency_ms=np.array(self.latency, dtype=np.float64),
            scores=_joined(self.scores), inputs=columns(self.inputs, "input"),
            entity=columns(self.entity, "key"), outputs=columns(self.outputs, "output"),
            row_ids=self._row_ids(),
            decisions=None if first.decisions is None else _joined(self.decisions),
            labels=None if first.labels is None else _joined(self.labels),
            outlier_scores=None if first.outlier_scores is None else _joined(self.outliers),
            model=first.model,
        )

    def _row_ids(self) -> list[str | None] | None:
        """The callers' row ids as text, null for an entry without them (None: no entry has)."""
        if all(r is None for r in self.row_ids):
            return None
        return [None if r is None else str(r)
                for given, n in zip(self.row_ids, self.sizes, strict=True)
                for r in (given if given is not None else [None] * n)]


def _rows(values: Sequence[Any] | np.ndarray, n: int, what: str, name: str = "",
          dtype: type | None = None) -> np.ndarray:
    """``values`` as an array (a sequence as ``dtype``), checked to hold ``n`` rows; the
    error names ``what`` (and the column ``name``): it is the quarantined entry's reason."""
    array = values if type(values) is np.ndarray else np.asarray(values, dtype=dtype)
    if array.ndim == 0 or len(array) != n:
        where = f"{what} {name!r}" if name else what
        if array.ndim == 0:
            raise ValueError(f"{where} hold a single value, not one per row")
        raise ValueError(f"{where} hold {array.shape} values for {n} rows")
    return array


def _joined(arrays: list[np.ndarray]) -> np.ndarray:
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def merge_packs(packs: Sequence[Packed]) -> list[Packed]:
    """Packs of the same group (and the same array types) end to end: the publisher builds
    one table from many chunks' packs instead of one per chunk. Packs that differ in
    anything but their rows stay apart (a bad one then costs only its own rows)."""
    groups: list[tuple[tuple[Any, ...], list[Packed]]] = []
    for packed in packs:
        key = _pack_key(packed)
        for known, members in groups:  # few groups; facts compare by value (not hashable)
            if known == key:
                members.append(packed)
                break
        else:
            groups.append((key, [packed]))
    out = []
    for _, members in groups:
        if len(members) == 1:
            out.append(members[0])
            continue
        try:
            out.append(_concat_packs(members))
        except Exception:  # arrays that will not join: built apart, as they came
            out.extend(members)
    return out


def _pack_key(p: Packed) -> tuple[Any, ...]:
    def kinds(arrays: Mapping[str, np.ndarray]) -> tuple[tuple[str, str, int], ...]:
        return tuple((k, v.dtype.str, v.ndim) for k, v in arrays.items())

    def kind(array: np.ndarray | None) -> tuple[str, tuple[int, ...]] | None:
        return None if array is None else (array.dtype.str, array.shape[1:])

    return (p.model_name, p.model_version, p.route, p.protocol, p.served, p.status, p.error,
            p.missing, kinds(p.inputs), kinds(p.entity), kinds(p.outputs), p.row_ids is None,
            kind(p.scores), kind(p.decisions), kind(p.labels), kind(p.outlier_scores),
            facts_of(p.model))


def _concat_packs(packs: Sequence[Packed]) -> Packed:
    first = packs[0]

    def cat(arrays: Sequence[np.ndarray | None]) -> np.ndarray | None:
        return None if arrays[0] is None else np.concatenate(arrays)  # type: ignore[arg-type]

    def cols(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    return replace(
        first,
        sizes=np.concatenate([p.sizes for p in packs]),
        request_ids=[r for p in packs for r in p.request_ids],
        ts_us=np.concatenate([p.ts_us for p in packs]),
        latency_ms=np.concatenate([p.latency_ms for p in packs]),
        scores=np.concatenate([p.scores for p in packs]),
        inputs=cols([p.inputs for p in packs]), entity=cols([p.entity for p in packs]),
        outputs=cols([p.outputs for p in packs]),
        row_ids=None if first.row_ids is None else [
            r for p in packs for r in (p.row_ids or [])],
        decisions=cat([p.decisions for p in packs]), labels=cat([p.labels for p in packs]),
        outlier_scores=cat([p.outlier_scores for p in packs]),
    )


TENSOR_VALUES = 64  # an output row of at most this many numbers is logged whole


def _summarized(entry: Entry) -> Entry:
    """A tensor model's entry with its N-d tensors as one-per-row log columns.

    Inputs (images, token ids: large) are kept as a digest and a shape per row:
    ``<name>`` the BLAKE2b-128 hex digest of the row's dtype, shape and bytes (equal
    inputs, equal digests: enough to find repeats or join a stored sample) and
    ``<name>_shape`` its shape without the row dimension. Outputs keep their values
    (``list<double>``, flattened) when a row has at most :data:`TENSOR_VALUES` numbers,
    else null, and their shape (``<name>_shape``).
    """
    inputs = dict(entry.inputs)
    for name, tensor in (entry.tensors or {}).items():
        array = np.asarray(tensor)
        _check_rows(array, entry.rows, f"input tensor {name!r}")
        inputs[name] = _digests(array)
        inputs[f"{name}_shape"] = _shapes(array)
    outputs = dict(entry.outputs)
    for name, tensor in (entry.output_tensors or {}).items():
        array = np.asarray(tensor)
        _check_rows(array, entry.rows, f"output tensor {name!r}")
        flat = array.reshape(len(array), -1)
        values = np.empty(len(array), dtype=object)
        if flat.shape[1] <= TENSOR_VALUES and flat.dtype.kind in "fiub":
            for i, row in enumerate(flat.astype(np.float64).tolist()):
                values[i] = row
        outputs[name] = values
        outputs[f"{name}_shape"] = _shapes(array)
    return replace(entry, inputs=inputs, outputs=outputs, tensors=None, output_tensors=None)


def _check_rows(array: np.ndarray, rows: int, what: str) -> None:
    if array.ndim == 0 or array.shape[0] != rows:
        raise ValueError(f"{what} has shape {list(array.shape)}, not {rows} rows first")


def _digests(array: np.ndarray) -> np.ndarray:
    """BLAKE2b-128 of each row (dtype, shape, bytes); hashlib lets go of the interpreter
    lock on large rows."""
    import hashlib

    head = f"{array.dtype.str}{list(array.shape[1:])}".encode()
    out = np.empty(len(array), dtype=object)
    for i in range(len(array)):
        digest = hashlib.blake2b(head, digest_size=16)
        digest.update(np.ascontiguousarray(array[i]).data)
        out[i] = digest.hexdigest()
    return out


def _shapes(array: np.ndarray) -> np.ndarray:
    out = np.empty(len(array), dtype=object)
    shape = [int(d) for d in array.shape[1:]]
    for i in range(len(array)):
        out[i] = shape
    return out


def build_tables(items: Sequence[Item], book: SchemaBook) -> Built:
    """One table per group of entries (or per pack); what cannot be written is set aside."""
    entries = [i for i in items if isinstance(i, Entry)]
    packs, unpacked = pack(entries)
    packs += [i for i in items if isinstance(i, Packed)]
    built = Built()
    for packed in packs:
        try:
            built.tables.append(packed_table(packed, book))
            continue
        except Exception as exc:  # find the entry that does not fit; the others go on
            if len(packed.sizes) == 1:
                built.quarantined.extend((e, _reason(exc)) for e in packed.entries())
                continue
        unpacked.extend(packed.entries())
    for entry in unpacked:
        try:
            built.tables.append(packed_table(pack_group([entry]), book))
        except Exception as exc:
            built.quarantined.append((entry, _reason(exc)))
    return built


def _reason(exc: Exception) -> str:
    return mask_secrets(f"{type(exc).__name__}: {exc}")[:1000]


def packed_table(packed: Packed, book: SchemaBook) -> pa.Table:
    """A pack as the log's Arrow table (the version's column types, see :class:`SchemaBook`)."""
    import pyarrow as pa

    from ctloop.requestlog.tables import base_types

    sizes = packed.sizes
    n = packed.rows
    types = base_types()
    columns: dict[str, pa.Array] = {
        "request_id": pa.array(packed.request_ids, pa.string()),
        "model_name": _const(packed.model_name, n, types["model_name"]),
        "model_version": _const(packed.model_version, n, types["model_version"]),
        "route": _const(packed.route, n, types["route"]),
        "ts": pa.array(np.repeat(packed.ts_us, sizes)).view(types["ts"]),
    }
    extra: dict[str, pa.Array] = {}
    try:
        scores = np.asarray(packed.scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError("the answer's scores are not numbers, one or one per class for each "
                         f"row ({type(exc).__name__}: {exc})") from exc
    if scores.ndim == 1:
        columns["prediction"] = pa.array(scores, pa.float64(), from_pandas=True)
    elif scores.ndim == 2:
        probs = np.ascontiguousarray(scores)
        columns["prediction"] = pa.array(probs.max(axis=1) if probs.shape[1] else
                                         np.full(n, np.nan), pa.float64(), from_pandas=True)
        offsets = pa.array(np.arange(n + 1, dtype=np.int32) * probs.shape[1])
        extra["probabilities"] = pa.ListArray.from_arrays(offsets, pa.array(probs.reshape(-1)))
        labels = _labels(packed, probs)
        if labels is not None:
            extra["predicted_label"] = labels
    else:
        raise ValueError(f"an answer of shape {scores.shape} has no log column; "
                         "expected (rows,) or (rows, classes)")
    columns["latency_ms"] = pa.array(np.repeat(packed.latency_ms, sizes))
    columns["served"] = _const(packed.served, n, types["served"])
    columns["status"] = _const(packed.status, n, types["status"])
    columns["error"] = _const(mask_secrets(packed.error) if packed.error else "", n,
                              types["error"])
    columns["protocol"] = _const(packed.protocol, n, types["protocol"])
    columns["row_id"] = (pa.nulls(n, pa.string()) if packed.row_ids is None
                         else pa.array(packed.row_ids, pa.string()))
    if packed.decisions is not None:
        columns["decision"] = pa.array(packed.decisions, types["decision"], from_pandas=True)
    else:
        columns["decision"] = pa.nulls(n, types["decision"])
    columns["outlier_score"] = _outliers(packed)
    names = pa.array(list(packed.missing) * n, pa.string())
    columns["missing"] = pa.ListArray.from_arrays(
        pa.array(np.arange(n + 1, dtype=np.int32) * len(packed.missing)), names)
    for name, values in packed.inputs.items():
        extra[f"f_{name}"] = _values(values, f"input {name!r}")
    for name, values in packed.entity.items():
        extra[f"e_{name}"] = _values(values, f"key {name!r}")
    for name, values in packed.outputs.items():
        extra[f"o_{name}"] = _values(values, f"output {name!r}")
    book.conform(packed.model_name, packed.model_version, extra)
    columns.update(extra)
    return pa.table(columns)


def _const(value: object, n: int, kind: pa.DataType) -> pa.Array:
    import pyarrow as pa

    return pa.repeat(pa.scalar(value, kind), n)


def _micros(ts: datetime) -> int:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return (ts - _EPOCH) // _MICRO


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _EPOCH


def _ndim(value: Any) -> int:
    return value.ndim if type(value) is np.ndarray else int(np.ndim(value))


def _values(values: np.ndarray, what: str) -> pa.Array:
    """One typed column (NaN and NaT as nulls, as pandas means)."""
    import pyarrow as pa

    del what
    kind = values.dtype.kind
    if kind == "f":  # NaN as null, as pandas means; no pandas round trip
        mask = np.isnan(values)
        return pa.array(values, mask=mask if mask.any() else None)
    if kind in "iub":
        return pa.array(values)
    if kind in "US":
        return pa.array(values.astype(object), pa.string())
    if kind == "O":
        try:
            return pa.array(values)  # None is null; strings, ints, floats as they are
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
    return pa.array(values, from_pandas=True)


def _labels(packed: Packed, probs: np.ndarray) -> pa.Array | None:
    import pyarrow as pa

    if packed.labels is not None:
        return pa.array([None if v is None else str(v) for v in packed.labels.tolist()],
                        pa.string())
    classes = facts_of(packed.model).classes
    if classes is None or len(classes) != probs.shape[1]:
        return None
    names = np.array([str(c) for c in classes], dtype=object)
    return pa.array(names[probs.argmax(axis=1)], pa.string())


def _outliers(packed: Packed) -> pa.Array:
    """Outlier scores of the pack's rows when the model keeps a detector (else nulls)."""
    import pyarrow as pa

    n = packed.rows
    if packed.outlier_scores is not None:
        return pa.array(packed.outlier_scores, pa.float64(), from_pandas=True)
    detector = facts_of(packed.model).detector
    if detector is None or not packed.inputs:
        return pa.nulls(n, pa.float64())
    import pandas as pd  # only for a model with a detector

    frame = pd.DataFrame(dict(packed.inputs))
    try:
        scores = detector.score(frame)
    except Exception as exc:  # a detector that cannot score these rows: the rows still log
        log.debug("outlier scores failed: %s", exc)
        return pa.nulls(n, pa.float64())
    if scores is None:
        return pa.nulls(n, pa.float64())
    return pa.array(np.asarray(scores, dtype=np.float64), pa.float64())


def quarantine_table(items: Sequence[tuple[Entry, str]]) -> pa.Table:
    """Entries that could not be written, one row per request row, with the reason and text."""
    import pyarrow as pa

    from ctloop.requestlog.tables import base_types

    types = base_types()
    rows: dict[str, list[Any]] = {k: [] for k in (
        "request_id", "model_name", "model_version", "route", "ts", "protocol", "served",
        "status", "error", "reason", "record")}
    for entry, reason in items:
        ids = list(entry.request_ids) or [""]
        text = _describe(entry)
        for rid in ids:
            rows["request_id"].append(str(rid))
            rows["model_name"].append(str(entry.model_name))
            rows["model_version"].append(_int(entry.model_version))
            rows["route"].append(str(entry.route))
            rows["ts"].append(entry.ts if isinstance(entry.ts, datetime) else None)
            rows["protocol"].append(str(entry.protocol))
            rows["served"].append(bool(entry.served))
            rows["status"].append(_int(entry.status))
            rows["error"].append(mask_secrets(str(entry.error)))
            rows["reason"].append(reason)
            rows["record"].append(text)
    kinds = {**types, "reason": pa.string(), "record": pa.string()}
    table = pa.table({k: pa.array(v, kinds[k]) for k, v in rows.items()})
    return table.replace_schema_metadata({"ctloop.kind": QUARANTINE})


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError, OverflowError):
        return None


def _describe(entry: Entry) -> str:
    """The entry as text for a person reading the quarantine (secrets masked, cut short)."""
    parts = {
        "scores": _short(entry.scores), "inputs": {k: _short(v) for k, v in entry.inputs.items()},
        "entity": {k: _short(v) for k, v in entry.entity.items()},
        "decisions": _short(entry.decisions), "labels": _short(entry.labels),
        "row_ids": _short(entry.row_ids), "latency_ms": entry.latency_ms,
    }
    return mask_secrets(repr(parts))[:_RECORD_CHARS]


def _short(value: object) -> str:
    try:
        text = repr(value.tolist() if isinstance(value, np.ndarray) else value)
    except Exception as exc:  # a value that cannot even be shown
        text = f"<unprintable {type(value).__name__}: {exc}>"
    return text[:500]


def table_quarantine(table: pa.Table, exc: Exception) -> pa.Table:
    """A built table the spool refused, as quarantine rows (text)."""
    import pyarrow as pa

    from ctloop.requestlog.tables import base_types

    reason = f"{type(exc).__name__}: {exc}"[:1000]
    n = table.num_rows
    text = [str(r)[:4000] for r in _rows_as_text(table)]

    def column(name: str, kind: pa.DataType) -> pa.Array:
        if name in table.column_names:
            try:
                return table[name].combine_chunks().cast(kind)
            except Exception:
                pass
        return pa.nulls(n, kind)

    types = base_types()
    out = pa.table({
        **{k: column(k, types[k]) for k in ("request_id", "model_name", "model_version",
                                             "route", "ts", "protocol", "served", "status",
                                             "error")},
        "reason": pa.array([reason] * n, pa.string()),
        "record": pa.array(text, pa.string()),
    })
    return out.replace_schema_metadata({"ctloop.kind": QUARANTINE})


def _rows_as_text(table: pa.Table) -> list[object]:
    try:
        return list(table.to_pylist())
    except Exception as exc:
        return [f"<unreadable row: {exc}>"] * table.num_rows
