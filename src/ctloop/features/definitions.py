"""Feature definitions: entities, sources, feature views and aggregation views.

Definitions are frozen values written in Python. They do no I/O when built;
the offline engine reads their sources, the catalog stores their ``spec()``
and a fresh process rebuilds them with :func:`definition_from_spec`.

    Entity            a thing features describe, with its join keys
    Source            where rows come from: FileSource (parquet), DataFrameSource,
                      SqlSource (a query on a database URL), PythonSource (a function)
    FeatureView       typed columns of a source, valid ``ttl`` after their event time
    AggregationView   count / sum / mean of a column over trailing windows,
                      computed as of the moment asked about
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from ctloop.core.durations import duration_seconds
from ctloop.core.errors import UserInputError
from ctloop.core.hashing import hash_bytes, stable_json
from ctloop.core.jsontypes import (
    JSONObject,
    JSONValue,
    as_list,
    as_number,
    as_object,
    as_str,
    as_strs,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = [
    "DTYPES",
    "Aggregation",
    "AggregationView",
    "DataFrameSource",
    "Entity",
    "Feature",
    "FeatureView",
    "FileSource",
    "PythonSource",
    "Source",
    "SqlSource",
    "definition_from_spec",
    "parse_duration",
]

DTYPES = ("int64", "float64", "string", "bool", "timestamp")
AGG_FUNCTIONS = ("count", "sum", "mean")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_name(what: str, name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise UserInputError(
            f"The name of a {what} must be a Python identifier (letters, digits, '_'). "
            f"Got {name!r}."
        )


def parse_duration(value: timedelta | str | int | float | None, what: str) -> timedelta | None:
    """``timedelta``, seconds, or text like ``"7d"``, ``"2h"``, ``"30m"``, ``"45s"``."""
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    seconds = duration_seconds(value)
    if seconds is None:
        raise UserInputError(
            f"The {what} must be a timedelta, a number of seconds or text like '7d', '2h', "
            f"'30m'. Got {value!r}."
        )
    return timedelta(seconds=seconds)


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


# --- entities and features -------------------------------------------------------------------


@dataclass(frozen=True)
class Entity:
    """Something features describe; ``join_keys`` are the columns that identify it."""

    name: str
    join_keys: tuple[str, ...] = ()
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_name("entity", self.name)
        keys = (self.join_keys,) if isinstance(self.join_keys, str) else tuple(self.join_keys)
        object.__setattr__(self, "join_keys", keys or (self.name,))
        for key in self.join_keys:
            _check_name("join key", key)

    kind = "entity"

    def spec(self) -> dict[str, JSONValue]:
        """The canonical, JSON-ready description stored in the catalog."""
        return {"name": self.name, "join_keys": list(self.join_keys)}


@dataclass(frozen=True)
class Feature:
    """A typed column of a feature view; ``column`` defaults to the feature's name."""

    name: str
    dtype: str = "float64"
    column: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("feature", self.name)
        if self.dtype not in DTYPES:
            raise UserInputError(
                f"The dtype of feature {self.name!r} must be one of {DTYPES}. Got {self.dtype!r}."
            )
        if not self.column:
            object.__setattr__(self, "column", self.name)

    def spec(self) -> dict[str, JSONValue]:
        return {"name": self.name, "dtype": self.dtype, "column": self.column}


@dataclass(frozen=True)
class Aggregation:
    """``function`` (count, sum, mean) of ``column`` over the trailing ``window``.

    At time ``t`` it covers source rows with event time in ``(t - window, t]``:
    only rows known at ``t`` count. Over an empty window ``count`` is 0 and
    ``sum``/``mean`` are null.
    """

    name: str
    column: str
    function: str
    window: timedelta | str
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("aggregation", self.name)
        if self.function not in AGG_FUNCTIONS:
            raise UserInputError(
                f"The function of aggregation {self.name!r} must be one of {AGG_FUNCTIONS}. "
                f"Got {self.function!r}."
            )
        window = parse_duration(self.window, f"window of aggregation {self.name!r}")
        if window is None or window <= timedelta(0):
            raise UserInputError(
                f"The window of aggregation {self.name!r} must be positive. Got {self.window!r}."
            )
        object.__setattr__(self, "window", window)

    @property
    def dtype(self) -> str:
        return "int64" if self.function == "count" else "float64"

    def spec(self) -> dict[str, JSONValue]:
        return {
            "name": self.name,
            "column": self.column,
            "function": self.function,
            "window_s": _seconds(self.window),  # type: ignore[arg-type]
            "dtype": self.dtype,
        }


