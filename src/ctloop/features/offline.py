"""Point-in-time retrieval in DuckDB: one as-of join per view, no Python loop over rows.

For an entity row ``(keys, t)`` a feature view gives the values of the latest
source row with the same keys and event time ``<= t`` (and ``> t - ttl`` when the
view has a ttl), else nulls. Ties on ``(keys, event time)`` go to the row that
comes last in source order (file order, then row order): when a source has ties,
a ``QUALIFY`` keeps only that row; the as-of join then works on plain BIGINT
microseconds, as fast as a hand-written one.

Aggregation views keep, per key and event time, running sums and counts; the
value over ``(t - window, t]`` is the running total as of ``t`` minus the running
total as of ``t - window``: two as-of joins, however long the window.

The same SQL serves training sets and materialization, which is what keeps
offline and online values identical.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from ctloop.core.errors import UserInputError
from ctloop.features.definitions import (
    Aggregation,
    AggregationView,
    DataFrameSource,
    FeatureView,
    FileSource,
    PythonSource,
    SqlSource,
)
from ctloop.features.errors import SourceSchemaError

if TYPE_CHECKING:
    import duckdb
    import pandas as pd
    import pyarrow as pa

__all__ = ["ViewRequest", "connect", "point_in_time", "register_source"]

View = FeatureView | AggregationView

_TB = "__ctloop_tb"

_INT_TYPES = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
}
_FLOAT_TYPES = {"FLOAT", "DOUBLE", "REAL"}
_TS_TYPES = {
    "TIMESTAMP",
    "TIMESTAMP WITH TIME ZONE",
    "DATE",
    "TIMESTAMP_NS",
    "TIMESTAMP_MS",
    "TIMESTAMP_S",
    "TIMESTAMP_US",
}
_SQL_TYPE = {
    "int64": "BIGINT",
    "float64": "DOUBLE",
    "string": "VARCHAR",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMP",
}


def q(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def connect() -> duckdb.DuckDBPyConnection:
    """A fresh in-memory DuckDB connection working in UTC."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    return con


@dataclass(frozen=True)
class ViewRequest:
    """Some features of one view, and the column names they get in the output."""

    view: View
    features: tuple[str, ...]
    output_names: tuple[str, ...]


# --- sources ---------------------------------------------------------------------------------


def _parquet_files(path: str) -> list[str]:
    if os.path.isdir(path):
        files = sorted(glob.glob(os.path.join(path, "**", "*.parquet"), recursive=True))
    elif any(ch in path for ch in "*?["):
        files = sorted(glob.glob(path, recursive=True))
    else:
        files = [path] if os.path.exists(path) else []
    if not files:
        raise UserInputError(
            f"The parquet source {path!r} matches no file. Write the data there or fix the "
            "source path in the definition."
        )
    return files


def register_source(
    con: duckdb.DuckDBPyConnection, view: View, alias: str, arrow: pa.Table | None = None
) -> str:
    """Make the view's source readable as ``alias`` (with a tiebreak column); return it.

    ``arrow`` short-cuts sources that must be loaded in Python (DataFrame, SQL and
    Python sources), so a caller can cache them.
    """
    source = view.source
    if isinstance(source, FileSource):
        files = _parquet_files(source.path)
        listing = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
        tiebreak = (
            "file_row_number"
            if len(files) == 1
            else f"(list_position({listing}, filename)::BIGINT << 40) + file_row_number"
        )
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {q(alias)} AS SELECT * EXCLUDE (filename, "
            f"file_row_number), {tiebreak} AS {_TB} FROM read_parquet({listing}, "
            "filename = true, file_row_number = true, union_by_name = true)"
        )
        return alias
    if arrow is None:
        arrow = load_arrow(view)
    import pyarrow as pa

    if _TB in arrow.column_names:
        arrow = arrow.drop_columns([_TB])
    arrow = arrow.append_column(_TB, pa.array(range(arrow.num_rows), type=pa.int64()))
    con.register(alias, arrow)
    return alias


def load_arrow(view: View) -> pa.Table:
    """The rows of a source that lives in Python (not a parquet path)."""
    source = view.source
    if isinstance(source, DataFrameSource):
        if source.data is None:
            raise UserInputError(
                f"View {view.name!r} reads an in-memory DataFrame that this process does not "
                "have. Build the feature store from the definitions file that holds it."
            )
        return source.to_arrow()
    if isinstance(source, SqlSource):
        return source.to_arrow([view.timestamp_field] if view.timestamp_field else None)
    if isinstance(source, PythonSource):
        return source.to_arrow()
    raise UserInputError(f"View {view.name!r} has a source ctloop cannot read: {source!r}.")


