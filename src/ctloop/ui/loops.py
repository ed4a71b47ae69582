"""The span timeline of a continuous-training loop, read from the loop's memory.

A loop (:mod:`ctloop.loop`) records what it did with every span in its
controller state (``ControllerState``, scope ``loop:NAME``, in the metadata
database): the span's report (``SpanReport.to_json``, the shape of
``ctloop loop replay --json``: valid or quarantined, anomalies, the version
that served it, the gate's decision, the version promoted) and the runs it
started. The dashboard shows two timelines per loop:

- **live**: the memory in the project's own metadata database (``ctloop loop
  run``, and ``ctloop demo``, which replays into the project's stores);
- **latest replay**: the memory of the sandbox ``ctloop loop replay`` leaves
  in ``.ctloop/replays/NAME/`` (its own metadata database; its runs and
  versions live there, so they are not linked).

Loops are the ones declared in ctloop.toml plus any whose memory exists (the
demo's loop is declared in Python, not in ctloop.toml).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from ctloop.core.errors import CtloopError
from ctloop.core.settings import Settings
from ctloop.loop.memory import GateJson, LoopMemory, SpanRecord, SpanReport, scope_of
from ctloop.metadata import schema as t
from ctloop.triggers.store import ControllerState

__all__ = ["LoopTimeline", "SpanRow", "loop_names", "read_timeline", "timelines"]

SCOPE = "loop:"


@dataclass(frozen=True)
class SpanRow:
    """One span on the timeline."""

    span: str
    status: str  # "valid" | "quarantined" | what the loop recorded
    rows: int | None
    anomalies: list[str]
    served_version: int | None
    promoted: int | None
    bootstrap: bool
    blessed: bool | None  # None: nothing was trained on this span
    gate: GateJson
    fired: list[tuple[str, str]]  # (trigger, reason) of the triggers that fired
    live: Mapping[str, object] | None
    window: list[str]
    runs: dict[str, str]  # phase -> run id
    baseline: Mapping[str, object] | None = None  # the never-retrained model on the span's rows

    @property
    def trained_version(self) -> int | None:
        """The version registered from this span's training run."""
        version = self.gate.get("version")
        return version if isinstance(version, int) and not isinstance(version, bool) else None

    @property
    def candidate(self) -> float | None:
        """The candidate's metric on the holdout, as the gate judged it."""
        return _float(self.gate.get("candidate"))

    def live_value(self, metric: str) -> float | None:
        return _float((self.live or {}).get(metric))

    def baseline_value(self, metric: str) -> float | None:
        return _float((self.baseline or {}).get(metric))

    @property
    def gate_summary(self) -> str:
        if self.blessed is None:
            return ""
        if self.gate.get("error"):
            return f"training failed: {self.gate['error']}"
        parts = [f"v{self.gate['version']}" if self.gate.get("version") else "candidate"]
        candidate, champion = self.gate.get("candidate"), self.gate.get("champion")
        if candidate is not None:
            parts.append(f"{float(candidate):.4f}")
        if champion is not None:
            parts.append(f"vs {float(champion):.4f}")
        verdict = "blessed" if self.blessed else "not blessed"
        failed = self.gate.get("failed") or []
        why = f" ({'; '.join(str(f) for f in failed)})" if failed else ""
        return f"{verdict}: {' '.join(parts)}{why}"


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


@dataclass(frozen=True)
class LoopTimeline:
    name: str
    source: str  # "live" | "replay"
    spans: list[SpanRow] = field(default_factory=list)
    model: str | None = None
    linked: bool = True  # runs and versions are in the dashboard's own stores
    declared_metric: str | None = None

    @property
    def metric(self) -> str | None:
        """The loop's metric: declared, else the one its live scores carry."""
        if self.declared_metric:
            return self.declared_metric
        keys = {k for s in self.spans for k in (s.live or {}) if k not in ("version", "n")}
        return min(keys) if keys else None

    @property
    def valid(self) -> int:
        return sum(s.status == "valid" for s in self.spans)

    @property
    def quarantined(self) -> int:
        return sum(s.status == "quarantined" for s in self.spans)

    @property
    def promotions(self) -> list[tuple[str, int]]:
        return [(s.span, s.promoted) for s in self.spans if s.promoted is not None]


