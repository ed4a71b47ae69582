"""The catalog's definitions on SQL: the :class:`~ctloop.metadata.base.DefinitionStore` part."""

from __future__ import annotations

import sqlalchemy as sa

from ctloop.core.errors import NotFound
from ctloop.core.jsontypes import JSONObject
from ctloop.metadata import schema as t
from ctloop.metadata.base import DefinitionRecord
from ctloop.metadata.rules import check_name, normalized, now
from ctloop.metadata.sql_core import SqlCore, record_of, row_values

__all__ = ["SqlDefinitionStore"]


class SqlDefinitionStore(SqlCore):
    """Versioned definitions: a new version only when the fingerprint changes."""

    def put_definition(
        self,
        kind: str,
        name: str,
        spec: JSONObject,
        *,
        fingerprint: str,
        description: str = "",
        owner: str = "",
        tags: dict[str, str] | None = None,
    ) -> tuple[DefinitionRecord, bool]:
        check_name(kind, "definition kind")
        check_name(name, "definition name")
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
                    return record_of(DefinitionRecord, latest), False
                record = DefinitionRecord(
                    kind=kind,
                    name=name,
                    version=(latest.version if latest is not None else 0) + 1,
                    fingerprint=fingerprint,
                    spec=spec,
                    description=description,
                    owner=owner,
                    tags=dict(tags or {}),
                    created_at=now(),
                )
                conn.execute(sa.insert(d).values(row_values(record)))
                return normalized(record), True

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
        return record_of(DefinitionRecord, row)

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
            return [record_of(DefinitionRecord, row) for row in conn.execute(query)]
