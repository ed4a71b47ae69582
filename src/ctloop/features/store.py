"""The feature store: one object for training sets, materialization and online features.

The pieces it stands on live apart: definitions and their loading
(``features.loading``), time and key encodings (``features.timekeys``), the result
types (``features.results``), the catalog (``features.catalog``) and the online
stores (``features.online``); they are re-exported here for existing imports.

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
import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from ctloop.core.clock import utc_now
from ctloop.core.errors import UserInputError
from ctloop.core.jsontypes import JSONObject
from ctloop.features.definitions import FeatureView
from ctloop.features.errors import feature_not_found
from ctloop.features.loading import Definitions, View, load_definitions
from ctloop.features.online.base import OnlineRecord, OnlineStore, WriteBatch, open_online_store
from ctloop.features.results import MaterializationReport, OnlineFeatures, TrainingSet
from ctloop.features.timekeys import from_us as _from_us
from ctloop.features.timekeys import key_string
from ctloop.features.timekeys import sql_ts as _sql_ts
from ctloop.features.timekeys import to_us as _to_us

if TYPE_CHECKING:
    import duckdb
    import pandas as pd
    import pyarrow as pa

    from ctloop.metadata.base import DefinitionStore, MetadataStore

__all__ = [
    "Definitions",
    "FeatureStore",
    "MaterializationReport",
    "OnlineFeatures",
    "TrainingSet",
    "key_string",
    "load_definitions",
]


# --- the store -------------------------------------------------------------------------------


class _Materialization(NamedTuple):
    """One view to materialize: its registered source alias and lower bound."""

    view: View
    alias: str
    lower: int | None  # microseconds since the epoch; None: from the beginning
    exclusive: bool  # incremental: rows strictly after the watermark


class _Output(NamedTuple):
    """One feature an online read returns."""

    name: str
    ref: str
    is_timestamp: bool
    empty: int | None  # the value when the key is absent (0 for a windowed count)


class _OnlinePlan(NamedTuple):
    """Per view of an online read: join keys, outputs and the ttl in microseconds."""

    view: View
    join_keys: tuple[str, ...]
    outputs: list[_Output]
    ttl: int | None


class FeatureStore:
    """Definitions plus an online store (and, for the catalog, a metadata store).

    Args:
        definitions: Entity and view objects (or a :class:`Definitions`).
        online_store: An online store or its URL; default the settings'
            ``online_store_url`` (SQLite under ``.ctloop/``). Opened on first use.
        metadata: The catalog's store (any ``DefinitionStore``) or a metadata store's URL;
            default the settings'.
    """

    def __init__(
        self,
        definitions: Definitions | Iterable[object] = (),
        *,
        online_store: OnlineStore | str | None = None,
        metadata: DefinitionStore | str | None = None,
    ) -> None:
        self.definitions = (
            definitions if isinstance(definitions, Definitions) else Definitions.of(definitions)
        )
        self._online_arg = online_store
        self._online: OnlineStore | None = None
        self._metadata_arg = metadata
        self._metadata: DefinitionStore | None = None
        self._opened: MetadataStore | None = None  # opened here from a URL: close() closes it
        self._arrow_cache: dict[str, pa.Table] = {}
        self._resolved: dict[tuple[str, ...], list[tuple[View, list[str], list[str]]]] = {}
        self._plans: dict[tuple[str, ...], list[_OnlinePlan]] = {}

    # construction ------------------------------------------------------------------------
    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        online_store: OnlineStore | str | None = None,
        metadata: DefinitionStore | str | None = None,
    ) -> FeatureStore:
        """The store for the definitions in a Python file."""
        return cls(load_definitions(path), online_store=online_store, metadata=metadata)

    @classmethod
    def open(
        cls, *, metadata: DefinitionStore | str | None = None, online_store: str | None = None
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
    def metadata(self) -> DefinitionStore:
        if self._metadata is None:
            arg = self._metadata_arg
            if arg is None or isinstance(arg, str):
                from ctloop.metadata import open_metadata_store

                self._metadata = self._opened = open_metadata_store(arg)
            else:
                self._metadata = arg
        return self._metadata

    def close(self) -> None:
        if self._online is not None:
            self._online.close()
            self._online = None
        if self._opened is not None:
            self._opened.close()
            self._opened = self._metadata = None

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
    def _register(self, con: duckdb.DuckDBPyConnection, view: View, alias: str) -> None:
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
        end_us = _to_us(end) if end is not None else _to_us(utc_now())
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
            plans: list[_Materialization] = []
            for i, name in enumerate(chosen):
                view = self.views[name]
                alias = f"__src{i}"
                self._register(con, view, alias)
                lower = self.online.watermark(name) if incremental else start_us
                plans.append(_Materialization(view, alias, lower, incremental))
            batches = self._materialize_batches(con, plans, end_us, counts)
            self.online.write(batches, watermarks=dict.fromkeys(chosen, end_us))
        finally:
            con.close()
        ended = _from_us(end_us)
        assert ended is not None  # end_us is always set
        return MaterializationReport(counts, _from_us(start_us), ended, time.perf_counter() - began)

    def _materialize_batches(
        self, con: duckdb.DuckDBPyConnection, plans: list[_Materialization], end_us: int,
        counts: dict[str, int],
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
    def _online_plan(self, groups: list[tuple[View, list[str], list[str]]]) -> list[_OnlinePlan]:
        """Per view: join keys, (feature, ref, is timestamp, value when absent), ttl in us."""
        key = tuple(ref for _, _, refs in groups for ref in refs)  # what the plan is for
        plan = self._plans.get(key)
        if plan is None:
            plan = []
            for view, feats, refs in groups:
                outputs: list[_Output] = []
                for name, ref in zip(feats, refs, strict=True):
                    feature = view.feature(name)
                    # a count over a window with nothing in it is 0, as in training sets
                    empty = 0 if getattr(feature, "function", None) == "count" else None
                    outputs.append(_Output(name, ref, feature.dtype == "timestamp", empty))
                ttl = None if view.ttl is None else int(view.ttl.total_seconds() * 1_000_000)
                plan.append(_OnlinePlan(view, view.join_keys, outputs, ttl))
            self._plans[key] = plan
        return plan

    def get_online_features(
        self,
        features: Sequence[str],
        entity_rows: Sequence[Mapping[str, object]] | Mapping[str, Sequence[object]],
        *,
        now: datetime | str | None = None,
    ) -> OnlineFeatures:
        """Latest materialized values for one or many entities, with their event times.

        ``entity_rows`` is a list of ``{join key: value}`` dicts or a dict of
        columns. Values older than the view's ttl (as of ``now``, default the
        current time) come back null with status ``expired``.
        """
        groups = self.resolve(features)
        columns = _entity_columns(entity_rows)
        asked = _to_us(now) if now is not None else None
        now_us = asked if asked is not None else time.time_ns() // 1000
        values: dict[str, list[object]] = {}
        stamps: dict[str, list[datetime | None]] = {}
        statuses: dict[str, list[str]] = {}
        entities: dict[str, list[object]] = {}
        for view, join_keys, outputs, ttl_us in self._online_plan(groups):
            keys = _entity_keys(view, join_keys, columns)
            for k in join_keys:
                entities.setdefault(k, columns[k])
            records = self.online.read(view.name, keys)
            decoded, ts_list, status = _decode_online(
                records, None if ttl_us is None else now_us - ttl_us)
            for name, ref, is_timestamp, empty in outputs:
                col: list[object] = [empty if d is None else d.get(name) for d in decoded]
                if is_timestamp:
                    col = [v if not isinstance(v, str) else datetime.fromisoformat(v) for v in col]
                values[ref] = col
                stamps[ref] = ts_list
                statuses[ref] = status
        return OnlineFeatures(entities, values, stamps, statuses)


def _entity_columns(
    entity_rows: Sequence[Mapping[str, object]] | Mapping[str, Sequence[object]],
) -> dict[str, list[object]]:
    """Entity rows as columns, from a list of ``{join key: value}`` dicts or columns."""
    if isinstance(entity_rows, Mapping):
        columns = {str(k): list(v) for k, v in entity_rows.items()}
        if len({len(v) for v in columns.values()}) > 1:
            raise UserInputError("entity_rows columns must all have the same length.")
        return columns
    names = {k for row in entity_rows for k in row}
    return {k: [row.get(k) for row in entity_rows] for k in names}


def _entity_keys(view: View, join_keys: Sequence[str], columns: dict[str, list[object]]
                 ) -> list[str]:
    """The online store's key of each entity row for ``view``."""
    missing = [k for k in join_keys if k not in columns]
    if missing:
        raise UserInputError(
            f"The entity rows lack join key(s) {missing} needed by view {view.name!r}; "
            f"they have {sorted(columns)}."
        )
    if len(join_keys) == 1:
        return [key_string((v,)) for v in columns[join_keys[0]]]
    return [key_string(v) for v in zip(*(columns[k] for k in join_keys), strict=True)]


def _decode_online(records: Sequence[OnlineRecord | None], limit: int | None
                   ) -> tuple[list[JSONObject | None], list[datetime | None], list[str]]:
    """Each record's values, event time and status (missing, expired at or before the
    ``limit`` microseconds, or present)."""
    decoded: list[JSONObject | None] = []
    ts_list: list[datetime | None] = []
    status: list[str] = []
    for record in records:
        if record is None:
            decoded.append(None)
            ts_list.append(None)
            status.append("missing")
            continue
        ts, payload = record
        ts_list.append(_from_us(ts))
        if limit is not None and ts is not None and ts <= limit:
            decoded.append(None)
            status.append("expired")
        else:
            decoded.append(json.loads(payload))
            status.append("present")
    return decoded, ts_list, status


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


def _check_key_types(con: duckdb.DuckDBPyConnection, view: View, alias: str) -> None:
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
