"""Runs and steps on SQL: the :class:`~ctloop.metadata.base.RunStore` part of the store."""

from __future__ import annotations

import sqlalchemy as sa

from ctloop.core.errors import NotFound, StoreError
from ctloop.metadata import schema as t
from ctloop.metadata.base import RunRecord, RunStatus, RunUpdate, StepRecord, StepStatus
from ctloop.metadata.rules import normalized
from ctloop.metadata.sql_core import BY_ID, Row, SqlCore, column_values, record_of, row_values

__all__ = ["SqlRunStore"]


def _run(row: Row) -> RunRecord:
    return record_of(RunRecord, row, status=RunStatus(row.status))


def _step(row: Row) -> StepRecord:
    return record_of(StepRecord, row, status=StepStatus(row.status))


class SqlRunStore(SqlCore):
    """Runs and their steps: what the engine records and ``resume`` reads back."""

    def create_run(self, run: RunRecord) -> RunRecord:
        return self._insert_new(t.runs, run, "A run")

    def update_run(self, run_id: str, update: RunUpdate) -> RunRecord:
        values = column_values(update.given())
        with self._write() as conn:
            if values:
                query = sa.update(t.runs).where(t.runs.c.id == run_id).values(values)
                if conn.execute(query).rowcount == 0:
                    raise NotFound(f"No run with id {run_id!r}.")
            row = conn.execute(sa.select(t.runs).where(t.runs.c.id == run_id)).first()
            if row is None:
                raise NotFound(f"No run with id {run_id!r}.")
            return _run(row)

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
        values = row_values(step)
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
        return normalized(step)

    def get_steps(self, run_id: str) -> list[StepRecord]:
        query = sa.select(t.steps).where(t.steps.c.run_id == run_id).order_by(t.steps.c.pk)
        with self._read() as conn:
            return [_step(row) for row in conn.execute(query)]

    def get_step(self, step_id: str) -> StepRecord:
        with self._read() as conn:
            row = conn.execute(BY_ID[t.steps.name], {"id": step_id}).first()
        if row is None:
            raise NotFound(f"No step with id {step_id!r}.")
        return _step(row)

    def find_cached_step(self, cache_key: str) -> StepRecord | None:
        with self._read() as conn:
            row = conn.execute(_CACHED_STEP, {"cache_key": cache_key}).first()
        return None if row is None else _step(row)


_CACHED_STEP = (
    sa.select(t.steps)
    .where(
        t.steps.c.cache_key == sa.bindparam("cache_key"),
        t.steps.c.status == StepStatus.SUCCEEDED.value,
    )
    .order_by(t.steps.c.ended_at.desc(), t.steps.c.pk.desc())
    .limit(1)
)