# --- sources ---------------------------------------------------------------------------------


class Source:
    """Where a view's rows come from. ``spec()`` says it in JSON for the catalog."""

    kind = "source"

    def spec(self) -> dict[str, JSONValue]:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:
        return stable_json(self.spec())


@dataclass(frozen=True, eq=False)
class FileSource(Source):
    """Parquet files: one file, a folder (read recursively) or a glob pattern."""

    path: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", str(self.path))

    def spec(self) -> dict[str, JSONValue]:
        return {"type": "file", "path": self.path}


@dataclass(frozen=True, eq=False)
class DataFrameSource(Source):
    """An in-memory pandas DataFrame or Arrow table (not reloadable in another process)."""

    data: pd.DataFrame | pa.Table | None  # None when rebuilt from the catalog
    name: str = "dataframe"

    def spec(self) -> dict[str, JSONValue]:
        return {"type": "dataframe", "name": self.name}

    def to_arrow(self) -> pa.Table:
        import pyarrow as pa

        if self.data is None:
            raise UserInputError(
                f"The DataFrameSource {self.name!r} was rebuilt from the catalog, which keeps no "
                "data: apply the definitions again in this process with the frame itself, or "
                "use a FileSource, SqlSource or PythonSource that another process can read."
            )
        if isinstance(self.data, pa.Table):
            return self.data
        return pa.Table.from_pandas(self.data, preserve_index=False)


@dataclass(frozen=True, eq=False)
class SqlSource(Source):
    """The rows of a SQL query on a database URL (any SQLAlchemy URL)."""

    url: str
    query: str

    def spec(self) -> dict[str, JSONValue]:
        return {"type": "sql", "url": self.url, "query": self.query}

    def to_arrow(self, parse_dates: list[str] | None = None) -> pa.Table:
        """Run the query; ``parse_dates`` columns become timestamps (SQLite keeps text)."""
        import pandas as pd
        import pyarrow as pa
        import sqlalchemy as sa

        from ctloop.core.errors import BackendUnavailable

        try:
            engine = sa.create_engine(self.url)
            with engine.connect() as conn:
                frame = pd.read_sql_query(sa.text(self.query), conn, parse_dates=parse_dates)
        except sa.exc.SQLAlchemyError as exc:
            raise BackendUnavailable(
                f"The SQL source on {self.url!r} failed: {exc}. Check the URL and the query."
            ) from exc
        return pa.Table.from_pandas(frame, preserve_index=False)


@dataclass(frozen=True, eq=False)
class PythonSource(Source):
    """Rows returned by a function (``"module:function"`` or the function itself).

    The function takes no arguments and returns a pandas DataFrame or an Arrow
    table; the catalog stores its import path so another process can call it.
    """

    function: str | Callable[[], object]

    def __post_init__(self) -> None:
        if callable(self.function):
            func = self.function
            object.__setattr__(self, "function", f"{func.__module__}:{func.__qualname__}")
        if ":" not in str(self.function):
            raise UserInputError(f"A PythonSource needs 'module:function'. Got {self.function!r}.")

    def spec(self) -> dict[str, JSONValue]:
        return {"type": "python", "function": str(self.function)}  # "module:function" by now

    def to_arrow(self) -> pa.Table:
        import pyarrow as pa

        module_name, _, qualname = str(self.function).partition(":")
        try:
            target: object = importlib.import_module(module_name)
            for part in qualname.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError) as exc:
            raise UserInputError(
                f"Cannot load the source function {self.function!r}: {exc}."
            ) from exc
        if not callable(target):
            raise UserInputError(f"The source function {self.function!r} is not callable.")
        data = target()
        if isinstance(data, pa.Table):
            return data
        return pa.Table.from_pandas(data, preserve_index=False)


def source_from_spec(spec: JSONObject) -> Source:
    kind = spec.get("type")
    if kind == "file":
        return FileSource(as_str(spec.get("path")))
    if kind == "sql":
        return SqlSource(as_str(spec.get("url")), as_str(spec.get("query")))
    if kind == "python":
        return PythonSource(as_str(spec.get("function")))
    if kind == "dataframe":
        return DataFrameSource(None, name=as_str(spec.get("name"), "dataframe"))
    raise UserInputError(f"Unknown source type {kind!r} in a stored definition.")


