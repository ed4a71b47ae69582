"""The dashboard's read queries: filtered, paginated, one query per page section.

The ``MetadataStore`` interface answers the engine's and the CLI's questions
(a run, its steps, the newest 50 runs). A dashboard asks different ones: page
7 of the failed runs of one pipeline started by a drift trigger last week,
with each run's share of cached steps. Asking those through ``list_runs`` and
``get_steps`` would load every run and then one step list per row (N+1).
These queries read the same tables (``ctloop.metadata.schema``) read-only,
with one statement per section of a page, so a page costs a fixed number of
indexed queries however many runs the store holds.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

from ctloop.core.errors import BackendUnavailable, CtloopError, StoreError
from ctloop.core.jsontypes import JSONObject
from ctloop.metadata import schema as t
from ctloop.metadata.base import RunRecord, RunStatus, StepStatus
from ctloop.metadata.engine import create_engine, describe_url, translate_connect_error
from ctloop.ui.outcomes import Headline, Outcome, StepReturn, headline_of, outcome_of

__all__ = ["RunFilter", "RunPage", "RunRow", "UiQueries"]

PAGE_SIZES = (25, 50, 100, 200)


@dataclass(frozen=True)
class RunFilter:
    """What the runs list shows; every field optional."""

    status: str | None = None
    pipeline: str | None = None
    trigger: str | None = None
    since: datetime | None = None  # created at or after
    until: datetime | None = None  # created before
    page: int = 1
    per_page: int = 50


@dataclass(frozen=True)
class RunRow:
    """One line of the runs list: the run, its step counts, what it came to (the gate's
    verdict, a quarantine) and its headline metric."""

    run: RunRecord
    steps: int
    cached: int
    failed: int
    outcome: Outcome | None = None
    headline: Headline | None = None

    @property
    def badge(self) -> str:
        """The status badge: the gate's verdict on a finished run, else the run's status
        (a refused candidate is no green "succeeded")."""
        verdict = self.outcome.verdict if self.outcome is not None else None
        finished = RunStatus.FAILED if verdict == "quarantined" else RunStatus.SUCCEEDED
        return verdict if verdict and self.run.status is finished else self.run.status.value

    @property
    def cached_share(self) -> float | None:
        return self.cached / self.steps if self.steps else None

    @property
    def duration_s(self) -> float | None:
        if self.run.started_at and self.run.ended_at:
            return (self.run.ended_at - self.run.started_at).total_seconds()
        return None


@dataclass(frozen=True)
class RunPage:
    rows: list[RunRow]
    total: int
    filter: RunFilter
    pipelines: list[str] = field(default_factory=list)
    triggers: list[str] = field(default_factory=list)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.filter.per_page))


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _run(row: sa.Row[tuple[object, ...]]) -> RunRecord:
    m = row._mapping
    return RunRecord(
        id=m["id"],
        pipeline=m["pipeline"],
        pipeline_version=m["pipeline_version"],
        status=RunStatus(m["status"]),
        parameters=m["parameters"] or {},
        trigger=m["trigger"],
        trigger_info=m["trigger_info"] or {},
        executor=m["executor"] or {},
        environment=m["environment"] or {},
        tags=m["tags"] or {},
        source=m["source"],
        created_at=_aware(m["created_at"]),
        started_at=_aware(m["started_at"]),
        ended_at=_aware(m["ended_at"]),
        error=m["error"],
    )


class UiQueries:
    """Read-only SQL over the metadata tables of the store at ``url``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine = create_engine(url)

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        try:
            with self._engine.connect() as conn:
                yield conn
        except CtloopError:
            raise
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            raise BackendUnavailable(
                f"The metadata database {describe_url(self.url)} cannot be read: "
                f"{' '.join(str(getattr(exc, 'orig', exc)).split())}. "
                "Check that the server is up and the URL is right, then reload."
            ) from exc
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(
                f"The metadata database {describe_url(self.url)} failed: "
                f"{' '.join(str(getattr(exc, 'orig', exc)).split())}."
            ) from exc

    def ping(self) -> None:
        """Raise ``BackendUnavailable`` unless the database answers."""
        try:
            with self._engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as exc:
            raise translate_connect_error(exc, self.url) from exc

    # runs ---------------------------------------------------------------------
    def _where(self, f: RunFilter) -> list[sa.ColumnElement[bool]]:
        r = t.runs
        clauses: list[sa.ColumnElement[bool]] = []
        if f.status:
            clauses.append(r.c.status == f.status)
        if f.pipeline:
            clauses.append(r.c.pipeline == f.pipeline)
        if f.trigger:
            clauses.append(r.c.trigger == f.trigger)
        if f.since:
            clauses.append(r.c.created_at >= _naive(f.since))
        if f.until:
            clauses.append(r.c.created_at < _naive(f.until))
        return clauses

    def run_page(self, f: RunFilter) -> RunPage:
        """One page of runs, newest first, with step counts, outcomes and headline
        metrics: six queries in all."""
        r = t.runs
        where = self._where(f)
        offset = (max(1, f.page) - 1) * f.per_page
        query = (
            sa.select(r)
            .where(*where)
            .order_by(r.c.created_at.desc(), r.c.id.desc())
            .limit(f.per_page)
            .offset(offset)
        )
        with self._read() as conn:
            runs = [_run(row) for row in conn.execute(query)]
            total = int(conn.execute(sa.select(sa.func.count()).select_from(r).where(*where))
                        .scalar_one())
            rows = self._rows(conn, runs)
            pipelines = [p for (p,) in conn.execute(
                sa.select(r.c.pipeline).distinct().order_by(r.c.pipeline))]
            triggers = [x for (x,) in conn.execute(
                sa.select(r.c.trigger).distinct().order_by(r.c.trigger))]
        return RunPage(rows, total, f, pipelines, triggers)

    def run_rows(self, runs: Sequence[RunRecord]) -> list[RunRow]:
        """``runs`` as lines of a list: step counts, outcome, headline (three queries)."""
        with self._read() as conn:
            return self._rows(conn, runs)

    def _rows(self, conn: sa.Connection, runs: Sequence[RunRecord]) -> list[RunRow]:
        ids = [run.id for run in runs]
        counts = self._step_counts(conn, ids)
        returns = self._step_returns(conn, ids)
        metrics = self._metrics_of(conn, ids)
        return [RunRow(run, *counts.get(run.id, (0, 0, 0)),
                       outcome=outcome_of(returns.get(run.id, [])),
                       headline=headline_of(run.parameters, metrics.get(run.id, [])))
                for run in runs]

    def _step_returns(self, conn: sa.Connection,
                      run_ids: Sequence[str]) -> dict[str, list[StepReturn]]:
        """The steps of each run that can decide its outcome: those whose return names the
        gate's verdict (``blessed``), and the failed ones. The filter runs in the database
        on the outputs' JSON text, so the rest of a page's steps are never decoded."""
        if not run_ids:
            return {}
        s = t.steps
        out: dict[str, list[StepReturn]] = {}
        verdict = sa.cast(s.c.outputs, sa.Text).contains('"blessed"', autoescape=True)
        query = (sa.select(s.c.run_id, s.c.component, s.c.status, s.c.outputs)
                 .where(s.c.run_id.in_(list(run_ids)),
                        sa.or_(s.c.status == StepStatus.FAILED.value, verdict))
                 .order_by(s.c.pk))
        for run_id, component, status, outputs in conn.execute(query):
            returned = (outputs or {}).get("return")
            out.setdefault(run_id, []).append(StepReturn(
                str(component), str(status), returned if isinstance(returned, dict) else {}))
        return out

    def _metrics_of(self, conn: sa.Connection,
                    run_ids: Sequence[str]) -> dict[str, list[JSONObject]]:
        """The properties of the ``Metrics`` artifacts each run's steps wrote: one join."""
        if not run_ids:
            return {}
        a, s = t.artifacts, t.steps
        query = (sa.select(s.c.run_id, a.c.properties)
                 .join(s, s.c.id == a.c.producer_step_id)
                 .where(s.c.run_id.in_(list(run_ids)), a.c.type == "Metrics")
                 .order_by(a.c.pk))
        out: dict[str, list[JSONObject]] = {}
        for run_id, props in conn.execute(query):
            out.setdefault(run_id, []).append(props or {})
        return out

    def _step_counts(
        self, conn: sa.Connection, run_ids: Sequence[str]
    ) -> dict[str, tuple[int, int, int]]:
        if not run_ids:
            return {}
        s = t.steps
        cached = sa.func.sum(sa.case((s.c.status == StepStatus.CACHED.value, 1), else_=0))
        failed = sa.func.sum(sa.case((s.c.status == StepStatus.FAILED.value, 1), else_=0))
        query = (
            sa.select(s.c.run_id, sa.func.count(), cached, failed)
            .where(s.c.run_id.in_(list(run_ids)))
            .group_by(s.c.run_id)
        )
        return {
            run_id: (int(n), int(c or 0), int(x or 0))
            for run_id, n, c, x in conn.execute(query)
        }

    def runs_by_ids(self, run_ids: Sequence[str]) -> list[RunRecord]:
        """Runs in the order asked (for the compare view), missing ids left out."""
        r = t.runs
        with self._read() as conn:
            found = {row.id: _run(row) for row in conn.execute(
                sa.select(r).where(r.c.id.in_(list(run_ids))))}
        return [found[i] for i in run_ids if i in found]

    def step_outputs(self, run_ids: Sequence[str]) -> dict[str, dict[str, JSONObject]]:
        """``{run_id: {step name: outputs}}`` for many runs in one query (compare view)."""
        s = t.steps
        out: dict[str, dict[str, JSONObject]] = {}
        with self._read() as conn:
            for run_id, name, outputs in conn.execute(
                sa.select(s.c.run_id, s.c.name, s.c.outputs).where(s.c.run_id.in_(list(run_ids)))
            ):
                out.setdefault(run_id, {})[name] = outputs or {}
        return out

    def run_artifacts(self, step_ids: Sequence[str]) -> list[tuple[str, str, str, str, str]]:
        """``(step_id, kind, name, artifact_id, type)`` of every event of these steps: one join."""
        e, a = t.events, t.artifacts
        if not step_ids:
            return []
        query = (
            sa.select(e.c.step_id, e.c.kind, e.c.name, e.c.artifact_id, a.c.type)
            .join(a, a.c.id == e.c.artifact_id, isouter=True)
            .where(e.c.step_id.in_(list(step_ids)))
            .order_by(e.c.pk)
        )
        with self._read() as conn:
            return [(r[0], r[1], r[2], r[3], r[4] or "?") for r in conn.execute(query)]

    def triggered_runs(self, limit: int = 200) -> list[RunRecord]:
        """Runs a trigger started (not manual), newest first: the monitoring page's firings."""
        r = t.runs
        query = (
            sa.select(r)
            .where(r.c.trigger != "manual")
            .order_by(r.c.created_at.desc(), r.c.id.desc())
            .limit(limit)
        )
        with self._read() as conn:
            return [_run(row) for row in conn.execute(query)]

    # artifacts ------------------------------------------------------------------
    def artifact_page(
        self, *, type: str | None, page: int, per_page: int
    ) -> tuple[list[dict[str, object]], int, list[str]]:
        a = t.artifacts
        where = [a.c.type == type] if type else []
        query = (
            sa.select(a.c.id, a.c.type, a.c.name, a.c.size, a.c.sha256, a.c.created_at,
                      a.c.producer_step_id)
            .where(*where)
            .order_by(a.c.created_at.desc(), a.c.pk.desc())
            .limit(per_page)
            .offset((max(1, page) - 1) * per_page)
        )
        with self._read() as conn:
            rows = [dict(row._mapping) for row in conn.execute(query)]
            total = int(conn.execute(sa.select(sa.func.count()).select_from(a).where(*where))
                        .scalar_one())
            types = [x for (x,) in conn.execute(sa.select(a.c.type).distinct().order_by(a.c.type))]
        for row in rows:
            row["created_at"] = _aware(row["created_at"])
        return rows, total, types

    def run_metrics(self, run_ids: Sequence[str]) -> dict[str, dict[str, float]]:
        """Scalar properties of the ``Metrics`` artifacts each run's steps wrote: one join.

        Keys read ``step.output.key`` (``evaluate.evaluation.roc_auc``), so two runs of a
        pipeline line up metric by metric.
        """
        a, s = t.artifacts, t.steps
        query = (
            sa.select(s.c.run_id, s.c.name, a.c.name, a.c.properties)
            .join(s, s.c.id == a.c.producer_step_id)
            .where(s.c.run_id.in_(list(run_ids)), a.c.type == "Metrics")
        )
        out: dict[str, dict[str, float]] = {run_id: {} for run_id in run_ids}
        with self._read() as conn:
            for run_id, step, output, props in conn.execute(query):
                for key, value in (props or {}).items():
                    if isinstance(value, int | float | bool):
                        out[run_id][f"{step}.{output}.{key}"] = value
        return out