def check_schema(con: duckdb.DuckDBPyConnection, view: View, alias: str) -> dict[str, str]:
    """Compare the source's columns with the view's definition; return name -> type."""
    rows = con.execute(f"DESCRIBE SELECT * FROM {q(alias)}").fetchall()
    types = {str(r[0]): str(r[1]).upper() for r in rows}
    problems: list[str] = []

    def need(column: str, allowed: set[str] | None, role: str) -> None:
        if column not in types:
            problems.append(f"{role} column {column!r} is missing")
            return
        actual = types[column]
        base = actual.split("(")[0]
        if allowed is not None and base not in allowed and actual != '"NULL"':
            problems.append(
                f"{role} column {column!r} has type {actual}, expected {_show(allowed)}"
            )

    for key in view.join_keys:
        need(key, None, "join key")
    if view.timestamp_field:
        need(view.timestamp_field, _TS_TYPES, "timestamp")
    numeric = _INT_TYPES | _FLOAT_TYPES | {"DECIMAL", "BOOLEAN"}
    for item in view.features:
        if isinstance(view, AggregationView):
            need(item.column, numeric, f"aggregated ({item.name})")
        else:
            allowed = {
                "int64": _INT_TYPES | {"BOOLEAN"},
                "float64": numeric,
                "string": {"VARCHAR"},
                "bool": {"BOOLEAN"},
                "timestamp": _TS_TYPES,
            }[item.dtype]
            need(item.column, allowed, f"feature ({item.name}, {item.dtype})")
    if problems:
        found = ", ".join(f"{k} {v}" for k, v in types.items() if k != _TB)
        raise SourceSchemaError(
            f"The source of view {view.name!r} no longer matches its definition: "
            f"{'; '.join(problems)}. Source columns: {found}. Fix the data or change the "
            "definition and run `ctloop features apply` again."
        )
    return types


def _show(allowed: set[str]) -> str:
    return " or ".join(sorted(allowed)[:4]) + (" ..." if len(allowed) > 4 else "")


# --- the join --------------------------------------------------------------------------------


def _check_entity(columns: Sequence[str], keys: Sequence[str], timestamp_column: str) -> None:
    missing = [k for k in keys if k not in columns]
    if timestamp_column not in columns:
        missing.append(timestamp_column)
    if missing:
        raise UserInputError(
            f"The entity frame lacks column(s) {missing}: it needs the join keys "
            f"{list(keys)} and the timestamp column {timestamp_column!r}. It has "
            f"{list(columns)[:20]}. Add them, or pass timestamp_column=... naming yours."
        )


def point_in_time(
    con: duckdb.DuckDBPyConnection,
    entity: str,
    timestamp_column: str,
    requests: Sequence[ViewRequest],
    sources: dict[str, str],
    *,
    event_times: bool = False,
    extra_columns: Sequence[str] = (),
) -> str:
    """SQL for the point-in-time values of ``requests`` for each row of table ``entity``.

    ``entity`` must have a ``__row`` column (kept, for ordering); ``sources`` maps
    view names to registered source aliases. With ``event_times`` each view adds
    ``__ts__<view>`` (microseconds since the epoch of the row used).
    """
    e_cols = ["__row", *extra_columns]
    keys: list[str] = []
    for req in requests:
        keys.extend(k for k in req.view.join_keys if k not in keys)
    windows: dict[int, str] = {}
    for req in requests:
        if isinstance(req.view, AggregationView):
            for agg in req.view.aggregations:
                windows.setdefault(_window_us(agg), f"__tw{len(windows)}")
    ts = f"CAST({q(timestamp_column)} AS TIMESTAMP)"
    entity_select = [
        *(q(c) for c in e_cols),
        *(q(k) for k in keys if k not in e_cols),
        f"epoch_us({ts}) AS __tus",
        *(f"epoch_us({ts}) - {us} AS {name}" for us, name in windows.items()),
    ]
    sql = _Query(ctes=[f"e AS (SELECT {', '.join(entity_select)} FROM {q(entity)})"],
                 outputs=[f"e.{q(c)}" for c in e_cols])
    for i, req in enumerate(requests):
        src = q(sources[req.view.name])
        if isinstance(req.view, FeatureView):
            _join_feature_view(con, sql, i, req, req.view, src, event_times)
        else:
            _join_aggregation_view(sql, i, req, req.view, src, windows, event_times)
    return (f"WITH {', '.join(sql.ctes)} SELECT {', '.join(sql.outputs)} FROM e "
            f"{' '.join(sql.joins)}")