# --- views -----------------------------------------------------------------------------------


def _entities(value: Sequence[Entity] | Entity) -> tuple[Entity, ...]:
    items = (value,) if isinstance(value, Entity) else tuple(value)
    for item in items:
        if not isinstance(item, Entity):
            raise UserInputError(f"A view's entities must be Entity objects. Got {item!r}.")
    if not items:
        raise UserInputError("A view needs at least one entity.")
    return items


def _tags(tags: dict[str, str] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (tags or {}).items()}


class _View:
    """What feature views and aggregation views share."""

    name: str
    entities: tuple[Entity, ...]
    source: Source
    timestamp_field: str | None
    ttl: timedelta | None
    description: str
    owner: str
    tags: dict[str, str]
    features: Sequence[Feature | Aggregation]
    kind = "feature_view"

    def _set_common(self, name: str, entities: Sequence[Entity] | Entity, source: Source,
                    timestamp_field: str | None, ttl: timedelta | str | None,
                    description: str, owner: str, tags: dict[str, str] | None) -> None:
        """The fields both kinds of view take the same way (they are frozen dataclasses)."""
        for field_name, value in (
            ("name", name), ("entities", _entities(entities)), ("source", source),
            ("timestamp_field", timestamp_field),
            ("ttl", parse_duration(ttl, f"ttl of view {name!r}")),
            ("description", description), ("owner", owner), ("tags", _tags(tags)),
        ):
            object.__setattr__(self, field_name, value)

    @property
    def join_keys(self) -> tuple[str, ...]:
        keys: list[str] = []
        for entity in self.entities:
            keys.extend(k for k in entity.join_keys if k not in keys)
        return tuple(keys)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def static(self) -> bool:
        """True when rows have no event time (one row per key, always valid)."""
        return not self.timestamp_field

    def feature(self, name: str) -> Feature | Aggregation:
        for item in self.features:
            if item.name == name:
                return item
        raise KeyError(name)

    def _common_spec(self) -> dict[str, JSONValue]:
        return {
            "name": self.name,
            "entities": [e.name for e in self.entities],
            "join_keys": list(self.join_keys),
            "source": self.source.spec(),
            "timestamp_field": self.timestamp_field,
            "ttl_s": _seconds(self.ttl),
        }

    def semantic_key(self, feature: str) -> str:
        """A hash of what ``feature`` computes, independent of names and prose."""
        item = {k: v for k, v in self.feature(feature).spec().items() if k != "name"}
        meaning = {  # the same values spec() holds
            "source": self.source.spec(),
            "join_keys": sorted(self.join_keys),
            "timestamp_field": self.timestamp_field,
            "ttl_s": _seconds(self.ttl),
            "feature": item,
        }
        return hash_bytes(stable_json(meaning).encode())[:16]

    def spec(self) -> dict[str, JSONValue]:  # pragma: no cover - overridden
        raise NotImplementedError

    def fingerprint(self) -> str:
        return hash_bytes(stable_json(self.spec()).encode())


@dataclass(frozen=True, eq=False, init=False)
class FeatureView(_View):
    """Typed columns of a source, keyed by entities and stamped with an event time.

    At time ``t`` a feature's value is that of the latest source row with event
    time ``<= t`` and, with a ``ttl``, ``> t - ttl``; otherwise null. Rows with
    the same key and event time: the last one in source order wins. Without a
    ``timestamp_field`` the view is static (one row per key, always valid).
    ``entities`` may be one entity and ``ttl`` a text like ``"2d"``; the view
    keeps them as a tuple and a ``timedelta``.
    """

    name: str
    entities: tuple[Entity, ...]
    source: Source
    features: tuple[Feature, ...]
    timestamp_field: str | None
    ttl: timedelta | None
    description: str
    owner: str
    tags: dict[str, str]

    def __init__(
        self,
        name: str,
        entities: Sequence[Entity] | Entity,
        source: Source,
        features: Sequence[Feature],
        timestamp_field: str | None = None,
        ttl: timedelta | str | None = None,
        description: str = "",
        owner: str = "",
        tags: dict[str, str] | None = None,
    ) -> None:
        _check_name("feature view", name)
        self._set_common(name, entities, source, timestamp_field, ttl, description, owner, tags)
        object.__setattr__(self, "features", tuple(features))
        if not isinstance(self.source, Source):
            raise UserInputError(f"The source of view {self.name!r} must be a Source.")
        if not self.features:
            raise UserInputError(f"Feature view {self.name!r} needs at least one Feature.")
        names = [f.name for f in self.features]
        dupes = sorted(
            {n for n in names if names.count(n) > 1} | (set(names) & set(self.join_keys))
        )
        if dupes:
            raise UserInputError(
                f"Feature view {self.name!r} repeats names {dupes}; give each feature a "
                "unique name different from the join keys."
            )

    def spec(self) -> dict[str, JSONValue]:
        spec = self._common_spec()
        spec["type"] = "feature_view"
        spec["features"] = [f.spec() for f in self.features]
        return spec


