"""The feature store: one object for training sets, materialization and online features.

    store = FeatureStore.from_file("features.py")        # or FeatureStore.open()
    train = store.get_training_set(entity_df, ["weather:temp", "carrier_delays:rate_7d"])
    store.materialize(end=datetime(2013, 6, 1))
    store.get_online_features(["weather:temp"], [{"origin": "JFK"}])

Training data and online requests get their values from the same definitions
and the same point-in-time SQL, so a model sees the same values in training
and in serving.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import json
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctloop.core.errors import UserInputError
from ctloop.core.importing import import_file
from ctloop.features.definitions import AggregationView, Entity, FeatureView
from ctloop.features.errors import feature_not_found
from ctloop.features.online.base import OnlineStore, WriteBatch, open_online_store

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from ctloop.metadata.base import MetadataStore

__all__ = [
    "FeatureStore",
    "MaterializationReport",
    "OnlineFeatures",
    "TrainingSet",
    "load_definitions",
]

View = FeatureView | AggregationView
_KEY_SEP = "\x1f"
_EPOCH = datetime(1970, 1, 1)


def _to_us(moment: datetime | str | None) -> int | None:
    """Microseconds since the epoch (naive datetimes are UTC)."""
    if moment is None:
        return None
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment)
        except ValueError as exc:
            raise UserInputError(
                f"Cannot read {moment!r} as a time; use ISO format like 2013-06-01T00:00."
            ) from exc
    if hasattr(moment, "to_pydatetime"):
        moment = moment.to_pydatetime()
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_us(us: int | None) -> datetime | None:
    if us is None:
        return None
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC).replace(tzinfo=None)


def _sql_ts(us: int) -> str:
    return f"make_timestamp({int(us)}::BIGINT)"


def key_string(values: Sequence[Any]) -> str:
    """The online key of an entity: its join-key values as text, joined by U+001F."""
    parts = []
    for value in values:
        if isinstance(value, bool):
            parts.append("true" if value else "false")
        elif hasattr(value, "item"):  # numpy scalar
            parts.append(str(value.item()))
        else:
            parts.append(str(value))
    return _KEY_SEP.join(parts)


# --- loading definitions ---------------------------------------------------------------------


@dataclass(frozen=True)
class Definitions:
    """The entities and views of a definitions file or of the catalog."""

    entities: dict[str, Entity] = field(default_factory=dict)
    views: dict[str, View] = field(default_factory=dict)

    @classmethod
    def of(cls, items: Iterable[Any]) -> Definitions:
        entities: dict[str, Entity] = {}
        views: dict[str, View] = {}
        for item in items:
            if isinstance(item, Entity):
                entities[item.name] = item
            elif isinstance(item, FeatureView | AggregationView):
                if item.name in views and views[item.name] is not item:
                    raise UserInputError(
                        f"Two views are named {item.name!r}. Give each view a unique name."
                    )
                views[item.name] = item
                for entity in item.entities:
                    entities.setdefault(entity.name, entity)
        return cls(entities, views)


def _import_as_package_module(path: Path) -> Any:
    """The file's own module when it is importable by name (e.g. ``ctloop.examples.flights``).

    Its functions then keep their real import path in the catalog, so a later
    process (``ctloop features materialize``, the feature server) can call a
    PythonSource; a file outside ``sys.path`` gets a synthetic module name.
    """
    target = path.resolve()
    for entry in sys.path:
        try:
            relative = target.relative_to(Path(entry or ".").resolve())
        except (ValueError, OSError):
            continue
        parts = relative.with_suffix("").parts
        if not parts or not all(part.isidentifier() for part in parts):
            continue
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is not None and spec.origin and Path(spec.origin).resolve() == target:
            return importlib.import_module(name)
    return None


def load_definitions(path: str | Path) -> Definitions:
    """Import a Python file and collect the Entity and view objects it defines at top level."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"The definitions file {str(path)!r} does not exist.")
    # hash() of a str differs from process to process: the module name (and so the
    # "module:function" of every PythonSource in the catalog) must not.
    prefix = "ctloop_definitions_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    try:
        module = _import_as_package_module(path) or import_file(path, prefix)
    except UserInputError:
        raise
    except Exception as exc:
        raise UserInputError(
            f"Importing the definitions file {str(path)!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    return Definitions.of(vars(module).values())


# --- results ---------------------------------------------------------------------------------


@dataclass
class TrainingSet:
    """The entity frame with point-in-time feature values appended, in the frame's row order.

    ``feature_refs`` records which features built it, the lineage the training
    run stores on its dataset (``properties["feature_refs"]``).
    """

    entity_df: Any
    features: pa.Table
    feature_refs: list[str]
    columns: dict[str, str]  # output column -> feature ref

    def to_arrow(self) -> pa.Table:
        import pyarrow as pa

        base = (
            self.entity_df
            if isinstance(self.entity_df, pa.Table)
            else pa.Table.from_pandas(self.entity_df, preserve_index=False)
        )
        for name in self.features.column_names:
            base = base.append_column(name, self.features.column(name))
        return base

    def to_pandas(self) -> pd.DataFrame:
        import pandas as pd

        if isinstance(self.entity_df, pd.DataFrame):
            base = self.entity_df.reset_index(drop=True)
        else:
            base = self.entity_df.to_pandas()
        feats = self.features.to_pandas()
        return pd.concat([base, feats], axis=1)

    def __len__(self) -> int:
        return self.features.num_rows


@dataclass(frozen=True)
class OnlineFeatures:
    """Online values for some entities: per feature ref, values, event times and statuses.

    Status is ``present``, ``missing`` (never materialized for that key) or
    ``expired`` (older than the view's ttl; the value is then null).
    """

    entities: dict[str, list[Any]]
    values: dict[str, list[Any]]
    event_timestamps: dict[str, list[datetime | None]]
    statuses: dict[str, list[str]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, the body the feature server answers with."""

        def iso(ts: datetime | None) -> str | None:
            return None if ts is None else ts.isoformat()

        def plain(value: Any) -> Any:
            return value.isoformat() if isinstance(value, datetime) else value

        return {
            "entities": self.entities,
            "features": {ref: [plain(v) for v in vals] for ref, vals in self.values.items()},
            "event_timestamps": {
                ref: [iso(t) for t in ts] for ref, ts in self.event_timestamps.items()
            },
            "statuses": self.statuses,
        }

    def to_pandas(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame({**self.entities, **self.values})


@dataclass(frozen=True)
class MaterializationReport:
    """What one materialization wrote."""

    views: dict[str, int]  # view -> rows written
    start: datetime | None
    end: datetime
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "views": self.views,
            "start": None if self.start is None else self.start.isoformat(),
            "end": self.end.isoformat(),
            "seconds": round(self.seconds, 3),
        }


# --- the store -------------------------------------------------------------------------------


class FeatureStore:
    """Definitions plus an online store (and, for the catalog, a metadata store).

    Args:
        definitions: Entity and view objects (or a :class:`Definitions`).
        online_store: An online store or its URL; default the settings'
            ``online_store_url`` (SQLite under ``.ctloop/``). Opened on first use.
        metadata: A metadata store or its URL for the catalog; default the settings'.
    """

    def __init__(
        self,
        definitions: Definitions | Iterable[Any] = (),
        *,
        online_store: OnlineStore | str | None = None,
        metadata: MetadataStore | str | None = None,
    ) -> None:
        self.definitions = (
            definitions if isinstance(definitions, Definitions) else Definitions.of(definitions)
        )
        self._online_arg = online_store
        self._online: OnlineStore | None = None
        self._metadata_arg = metadata
        self._metadata: MetadataStore | None = None
        self._arrow_cache: dict[str, pa.Table] = {}
        self._resolved: dict[tuple[str, ...], list[tuple[View, list[str], list[str]]]] = {}
        self._plans: dict[int, list[Any]] = {}

    # construction ------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> FeatureStore:
        """The store for the definitions in a Python file."""
        return cls(load_definitions(path), **kwargs)

    @classmethod
    def open(
        cls, *, metadata: MetadataStore | str | None = None, online_store: str | None = None
    ) -> FeatureStore:
        """The store for the definitions registered in the catalog (``ctloop features apply``)."""
        from ctloop.features.catalog import load_catalog

        store = cls((), online_store=online_store, metadata=metadata)
        store.definitions = load_catalog(store.metadata)
        return store

    @property
    def views(self) -> dict[str, View]:
        return self.definitions.views

    @property
    def online(self) -> OnlineStore:
        if self._online is None:
            arg = self._online_arg
            if arg is None:
                from ctloop.core.settings import load_settings

                arg = load_settings().online_store_url
            self._online = open_online_store(arg) if isinstance(arg, str) else arg
        return self._online

    @property
    def metadata(self) -> MetadataStore:
        if self._metadata is None:
            arg = self._metadata_arg
            if arg is None or isinstance(arg, str):
                from ctloop.metadata import open_metadata_store

                self._metadata = open_metadata_store(arg)
            else:
                self._metadata = arg
        return self._metadata

    def close(self) -> None:
        if self._online is not None:
            self._online.close()
            self._online = None
        if self._metadata is not None and not (
            self._metadata_arg is not None and not isinstance(self._metadata_arg, str)
        ):
            self._metadata.close()
            self._metadata = None

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # references ------------------------------------------------------------------------
    def all_refs(self) -> list[str]:
        return [f"{v.name}:{n}" for v in self.views.values() for n in v.feature_names]

    def resolve(self, features: Sequence[str]) -> list[tuple[View, list[str], list[str]]]:
        """Group feature refs (``view:feature`` or ``view`` for all) by view, in order.

        Returns ``(view, feature names, refs)`` per view.
        """
        key = tuple(features)
        cached = self._resolved.get(key)
        if cached is not None:
            return cached
        if isinstance(features, str):
            raise UserInputError(
                f"features must be a list of 'view:feature' references. Got {features!r}."
            )
        if not features:
            raise UserInputError("Ask for at least one feature ('view:feature').")
        grouped: dict[str, tuple[View, list[str], list[str]]] = {}
        for ref in features:
            view_name, _, feature = str(ref).partition(":")
            view = self.views.get(view_name)
            if view is None:
                raise feature_not_found(str(ref), [*self.all_refs(), *self.views])
            names = view.feature_names if not feature else [feature]
            for name in names:
                if name not in view.feature_names:
                    raise feature_not_found(str(ref), self.all_refs())
                entry = grouped.setdefault(view.name, (view, [], []))
                full = f"{view.name}:{name}"
                if full not in entry[2]:
                    entry[1].append(name)
                    entry[2].append(full)
        result = list(grouped.values())
        self._resolved[key] = result
        return result

    # offline ---------------------------------------------------------------------------
    def _register(self, con: Any, view: View, alias: str) -> None:
        from ctloop.features.definitions import FileSource
        from ctloop.features.offline import check_schema, load_arrow, register_source

        arrow = None
        if not isinstance(view.source, FileSource):
            arrow = self._arrow_cache.get(view.name)
            if arrow is None:
                arrow = load_arrow(view)
                self._arrow_cache[view.name] = arrow
        register_source(con, view, alias, arrow)
        check_schema(con, view, alias)

    def get_training_set(
        self,
        entity_df: pd.DataFrame | pa.Table,
        features: Sequence[str],
        *,
        timestamp_column: str = "event_timestamp",
        full_names: bool = False,
    ) -> TrainingSet:
        """Point-in-time feature values for every row of ``entity_df``.

        Each row needs the join keys of the requested views and a timestamp;
        each value is the one known at that timestamp (see :mod:`ctloop.features.offline`).
        Output columns are the feature names, or ``view__feature`` with
        ``full_names`` or where two views share a name.
        """
        from ctloop.features.offline import ViewRequest, connect, point_in_time, prepare_entity

        groups = self.resolve(features)
        keys: list[str] = []
        for view, _, _ in groups:
            keys.extend(k for k in view.join_keys if k not in keys)
        entity = prepare_entity(entity_df, keys, timestamp_column)
        names = [n for _, feats, _ in groups for n in feats]
        entity_cols = set(
            entity_df.column_names if hasattr(entity_df, "column_names") else entity_df.columns
        )
        requests = []
        columns: dict[str, str] = {}
        for view, feats, refs in groups:
            outs = []
            for name, ref in zip(feats, refs, strict=True):
                out = name
                if full_names or names.count(name) > 1 or name in entity_cols:
                    out = f"{view.name}__{name}"
                outs.append(out)
                columns[out] = ref
            requests.append(ViewRequest(view, tuple(feats), tuple(outs)))
        con = connect()
        try:
            con.register("__entity", entity)
            sources = {}
            for i, (view, _, _) in enumerate(groups):
                alias = f"__src{i}"
                self._register(con, view, alias)
                _check_key_types(con, view, alias)
                sources[view.name] = alias
            sql = point_in_time(con, "__entity", timestamp_column, requests, sources)
            table = _in_entity_order(con.sql(sql).to_arrow_table())
        finally:
            con.close()
        return TrainingSet(entity_df, table, [r for _, _, refs in groups for r in refs], columns)

    # materialization -------------------------------------------------------------------
    def materialize(
        self,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        *,
        views: Sequence[str] | None = None,
        incremental: bool = False,
    ) -> MaterializationReport:
        """Write the latest values as of ``end`` (default now) into the online store.

        Feature views write keys with rows in ``[start, end]`` (incremental: after
        the view's watermark, the previous ``end``); aggregation views are
        recomputed as of ``end`` for every key; static views write every key.
        All views are written in one all-or-nothing batch.
        """
        from ctloop.features.offline import connect

        began = time.perf_counter()
        end_us = _to_us(end) if end is not None else _to_us(datetime.now(UTC))
        start_us = _to_us(start)
        assert end_us is not None
        if start_us is not None and start_us > end_us:
            raise UserInputError(f"materialize: start {start} is after end {end}.")
        chosen = list(views) if views else list(self.views)
        for name in chosen:
            if name not in self.views:
                raise feature_not_found(name, self.views, what="feature view")
        con = connect()
        counts: dict[str, int] = {}
        try:
            plans = []
            for i, name in enumerate(chosen):
                view = self.views[name]
                alias = f"__src{i}"
                self._register(con, view, alias)
                lower = self.online.watermark(name) if incremental else start_us
                plans.append((view, alias, lower, incremental))
            batches = self._materialize_batches(con, plans, end_us, counts)
            self.online.write(batches, watermarks=dict.fromkeys(chosen, end_us))
        finally:
            con.close()
        return MaterializationReport(
            counts, _from_us(start_us), _from_us(end_us), time.perf_counter() - began
        )  # type: ignore[arg-type]

    def _materialize_batches(
        self, con: Any, plans: list[Any], end_us: int, counts: dict[str, int]
    ) -> Iterator[WriteBatch]:
        import duckdb

        from ctloop.features.errors import SourceSchemaError
        from ctloop.features.offline import ViewRequest, point_in_time, q

        for view, alias, lower, exclusive in plans:
            keys = ", ".join(q(k) for k in view.join_keys)
            not_null = " AND ".join(f"{q(k)} IS NOT NULL" for k in view.join_keys)
            where = [not_null]
            if view.timestamp_field:
                ts = f"CAST({q(view.timestamp_field)} AS TIMESTAMP)"
                where.append(f"{ts} <= {_sql_ts(end_us)}")
                if lower is not None and isinstance(view, FeatureView):
                    where.append(f"{ts} {'>' if exclusive else '>='} {_sql_ts(lower)}")
            con.execute(
                f"CREATE OR REPLACE TEMP VIEW __ment AS SELECT row_number() OVER () AS __row, *, "
                f"{_sql_ts(end_us)} AS __t FROM (SELECT DISTINCT {keys} FROM {q(alias)} "
                f"WHERE {' AND '.join(where)})"
            )
            plain = dataclasses.replace(view, ttl=None)  # ttl applies when reading
            request = ViewRequest(plain, tuple(view.feature_names), tuple(view.feature_names))
            sql = point_in_time(
                con,
                "__ment",
                "__t",
                [request],
                {view.name: alias},
                event_times=True,
                extra_columns=list(view.join_keys),
            )
            struct = ", ".join(f"'{n}': {q(n)}" for n in view.feature_names)
            key_expr = " || chr(31) || ".join(f"CAST({q(k)} AS VARCHAR)" for k in view.join_keys)
            final = (
                f"SELECT {key_expr} AS k, {q('__ts__' + view.name)} AS ts, "
                f"to_json({{{struct}}}) AS v FROM ({sql})"
            )
            counts[view.name] = 0
            try:
                for batch in con.sql(final).to_arrow_reader(50_000):
                    data = batch.to_pydict()
                    counts[view.name] += batch.num_rows
                    yield WriteBatch(view.name, data["k"], data["ts"], data["v"])
            except duckdb.Error as exc:
                raise SourceSchemaError(
                    f"Materializing view {view.name!r} failed while reading its source: "
                    f"{str(exc).splitlines()[0]} The online store is unchanged; fix the data "
                    "or the view's definition and materialize again."
                ) from exc

    # online ----------------------------------------------------------------------------
    def _online_plan(self, groups: list[tuple[View, list[str], list[str]]]) -> list[Any]:
        """Per view: join keys, (feature, ref, is timestamp, value when absent), ttl in us."""
        key = id(groups)
        plan = self._plans.get(key)
        if plan is None:
            plan = []
            for view, feats, refs in groups:
                outputs = []
                for name, ref in zip(feats, refs, strict=True):
                    feature = view.feature(name)
                    # a count over a window with nothing in it is 0, as in training sets
                    empty = 0 if getattr(feature, "function", None) == "count" else None
                    outputs.append((name, ref, feature.dtype == "timestamp", empty))
                ttl = None if view.ttl is None else int(view.ttl.total_seconds() * 1_000_000)
                plan.append((view, view.join_keys, outputs, ttl))
            self._plans[key] = plan
        return plan

    def get_online_features(
        self,
        features: Sequence[str],
        entity_rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]],
        *,
        now: datetime | str | None = None,
    ) -> OnlineFeatures:
        """Latest materialized values for one or many entities, with their event times.

        ``entity_rows`` is a list of ``{join key: value}`` dicts or a dict of
        columns. Values older than the view's ttl (as of ``now``, default the
        current time) come back null with status ``expired``.
        """
        groups = self.resolve(features)
        if isinstance(entity_rows, Mapping):
            columns = {str(k): list(v) for k, v in entity_rows.items()}
            lengths = {len(v) for v in columns.values()}
            if len(lengths) > 1:
                raise UserInputError("entity_rows columns must all have the same length.")
        else:
            names = {k for row in entity_rows for k in row}
            columns = {k: [row.get(k) for row in entity_rows] for k in names}
        now_us = _to_us(now) if now is not None else time.time_ns() // 1000
        values: dict[str, list[Any]] = {}
        stamps: dict[str, list[datetime | None]] = {}
        statuses: dict[str, list[str]] = {}
        entities: dict[str, list[Any]] = {}
        for view, join_keys, outputs, ttl_us in self._online_plan(groups):
            missing = [k for k in join_keys if k not in columns]
            if missing:
                raise UserInputError(
                    f"The entity rows lack join key(s) {missing} needed by view {view.name!r}; "
                    f"they have {sorted(columns)}."
                )
            for k in join_keys:
                entities.setdefault(k, columns[k])
            if len(join_keys) == 1:
                keys = [key_string((v,)) for v in columns[join_keys[0]]]
            else:
                keys = [key_string(v) for v in zip(*(columns[k] for k in join_keys), strict=True)]
            records = self.online.read(view.name, keys)
            limit = None if ttl_us is None else now_us - ttl_us  # type: ignore[operator]
            decoded: list[dict[str, Any] | None] = []
            ts_list: list[datetime | None] = []
            status: list[str] = []
            for record in records:
                if record is None:
                    decoded.append(None)
                    ts_list.append(None)
                    status.append("missing")
                    continue
                ts, payload = record
                ts_list.append(None if ts is None else _EPOCH + timedelta(microseconds=ts))
                if limit is not None and ts is not None and ts <= limit:
                    decoded.append(None)
                    status.append("expired")
                else:
                    decoded.append(json.loads(payload))
                    status.append("present")
            for name, ref, is_timestamp, empty in outputs:
                col = [empty if d is None else d.get(name) for d in decoded]
                if is_timestamp:
                    col = [None if v is None else datetime.fromisoformat(v) for v in col]
                values[ref] = col
                stamps[ref] = ts_list
                statuses[ref] = status
        return OnlineFeatures(entities, values, stamps, statuses)


def _in_entity_order(table: pa.Table) -> pa.Table:
    """Rows back in the entity frame's order: ``__row`` is a permutation, invert it in O(n)."""
    import numpy as np

    rows = table.column("__row").to_numpy()
    order = np.empty(len(rows), dtype=np.int64)
    order[rows] = np.arange(len(rows), dtype=np.int64)
    table = table.drop_columns(["__row"])
    if len(rows) == 0 or bool((order == np.arange(len(rows))).all()):
        return table  # already in order
    return table.take(order)


def _check_key_types(con: Any, view: View, alias: str) -> None:
    from ctloop.features.offline import q

    def types(rel: str) -> dict[str, str]:
        return {
            str(r[0]): str(r[1]).upper()
            for r in con.execute(f"DESCRIBE SELECT * FROM {q(rel)}").fetchall()
        }

    entity, source = types("__entity"), types(alias)

    def family(t: str) -> str:
        if t in {"VARCHAR"}:
            return "text"
        if "INT" in t or t.startswith("DECIMAL") or t in {"FLOAT", "DOUBLE"}:
            return "number"
        return t

    for key in view.join_keys:
        a, b = entity.get(key), source.get(key)
        if a and b and family(a) != family(b) and '"NULL"' not in (a, b):
            raise UserInputError(
                f"Join key {key!r} is {a} in the entity frame but {b} in the source of view "
                f"{view.name!r}. Convert the entity frame's column to the source's type."
            )
