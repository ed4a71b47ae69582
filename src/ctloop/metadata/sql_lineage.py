"""Artifacts and events on SQL: the :class:`~ctloop.metadata.base.LineageStore` part."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from ctloop.metadata import schema as t
from ctloop.metadata.base import ArtifactRecord, EventRecord
from ctloop.metadata.rules import check_event_kinds
from ctloop.metadata.sql_core import SqlCore, record_of

__all__ = ["SqlLineageStore"]


class SqlLineageStore(SqlCore):
    """Artifacts and the input/output edges between them and steps."""

    def add_artifact(self, artifact: ArtifactRecord) -> ArtifactRecord:
        return self._insert_new(t.artifacts, artifact, "An artifact")

    def get_artifact(self, artifact_id: str) -> ArtifactRecord:
        with self._read() as conn:
            return record_of(
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
            return [record_of(ArtifactRecord, row) for row in conn.execute(query.limit(int(limit)))]

    def add_events(self, events: list[EventRecord]) -> None:
        check_event_kinds(events)
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