@dataclass(frozen=True, eq=False, init=False)
class AggregationView(_View):
    """Windowed aggregations of a source, computed point-in-time per entity."""

    name: str
    entities: tuple[Entity, ...]
    source: Source
    aggregations: tuple[Aggregation, ...]
    timestamp_field: str
    ttl: timedelta | None
    description: str
    owner: str
    tags: dict[str, str]

    def __init__(
        self,
        name: str,
        entities: Sequence[Entity] | Entity,
        source: Source,
        aggregations: Sequence[Aggregation],
        timestamp_field: str = "event_timestamp",
        ttl: timedelta | str | None = None,
        description: str = "",
        owner: str = "",
        tags: dict[str, str] | None = None,
    ) -> None:
        _check_name("aggregation view", name)
        self._set_common(name, entities, source, timestamp_field, ttl, description, owner, tags)
        object.__setattr__(self, "aggregations", tuple(aggregations))
        if not self.timestamp_field:
            raise UserInputError(f"Aggregation view {self.name!r} needs a timestamp_field.")
        if not self.aggregations:
            raise UserInputError(f"Aggregation view {self.name!r} needs at least one Aggregation.")
        names = [a.name for a in self.aggregations]
        if len(set(names)) != len(names):
            raise UserInputError(f"Aggregation view {self.name!r} repeats aggregation names.")

    @property
    def features(self) -> Sequence[Aggregation]:  # type: ignore[override]  # read-only alias of aggregations
        return self.aggregations

    def spec(self) -> dict[str, JSONValue]:
        spec = self._common_spec()
        spec["type"] = "aggregation_view"
        spec["features"] = [a.spec() for a in self.aggregations]
        return spec


View = FeatureView | AggregationView


def definition_from_spec(
    spec: JSONObject, entities: Mapping[str, Entity] | None = None
) -> Entity | FeatureView | AggregationView:
    """Rebuild a definition from its catalog spec."""
    name, join_keys = as_str(spec.get("name")), tuple(as_strs(spec.get("join_keys")))
    if "type" not in spec:
        return Entity(name, join_keys)
    known = entities or {}
    names = as_strs(spec.get("entities"))
    ents = [known[n] for n in names if n in known]
    if len(ents) != len(names) or [k for e in ents for k in e.join_keys] != list(join_keys):
        # Entities are stored separately; the view's own join keys are what count.
        ents = [Entity("_".join(names), join_keys)]
    source = source_from_spec(as_object(spec.get("source")))
    ttl_s = as_number(spec.get("ttl_s"))
    ttl = None if ttl_s is None else timedelta(seconds=ttl_s)
    features = [as_object(f) for f in as_list(spec.get("features"))]
    if spec["type"] == "aggregation_view":
        return AggregationView(
            name,
            ents,
            source,
            [
                Aggregation(as_str(a.get("name")), as_str(a.get("column")),
                            as_str(a.get("function")),
                            timedelta(seconds=as_number(a.get("window_s")) or 0))
                for a in features
            ],
            timestamp_field=as_str(spec.get("timestamp_field")),
            ttl=ttl,
        )
    stamp = spec.get("timestamp_field")
    return FeatureView(
        name,
        ents,
        source,
        [Feature(as_str(f.get("name")), as_str(f.get("dtype"), "float64"),
                 as_str(f.get("column"))) for f in features],
        timestamp_field=stamp if isinstance(stamp, str) else None,
        ttl=ttl,
    )
