"""The metadata store on SQLAlchemy Core: one implementation for SQLite, PostgreSQL, MySQL.

Each public method is one transaction. Writes on SQLite start with
``BEGIN IMMEDIATE`` (writers queue on the busy timeout instead of failing);
on the server databases, version numbers and alias moves are serialised by a
``SELECT ... FOR UPDATE`` on the model's row. Driver errors never leak: a lost
connection becomes ``BackendUnavailable``, anything else ``StoreError``.
"""

from __future__ import annotations

import dataclasses
import os
import random
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from types import EllipsisType
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import mysql as mysql_dialect
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from ctloop.core.errors import CtloopError, NotFound, StoreError, UserInputError
from ctloop.core.secrets import mask_secrets
from ctloop.metadata import schema as t
from ctloop.metadata.base import (
    EVENT_KINDS,
    AliasEventRecord,
    ArtifactRecord,
    DefinitionRecord,
    EventRecord,
    ModelVersionRecord,
    RunRecord,
    RunStatus,
    StepRecord,
    StepStatus,
    version_in_range,
)
from ctloop.metadata.engine import create_engine, describe_url, translate_connect_error
from ctloop.metadata.migrate import upgrade

__all__ = ["SqlMetadataStore"]

R = TypeVar("R")
_MIN_PREFIX = 4
_RETRIES = 5


def _now() -> datetime:
    return datetime.now(UTC)