def span_row(name: str, record: SpanRecord) -> SpanRow:
    """A span from its memory record (the report read by ``SpanReport.from_json``)."""
    report = record.report or SpanReport(span=name, rows=0)
    gate: GateJson = report.gate.copy() if report.gate else {}
    return SpanRow(
        span=report.span or name,
        status=report.status if record.report is not None else (record.status or "?"),
        rows=report.rows if record.report is not None else None,
        anomalies=[str(a) for a in report.anomalies],
        served_version=report.served_version,
        promoted=report.promoted,
        bootstrap=report.bootstrap,
        blessed=None if not gate else bool(gate.get("blessed")),
        gate=gate,
        fired=[(str(d.get("name")), str(d.get("reason", ""))) for d in report.fired],
        live=report.live if isinstance(report.live, dict) else None,
        window=[str(w) for w in report.window or []],
        runs=dict(record.runs),
        baseline=report.baseline if isinstance(report.baseline, dict) else None,
    )


def read_timeline(url: str, name: str, source: str, *, linked: bool = True,
                  model: str | None = None) -> LoopTimeline:
    """The loop ``name``'s spans from the controller state at metadata ``url``."""
    state = ControllerState(url, migrate=False)
    try:
        memory = LoopMemory.from_json(state.read(scope_of(name)))
    finally:
        state.close()
    spans = [span_row(n, r) for n, r in memory.spans.items()]
    metric = memory.declaration.get("metric")
    return LoopTimeline(name, source, spans,
                        model=model or memory.declaration.get("model"), linked=linked,
                        declared_metric=metric if isinstance(metric, str) else None)


def loop_names(url: str) -> list[str]:
    """Loops with a memory in the metadata database at ``url`` (one indexed query)."""
    from ctloop.metadata.engine import create_engine

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(t.controller_state.c.scope).distinct()
                                .where(t.controller_state.c.scope.like(f"{SCOPE}%"))).all()
    except sa.exc.OperationalError:  # a sandbox created before the table existed
        return []
    finally:
        engine.dispose()
    return sorted(r.scope[len(SCOPE):] for r in rows)


def _declared(settings: Settings) -> tuple[dict[str, str | None], str]:
    """Declared loops and their models; a broken declaration is reported, not fatal."""
    tables = settings.tables.loops
    if not tables:
        return {}, ""
    try:
        from ctloop.loop import load_loops

        return {n: spec.model for n, spec in load_loops(settings).items()}, ""
    except CtloopError as exc:
        names = list(tables) if isinstance(tables, Mapping) else []
        return dict.fromkeys(names), exc.message


def timelines(settings: Settings) -> tuple[list[LoopTimeline], str]:
    """Every loop's live and latest-replay timelines, and a note when a declaration
    could not be read."""
    declared, note = _declared(settings)
    found: list[LoopTimeline] = []
    live_names = set(loop_names(settings.metadata_url))
    replays = Path(settings.home) / "replays"
    replayed = {p.parent.name for p in replays.glob("*/metadata.db")} if replays.is_dir() \
        else set()
    for name in sorted(set(declared) | live_names | replayed):
        if name in live_names:
            found.append(read_timeline(settings.metadata_url, name, "live",
                                       model=declared.get(name)))
        sandbox = replays / name / "metadata.db"
        if sandbox.exists():
            url = f"sqlite:///{sandbox}"
            if name in loop_names(url):
                found.append(read_timeline(url, name, "replay", linked=False,
                                           model=declared.get(name)))
        if name not in live_names and not sandbox.exists():
            found.append(LoopTimeline(name, "live", [], model=declared.get(name)))
    return found, note
