"""Model versions and aliases on SQL: the :class:`~ctloop.metadata.base.RegistryStore` part.

Version numbers and alias moves of one model are serialised on the model's row
(``SELECT ... FOR UPDATE`` on the servers, ``BEGIN IMMEDIATE`` on SQLite); a
transaction that loses a race (unique key, deadlock) is run again.
"""

from __future__ import annotations

import dataclasses
from types import EllipsisType

import sqlalchemy as sa

from ctloop.core.errors import NotFound, StoreError
from ctloop.core.jsontypes import JSONObject
from ctloop.metadata import schema as t
from ctloop.metadata.base import (
    AliasEventRecord,
    ModelVersionRecord,
    ModelVersionUpdate,
    version_in_range,
)
from ctloop.metadata.rules import check_name, from_db, normalized, now, to_db
from ctloop.metadata.sql_core import SqlCore, record_of, row_values

__all__ = ["SqlRegistryStore"]


class SqlRegistryStore(SqlCore):
    """Registered model versions, aliases (compare-and-set) and the history of alias moves."""

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
        conn.execute(self._insert_ignore(t.models).values(name=name, created_at=to_db(now())))
        return conn.execute(query).first() is not None

    def create_model_version(
        self,
        name: str,
        artifact_id: str,
        *,
        run_id: str | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
        properties: JSONObject | None = None,
        created_by: str = "",
    ) -> ModelVersionRecord:
        check_name(name, "model name")
        draft = ModelVersionRecord(
            name=name,
            version=0,  # numbered under the model's lock
            artifact_id=artifact_id,
            run_id=run_id,
            description=description,
            tags=dict(tags or {}),
            properties=dict(properties or {}),
            created_by=created_by,
        )
        return self._retry(lambda: self._create_model_version(draft))

    def _create_model_version(self, draft: ModelVersionRecord) -> ModelVersionRecord:
        mv = t.model_versions
        with self._write() as conn:
            self._lock_model(conn, draft.name, create=True)
            # Under the model's lock, so concurrent registrations of one artifact agree.
            existing = conn.execute(
                sa.select(mv)
                .where(mv.c.name == draft.name, mv.c.artifact_id == draft.artifact_id)
                .order_by(mv.c.version)
                .limit(1)
            ).first()
            if existing is not None:
                return record_of(ModelVersionRecord, existing)
            latest = conn.execute(
                sa.select(sa.func.max(mv.c.version)).where(mv.c.name == draft.name)
            ).scalar()
            record = dataclasses.replace(draft, version=(latest or 0) + 1, created_at=now())
            conn.execute(sa.insert(mv).values(row_values(record)))
        return normalized(record)

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
        return record_of(ModelVersionRecord, row)

    def list_model_versions(self, name: str | None = None) -> list[ModelVersionRecord]:
        mv = t.model_versions
        query = sa.select(mv).order_by(mv.c.name, mv.c.version)
        if name is not None:
            query = query.where(mv.c.name == name)
        with self._read() as conn:
            return [record_of(ModelVersionRecord, row) for row in conn.execute(query)]

    def update_model_version(
        self, name: str, version: int, update: ModelVersionUpdate
    ) -> ModelVersionRecord:
        mv = t.model_versions
        if not version_in_range(int(version)):
            raise NotFound(f"Model {name!r} has no version {version}.")
        changes = update.given()
        if changes:
            where = (mv.c.name == name) & (mv.c.version == int(version))
            with self._write() as conn:
                if conn.execute(sa.update(mv).where(where).values(changes)).rowcount == 0:
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
        check_name(alias, "alias")
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
        expected_version: int | EllipsisType | None,
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
            created = now()
            result = conn.execute(
                sa.insert(t.alias_events).values(
                    name=name,
                    alias=alias,
                    version=version,
                    previous_version=current,
                    actor=actor,
                    reason=reason,
                    created_at=to_db(created),
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
            created_at=from_db(to_db(created)),
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
            return [record_of(AliasEventRecord, row) for row in conn.execute(query)]