def _to_db(value: datetime | None) -> datetime | None:
    """Aware or naive datetime -> naive UTC, the form every backend stores."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def _from_db(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


_RUN_FIELDS = {f.name for f in dataclasses.fields(RunRecord)}
_DATETIMES = {"created_at", "started_at", "ended_at"}


_TEXTS = {"error", "traceback"}  # may quote a URL or a library's message: masked when stored


def _row_values(record: Any) -> dict[str, Any]:
    values = {}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        if f.name in _DATETIMES:
            value = _to_db(value)
        elif isinstance(value, StrEnum):
            value = value.value
        elif f.name in _TEXTS and isinstance(value, str):
            value = mask_secrets(value)
        values[f.name] = value
    return values


def _record(cls: type[R], row: sa.Row[Any], **overrides: Any) -> R:
    data = {f.name: row._mapping[f.name] for f in dataclasses.fields(cls) if f.name in row._mapping}  # type: ignore[arg-type]
    for key in _DATETIMES & data.keys():
        data[key] = _from_db(data[key])
    data.update(overrides)
    return cls(**data)


def _run(row: sa.Row[Any]) -> RunRecord:
    return _record(RunRecord, row, status=RunStatus(row.status))


def _step(row: sa.Row[Any]) -> StepRecord:
    return _record(StepRecord, row, status=StepStatus(row.status))


class SqlMetadataStore:
    """``MetadataStore`` over a SQLAlchemy engine; open it with ``open_metadata_store``."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self._engine = create_engine(url)
        self._dialect = self._engine.dialect.name
        self._statements: dict[Any, Any] = {}
        try:
            if migrate:
                upgrade(self._engine, url_for_humans=describe_url(url))
            else:
                with self._engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as exc:
            self._engine.dispose()
            raise translate_connect_error(exc, url) from None
        except CtloopError:
            self._engine.dispose()
            raise
        # A forked child (subprocess runner, servers) must not reuse the parent's sockets.
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _dispose_in_child(ref))

    def __repr__(self) -> str:
        return f"SqlMetadataStore({describe_url(self.url)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled across processes by URL: the child opens its own connections.
        return (SqlMetadataStore, (self.url,))

    def close(self) -> None:
        self._engine.dispose()

    # transactions -----------------------------------------------------------
    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self._guard(), self._engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        with self._guard(), self._engine.connect() as conn:
            if self._dialect == "sqlite":
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except CtloopError:
            raise
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
                raise translate_connect_error(exc, self.url) from exc
            detail = " ".join(str(getattr(exc, "orig", exc)).split())
            if "connect" in detail.lower() or "server" in detail.lower():
                raise translate_connect_error(exc, self.url) from exc
            raise StoreError(
                f"The metadata database {describe_url(self.url)} failed: {detail}. "
                "Retry; if it persists, check the database server's logs."
            ) from exc
        except sa.exc.SQLAlchemyError as exc:
            detail = " ".join(str(getattr(exc, "orig", exc)).split())
            raise StoreError(
                f"The metadata database {describe_url(self.url)} failed: {detail}."
            ) from exc

    def _retry(self, fn: Callable[[], R], *, unique_races: bool = True) -> R:
        """Run a write transaction again when it lost a race (unique key or deadlock)."""
        for attempt in range(_RETRIES):
            try:
                return fn()
            except StoreError as exc:
                if not _lost_race(exc.__cause__, unique_races) or attempt == _RETRIES - 1:
                    raise
                time.sleep(random.uniform(0, 0.01 * 2**attempt))
        raise AssertionError("unreachable")

    def _insert_ignore(self, table: sa.Table) -> Any:
        if self._dialect == "postgresql":
            return pg_dialect.insert(table).on_conflict_do_nothing()
        if self._dialect == "sqlite":
            return sqlite_dialect.insert(table).on_conflict_do_nothing()
        return mysql_dialect.insert(table).prefix_with("IGNORE")

    def _by_prefix(self, conn: sa.Connection, table: sa.Table, key: str, what: str) -> sa.Row[Any]:
        key = str(key).strip()
        row = conn.execute(_BY_ID[table.name], {"id": key}).first()
        if row is not None:
            return row
        if len(key) < _MIN_PREFIX:
            raise NotFound(
                f"No {what} with id {key!r}. Give the full id or at least "
                f"{_MIN_PREFIX} characters of it."
            )
        escaped = key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = conn.execute(
            sa.select(table).where(table.c.id.like(escaped + "%", escape="\\")).limit(2)
        ).all()
        if not rows:
            raise NotFound(f"No {what} with id {key!r}. List them with `ctloop {what}s list`.")
        if len(rows) > 1:
            raise UserInputError(
                f"The id prefix {key!r} matches several {what}s. Give more characters."
            )
        return rows[0]

    def _insert_new(self, table: sa.Table, record: R, what: str) -> R:
        """Insert a record with a new id (stamped now if undated); a taken id is an error."""
        if record.created_at is None:  # type: ignore[attr-defined]
            record = dataclasses.replace(record, created_at=_now())  # type: ignore[type-var]
        try:
            with self._write() as conn:
                conn.execute(sa.insert(table).values(_row_values(record)))
        except StoreError as exc:
            if isinstance(exc.__cause__, sa.exc.IntegrityError):
                raise StoreError(
                    f"{what} with id {record.id!r} already exists."  # type: ignore[attr-defined]
                ) from exc
            raise
        return _normalized(record)

    # runs and steps ---------------------------------------------------------
    def create_run(self, run: RunRecord) -> RunRecord:
        return self._insert_new(t.runs, run, "A run")

    def update_run(self, run_id: str, **changes: Any) -> RunRecord:
        unknown = set(changes) - _RUN_FIELDS - {"id"}
        if unknown or "id" in changes:
            raise TypeError(f"update_run() cannot change {sorted(unknown | {'id'} & set(changes))}")
        values = _row_values_partial(changes)
        with self._write() as conn:
            result = conn.execute(sa.update(t.runs).where(t.runs.c.id == run_id).values(values))
            if result.rowcount == 0:
                raise NotFound(f"No run with id {run_id!r}.")
            return _run(conn.execute(sa.select(t.runs).where(t.runs.c.id == run_id)).one())

    def get_run(self, run_id: str) -> RunRecord:
        with self._read() as conn:
            return _run(self._by_prefix(conn, t.runs, run_id, "run"))

    def list_runs(
        self, *, pipeline: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[RunRecord]:
        query = sa.select(t.runs).order_by(t.runs.c.created_at.desc(), t.runs.c.id.desc())
        if pipeline is not None:
            query = query.where(t.runs.c.pipeline == pipeline)
        if status is not None:
            query = query.where(t.runs.c.status == str(status))
        with self._read() as conn:
            return [_run(row) for row in conn.execute(query.limit(int(limit)))]

    def save_step(self, step: StepRecord) -> StepRecord:
        values = _row_values(step)
        statement = self._upsert(t.steps, ("run_id", "name"))

        def attempt() -> None:
            with self._write() as conn:
                conn.execute(statement, values)

        try:
            self._retry(attempt, unique_races=False)
        except StoreError as exc:
            if isinstance(exc.__cause__, sa.exc.IntegrityError):
                with self._read() as conn:
                    run = conn.execute(sa.select(t.runs.c.id).where(t.runs.c.id == step.run_id))
                    if run.first() is None:
                        raise NotFound(
                            f"Cannot save step {step.name!r}: no run with id {step.run_id!r}."
                        ) from None
            raise
        return _normalized(step)

    def _upsert(self, table: sa.Table, keys: tuple[str, ...]) -> Any:
        """Insert a row or, on a clash on ``keys``, replace it: one statement, built once."""
        cached = self._statements.get((table.name, keys))
        if cached is None:
            cached = self._statements[(table.name, keys)] = self._build_upsert(table, keys)
        return cached

    def _build_upsert(self, table: sa.Table, keys: tuple[str, ...]) -> Any:
        columns = [c.name for c in table.columns if not c.primary_key or c.name in keys]
        if self._dialect in ("mysql", "mariadb"):
            mysql_insert = mysql_dialect.insert(table)
            return mysql_insert.on_duplicate_key_update(
                {k: mysql_insert.inserted[k] for k in columns}
            )
        module = pg_dialect if self._dialect == "postgresql" else sqlite_dialect
        insert = module.insert(table)
        return insert.on_conflict_do_update(
            index_elements=list(keys), set_={k: insert.excluded[k] for k in columns}
        )

    def get_steps(self, run_id: str) -> list[StepRecord]:
        query = sa.select(t.steps).where(t.steps.c.run_id == run_id).order_by(t.steps.c.pk)
        with self._read() as conn:
            return [_step(row) for row in conn.execute(query)]

    def get_step(self, step_id: str) -> StepRecord:
        with self._read() as conn:
            row = conn.execute(_BY_ID[t.steps.name], {"id": step_id}).first()
        if row is None:
            raise NotFound(f"No step with id {step_id!r}.")
        return _step(row)

    def find_cached_step(self, cache_key: str) -> StepRecord | None:
        with self._read() as conn:
            row = conn.execute(_CACHED_STEP, {"cache_key": cache_key}).first()
        return None if row is None else _step(row)

    # artifacts and lineage --------------------------------------------------
    def add_artifact(self, artifact: ArtifactRecord) -> ArtifactRecord:
        return self._insert_new(t.artifacts, artifact, "An artifact")

    def get_artifact(self, artifact_id: str) -> ArtifactRecord:
        with self._read() as conn:
            return _record(
                ArtifactRecord, self._by_prefix(conn, t.artifacts, artifact_id, "artifact")
            )

    def list_artifacts(
        self, *, type: str | None = None, run_id: str | None = None, limit: int = 100
    ) -> list[ArtifactRecord]:
        a = t.artifacts
        query = sa.select(a).order_by(a.c.created_at.desc(), a.c.pk.desc())
        if type is not None:
            query = query.where(a.c.type == type)
        if run_id is not None:
            run_steps = sa.select(t.steps.c.id).where(t.steps.c.run_id == run_id)
            touched = sa.select(t.events.c.artifact_id).where(t.events.c.step_id.in_(run_steps))
            query = query.where(sa.or_(a.c.producer_step_id.in_(run_steps), a.c.id.in_(touched)))
        with self._read() as conn:
            return [_record(ArtifactRecord, row) for row in conn.execute(query.limit(int(limit)))]

    def add_events(self, events: list[EventRecord]) -> None:
        bad = [e.kind for e in events if e.kind not in EVENT_KINDS]
        if bad:
            raise UserInputError(
                f"Event kind must be one of {', '.join(EVENT_KINDS)}. Got {bad[0]!r}."
            )
        if not events:
            return
        rows = [dataclasses.asdict(e) for e in events]
        with self._write() as conn:
            conn.execute(self._insert_ignore(t.events), rows)

    def get_events(
        self, *, step_id: str | None = None, artifact_id: str | None = None
    ) -> list[EventRecord]:
        e = t.events
        query = sa.select(e.c.step_id, e.c.artifact_id, e.c.kind, e.c.name).order_by(e.c.pk)
        if step_id is not None:
            query = query.where(e.c.step_id == step_id)
        if artifact_id is not None:
            query = query.where(e.c.artifact_id == artifact_id)
        with self._read() as conn:
            return [EventRecord(*row) for row in conn.execute(query)]

    # model registry ---------------------------------------------------------
    def _lock_model(self, conn: sa.Connection, name: str, *, create: bool) -> bool:
        """Lock the model's row for this transaction; False when the model does not exist."""
        query = sa.select(t.models.c.name).where(t.models.c.name == name)
        if self._dialect != "sqlite":
            query = query.with_for_update()
        if conn.execute(query).first() is not None:
            return True
        if not create:
            return False
        # First version of a new model: racing creators may deadlock here; _retry reruns.
        conn.execute(self._insert_ignore(t.models).values(name=name, created_at=_to_db(_now())))
        return conn.execute(query).first() is not None

    def create_model_version(
        self,
        name: str,
        artifact_id: str,
        *,
        run_id: str | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
        properties: dict[str, Any] | None = None,
        created_by: str = "",
    ) -> ModelVersionRecord:
        _check_name(name, "model name")
        return self._retry(
            lambda: self._create_model_version(
                name, artifact_id, run_id, description, tags, properties, created_by
            )
        )

    def _create_model_version(
        self,
        name: str,
        artifact_id: str,
        run_id: str | None,
        description: str,
        tags: dict[str, str] | None,
        properties: dict[str, Any] | None,
        created_by: str,
    ) -> ModelVersionRecord:
        mv = t.model_versions
        with self._write() as conn:
            self._lock_model(conn, name, create=True)
            # Under the model's lock, so concurrent registrations of one artifact agree.
            existing = conn.execute(
                sa.select(mv).where(mv.c.name == name, mv.c.artifact_id == artifact_id)
                .order_by(mv.c.version).limit(1)
            ).first()
            if existing is not None:
                return _record(ModelVersionRecord, existing)
            latest = conn.execute(sa.select(sa.func.max(mv.c.version)).where(mv.c.name == name))
            record = ModelVersionRecord(
                name=name,
                version=(latest.scalar() or 0) + 1,
                artifact_id=artifact_id,
                run_id=run_id,
                description=description,
                tags=dict(tags or {}),
                properties=dict(properties or {}),
                created_by=created_by,
                created_at=_now(),
            )
            conn.execute(sa.insert(mv).values(_row_values(record)))
        return _normalized(record)

    def get_model_version(self, name: str, version: int) -> ModelVersionRecord:
        mv = t.model_versions
        row = None
        if version_in_range(int(version)):
            with self._read() as conn:
                row = conn.execute(
                    sa.select(mv).where(mv.c.name == name, mv.c.version == int(version))
                ).first()
        if row is None:
            raise NotFound(
                f"Model {name!r} has no version {version}. List versions with `ctloop models list`."
            )
        return _record(ModelVersionRecord, row)

    def list_model_versions(self, name: str | None = None) -> list[ModelVersionRecord]:
        mv = t.model_versions
        query = sa.select(mv).order_by(mv.c.name, mv.c.version)
        if name is not None:
            query = query.where(mv.c.name == name)
        with self._read() as conn:
            return [_record(ModelVersionRecord, row) for row in conn.execute(query)]

    def update_model_version(self, name: str, version: int, **changes: Any) -> ModelVersionRecord:
        allowed = {"description", "tags", "properties"}
        if set(changes) - allowed:
            raise TypeError(
                f"update_model_version() can change only {sorted(allowed)}, "
                f"not {sorted(set(changes) - allowed)}"
            )
        mv = t.model_versions
        if not version_in_range(int(version)):
            raise NotFound(f"Model {name!r} has no version {version}.")
        with self._write() as conn:
            result = conn.execute(
                sa.update(mv).where(mv.c.name == name, mv.c.version == int(version)).values(changes)
            )
            if result.rowcount == 0:
                raise NotFound(f"Model {name!r} has no version {version}.")
        return self.get_model_version(name, version)

    def move_alias(
        self,
        name: str,
        alias: str,
        version: int | None,
        *,
        actor: str,
        reason: str = "",
        expected_version: int | EllipsisType | None = ...,
    ) -> AliasEventRecord:
        _check_name(alias, "alias")
        return self._retry(
            lambda: self._move_alias(name, alias, version, actor, reason, expected_version)
        )

    def _move_alias(
        self,
        name: str,
        alias: str,
        version: int | None,
        actor: str,
        reason: str,
        expected_version: Any,
    ) -> AliasEventRecord:
        al, mv = t.aliases, t.model_versions
        with self._write() as conn:
            if not self._lock_model(conn, name, create=False):
                raise NotFound(f"No model named {name!r}. Register a version first.")
            if version is not None:
                exists = version_in_range(int(version)) and conn.execute(
                    sa.select(mv.c.version).where(mv.c.name == name, mv.c.version == int(version))
                ).first()
                if not exists:
                    raise NotFound(f"Model {name!r} has no version {version}.")
            current = conn.execute(
                sa.select(al.c.version).where(al.c.name == name, al.c.alias == alias)
            ).scalar()
            if expected_version is not ... and current != expected_version:
                raise StoreError(
                    f"Alias {alias!r} of model {name!r} points to version {current}, "
                    f"not {expected_version} as expected: someone moved it meanwhile. "
                    "Reload and decide again."
                )
            where = (al.c.name == name) & (al.c.alias == alias)
            if version is None:
                conn.execute(sa.delete(al).where(where))
            elif current is None:
                conn.execute(sa.insert(al).values(name=name, alias=alias, version=int(version)))
            else:
                conn.execute(sa.update(al).where(where).values(version=int(version)))
            created = _now()
            result = conn.execute(
                sa.insert(t.alias_events).values(
                    name=name,
                    alias=alias,
                    version=version,
                    previous_version=current,
                    actor=actor,
                    reason=reason,
                    created_at=_to_db(created),
                )
            )
            inserted = result.inserted_primary_key
            assert inserted is not None  # an INSERT always reports its key
            event_id = int(inserted[0])
        return AliasEventRecord(
            id=event_id,
            name=name,
            alias=alias,
            version=version,
            previous_version=current,
            actor=actor,
            reason=reason,
            created_at=_from_db(_to_db(created)),
        )

    def get_aliases(self, name: str) -> dict[str, int]:
        al = t.aliases
        with self._read() as conn:
            rows = conn.execute(sa.select(al.c.alias, al.c.version).where(al.c.name == name))
            return {alias: int(version) for alias, version in rows}

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEventRecord]:
        ev = t.alias_events
        query = sa.select(ev).where(ev.c.name == name).order_by(ev.c.id)
        if alias is not None:
            query = query.where(ev.c.alias == alias)
        with self._read() as conn:
            return [_record(AliasEventRecord, row) for row in conn.execute(query)]

    # catalog of definitions -------------------------------------------------
    def put_definition(
        self,
        kind: str,
        name: str,
        spec: dict[str, Any],
        *,
        fingerprint: str,
        description: str = "",
        owner: str = "",
        tags: dict[str, str] | None = None,
    ) -> tuple[DefinitionRecord, bool]:
        _check_name(kind, "definition kind")
        _check_name(name, "definition name")
        d = t.definitions

        def attempt() -> tuple[DefinitionRecord, bool]:
            with self._write() as conn:
                latest = conn.execute(
                    sa.select(d)
                    .where(d.c.kind == kind, d.c.name == name)
                    .order_by(d.c.version.desc())
                    .limit(1)
                ).first()
                if latest is not None and latest.fingerprint == fingerprint:
                    return _record(DefinitionRecord, latest), False
                record = DefinitionRecord(
                    kind=kind,
                    name=name,
                    version=(latest.version if latest is not None else 0) + 1,
                    fingerprint=fingerprint,
                    spec=spec,
                    description=description,
                    owner=owner,
                    tags=dict(tags or {}),
                    created_at=_now(),
                )
                conn.execute(sa.insert(d).values(_row_values(record)))
                return _normalized(record), True

        return self._retry(attempt)

    def get_definition(self, kind: str, name: str, version: int | None = None) -> DefinitionRecord:
        d = t.definitions
        query = sa.select(d).where(d.c.kind == kind, d.c.name == name)
        if version is None:
            query = query.order_by(d.c.version.desc()).limit(1)
        else:
            query = query.where(d.c.version == int(version))
        with self._read() as conn:
            row = conn.execute(query).first()
        if row is None:
            which = "any version" if version is None else f"version {version}"
            raise NotFound(f"No {kind} named {name!r} ({which}) in the catalog.")
        return _record(DefinitionRecord, row)

    def list_definitions(self, kind: str | None = None) -> list[DefinitionRecord]:
        d = t.definitions
        latest = sa.select(d.c.kind, d.c.name, sa.func.max(d.c.version).label("version")).group_by(
            d.c.kind, d.c.name
        )
        if kind is not None:
            latest = latest.where(d.c.kind == kind)
        sub = latest.subquery()
        query = (
            sa.select(d)
            .join(
                sub,
                (d.c.kind == sub.c.kind)
                & (d.c.name == sub.c.name)
                & (d.c.version == sub.c.version),
            )
            .order_by(d.c.kind, d.c.name)
        )
        with self._read() as conn:
            return [_record(DefinitionRecord, row) for row in conn.execute(query)]