@dataclass
class _Query:
    """The parts of the point-in-time query, filled in view by view."""

    ctes: list[str]
    outputs: list[str]
    joins: list[str] = field(default_factory=list)


def _window_us(agg: Aggregation) -> int:
    """An aggregation's window in microseconds (parsed to a timedelta by Aggregation)."""
    return int(agg.window.total_seconds() * 1_000_000)  # type: ignore[union-attr]


def _join_feature_view(con: duckdb.DuckDBPyConnection, sql: _Query, i: int, req: ViewRequest,
                       view: FeatureView, src: str, event_times: bool) -> None:
    """The latest source row at or before each entity row (any row of a static view)."""
    on_keys = " AND ".join(f"e.{q(k)} = s{i}.{q(k)}" for k in view.join_keys)
    key_cols = ", ".join(q(k) for k in view.join_keys)
    cols = [
        f"CAST({q(f.column)} AS {_SQL_TYPE[f.dtype]}) AS __f{j}"
        for j, f in enumerate(view.features)
    ]
    if view.static:
        dedupe = _dedupe(con, src, list(view.join_keys), None)
        sql.ctes.append(
            f"s{i} AS (SELECT {key_cols}, NULL::BIGINT AS __tus, "
            f"{', '.join(cols)} FROM {src} {dedupe})"
        )
        sql.joins.append(f"LEFT JOIN s{i} ON {on_keys}")
        valid = "TRUE"
    else:
        sts = f"CAST({q(view.timestamp_field)} AS TIMESTAMP)"  # type: ignore[arg-type]
        dedupe = _dedupe(con, src, list(view.join_keys), f"epoch_us({sts})")
        sql.ctes.append(
            f"s{i} AS (SELECT {key_cols}, epoch_us({sts}) AS __tus, "
            f"{', '.join(cols)} FROM {src} WHERE {sts} IS NOT NULL {dedupe})"
        )
        sql.joins.append(f"ASOF LEFT JOIN s{i} ON {on_keys} AND e.__tus >= s{i}.__tus")
        valid = _fresh(i, view.ttl) or f"s{i}.__tus IS NOT NULL"
    for name, out in zip(req.features, req.output_names, strict=True):
        j = view.feature_names.index(name)
        sql.outputs.append(f"CASE WHEN {valid} THEN s{i}.__f{j} END AS {q(out)}")
    if event_times:
        sql.outputs.append(
            f"CASE WHEN {valid} THEN s{i}.__tus END AS {q('__ts__' + view.name)}"
        )


def _fresh(i: int, ttl: timedelta | None) -> str | None:
    """The condition that view ``i``'s row is within its ttl, or None without a ttl."""
    if ttl is None:
        return None
    return f"s{i}.__tus > e.__tus - {int(ttl.total_seconds() * 1_000_000)}"