_BY_ID = {
    table.name: sa.select(table).where(table.c.id == sa.bindparam("id"))
    for table in (t.runs, t.steps, t.artifacts)
}
_CACHED_STEP = (
    sa.select(t.steps)
    .where(
        t.steps.c.cache_key == sa.bindparam("cache_key"),
        t.steps.c.status == StepStatus.SUCCEEDED.value,
    )
    .order_by(t.steps.c.ended_at.desc(), t.steps.c.pk.desc())
    .limit(1)
)


def _lost_race(exc: BaseException | None, unique_races: bool = True) -> bool:
    """A unique-key collision or a deadlock/serialization failure: safe to rerun."""
    if isinstance(exc, sa.exc.IntegrityError):
        return unique_races
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlstate", None) in ("40001", "40P01"):  # psycopg
        return True
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    return bool(args) and args[0] in (1205, 1213)  # MySQL lock wait timeout, deadlock


def _row_values_partial(changes: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in changes.items():
        if key in _DATETIMES:
            value = _to_db(value)
        elif isinstance(value, StrEnum):
            value = value.value
        elif key in _TEXTS and isinstance(value, str):
            value = mask_secrets(value)
        out[key] = value
    return out


def _normalized(record: R) -> R:
    """The record as a read would return it: datetimes aware UTC with microseconds."""
    changes = {
        name: _from_db(_to_db(getattr(record, name)))
        for name in _DATETIMES
        if hasattr(record, name)
    }
    return dataclasses.replace(record, **changes)  # type: ignore[type-var]


def _check_name(value: str, what: str) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > 255:
        raise UserInputError(
            f"The {what} must be a non-empty string of at most 255 characters. Got {value!r}."
        )


def _dispose_in_child(ref: weakref.ref[SqlMetadataStore]) -> None:
    store = ref()
    if store is not None:
        store._engine.dispose(close=False)