def _join_aggregation_view(sql: _Query, i: int, req: ViewRequest, view: AggregationView,
                           src: str, windows: dict[int, str], event_times: bool) -> None:
    """Running sums per (keys, event time), two as-of joins per window."""
    sts = f"CAST({q(view.timestamp_field)} AS TIMESTAMP)"
    key_cols = ", ".join(q(k) for k in view.join_keys)
    columns = sorted({a.column for a in view.aggregations})
    grouped = []
    running = []
    for c, column in enumerate(columns):
        grouped.append(f"sum(TRY_CAST({q(column)} AS DOUBLE)) AS __s{c}")
        grouped.append(f"count({q(column)}) AS __c{c}")
        running.append(f"sum(__s{c}) OVER w AS __s{c}")
        running.append(f"sum(__c{c}) OVER w AS __c{c}")
    sql.ctes.append(
        f"g{i} AS (SELECT {key_cols}, epoch_us({sts}) AS __tus, {', '.join(grouped)} "
        f"FROM {src} WHERE {q(view.timestamp_field)} IS NOT NULL GROUP BY ALL)"
    )
    sql.ctes.append(
        f"s{i} AS (SELECT {key_cols}, __tus, {', '.join(running)} FROM g{i} "
        f"WINDOW w AS (PARTITION BY {key_cols} ORDER BY __tus "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW))"
    )
    on_keys = " AND ".join(f"e.{q(k)} = s{i}.{q(k)}" for k in view.join_keys)
    sql.joins.append(f"ASOF LEFT JOIN s{i} ON {on_keys} AND e.__tus >= s{i}.__tus")
    used_windows: dict[int, str] = {}
    for agg in view.aggregations:
        us = _window_us(agg)
        if us not in used_windows:
            alias = used_windows[us] = f"p{i}_{len(used_windows)}"
            on_p = " AND ".join(f"e.{q(k)} = {alias}.{q(k)}" for k in view.join_keys)
            sql.joins.append(
                f"ASOF LEFT JOIN s{i} AS {alias} ON {on_p} AND e.{windows[us]} >= {alias}.__tus"
            )
    valid = _fresh(i, view.ttl) or "TRUE"
    for name, out in zip(req.features, req.output_names, strict=True):
        found = view.feature(name)
        assert isinstance(found, Aggregation)  # an aggregation view holds aggregations
        expr = _aggregate(found.function, f"s{i}", used_windows[_window_us(found)],
                          columns.index(found.column), valid)
        sql.outputs.append(f"{expr} AS {q(out)}")
    if event_times:
        sql.outputs.append(f"s{i}.__tus AS {q('__ts__' + view.name)}")


def _aggregate(function: str, now: str, before: str, c: int, valid: str) -> str:
    """``function`` over the window: the running totals as of now minus as of its start."""
    count = f"(coalesce({now}.__c{c}, 0) - coalesce({before}.__c{c}, 0))"
    total = f"({now}.__s{c} - coalesce({before}.__s{c}, 0))"
    if function == "count":
        return f"CAST(CASE WHEN {valid} THEN {count} ELSE 0 END AS BIGINT)"
    if function == "sum":
        return f"CASE WHEN {valid} AND {count} > 0 THEN CAST({total} AS DOUBLE) END"
    return f"CASE WHEN {valid} AND {count} > 0 THEN CAST({total} AS DOUBLE) / {count} END"


def _dedupe(con: duckdb.DuckDBPyConnection, src: str, keys: list[str], ts: str | None) -> str:
    """A QUALIFY clause keeping the last row (source order) per key and event time.

    Only when the source has such ties: checking is a hash aggregate over the source,
    much cheaper than a window over it, and the as-of join on plain BIGINT event
    times stays as fast as a hand-written one.
    """
    group = [q(k) for k in keys] + ([ts] if ts else [])
    where = f"WHERE {ts} IS NOT NULL" if ts else ""
    ties = con.execute(
        f"SELECT EXISTS (SELECT 1 FROM {src} {where} GROUP BY {', '.join(group)} "
        "HAVING count(*) > 1)"
    ).fetchall()
    if not ties or not ties[0][0]:
        return ""
    return f"QUALIFY row_number() OVER (PARTITION BY {', '.join(group)} ORDER BY {_TB} DESC) = 1"


def prepare_entity(
    entity_df: pd.DataFrame | pa.Table, keys: Sequence[str], timestamp_column: str
) -> pa.Table:
    """The entity frame's join keys and timestamp as Arrow, with a ``__row`` column."""
    import pyarrow as pa

    if isinstance(entity_df, pa.Table):
        table = entity_df
        columns = table.column_names
    else:
        columns = [str(c) for c in entity_df.columns]
    _check_entity(columns, keys, timestamp_column)
    needed = list(dict.fromkeys([*keys, timestamp_column]))
    if not isinstance(entity_df, pa.Table):
        table = pa.Table.from_pandas(entity_df[needed], preserve_index=False)
    else:
        table = table.select(needed)
    ts_type = table.schema.field(timestamp_column).type
    if not (pa.types.is_timestamp(ts_type) or pa.types.is_date(ts_type)):
        raise UserInputError(
            f"The entity frame's timestamp column {timestamp_column!r} must hold timestamps. "
            f"Got {ts_type}. Convert it, e.g. pd.to_datetime(df[{timestamp_column!r}])."
        )
    return table.append_column("__row", pa.array(range(table.num_rows), type=pa.int64()))
