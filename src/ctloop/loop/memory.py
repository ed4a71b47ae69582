"""A loop's memory: typed records, read and written whole, once per span.

The memory lives in the metadata database under scope ``loop:NAME``
(:class:`ctloop.triggers.store.ControllerState`), one JSON document per key::

    spans      {span: {report, runs, status, landed, training_run, unreadable}}
    triggers   {signal: {anchor, last_fired, last: {span, fired, reason}},
                "_loop": {last_fired}}
    champion   {version, best_live, falling_since}
    window     {since}
    monitors   {last_end}
    bootstrap  {since, reason}
    loop       {model, metric, task, retrain_on}

Everything else reads it through :class:`LoopMemory` (``from_json``/``to_json``)
and :class:`SpanReport` (``from_json``), never by key paths: the layout is
written here once, as Dagster keeps a sensor's cursor in typed records
(``InstigatorState``/``TickData``) rather than in a free-form document.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypedDict

from ctloop.triggers.store import ControllerState

__all__ = [
    "CanaryJson",
    "ChampionRecord",
    "DecisionJson",
    "DriftJson",
    "FileFingerprint",
    "GateJson",
    "LastDecision",
    "LoopMemory",
    "MemoryStore",
    "SpanRecord",
    "SpanReport",
    "SpanStatus",
    "TriggerRecord",
    "scope_of",
]

SpanStatus = Literal["valid", "quarantined"]
Handled = Literal["training", "done"]
LOOP_KEY = "_loop"  # the triggers entry holding the loop-wide cooldown anchor


def scope_of(loop: str) -> str:
    """The controller-state scope of loop ``loop``'s memory (and its lease)."""
    return f"loop:{loop}"


class DecisionJson(TypedDict):
    """One retrain signal on one span, as the report keeps it."""

    name: str
    fired: bool
    reason: str


class GateJson(TypedDict, total=False):
    """The gate's decision on a candidate (or the training run's failure)."""

    blessed: bool
    failed: list[str]
    champion_version: int | None
    candidate: float | None
    champion: float | None
    version: int | None
    challenger: int | None
    error: str
    reason: str  # why the gate refused (its summary, in the metric's direction)
    note: str  # e.g. the metric is undefined on the holdout
    held: bool  # the metric is undefined on the holdout: not judged, not blessed


class CanaryJson(TypedDict):
    """The canary's judgement of a challenger on a span's traffic."""

    challenger: int
    champion: int
    challenger_live: float | None
    champion_live: float | None
    labels: int
    decision: Literal["wait", "promote", "drop"]
    reason: str


class DriftJson(TypedDict):
    share: float | None
    features: list[str]


class FileFingerprint(TypedDict):
    """A landed file that is no span, as it was when quarantined."""

    file: str
    key: str
    size: int
    mtime_ns: int
    sha256: str | None


# ``live`` and ``baseline`` are keyed by the loop's metric name (``{"version": 2,
# "roc_auc": 0.81, "n": 600}``), so they stay plain mappings.
Scored = dict[str, Any]


@dataclass
class SpanReport:
    """What the loop did with one span (the replay's JSON entry)."""

    span: str
    rows: int
    status: SpanStatus = "valid"
    anomalies: list[str] = field(default_factory=list)
    served_version: int | None = None
    live: Scored | None = None
    baseline: Scored | None = None
    drift: DriftJson | None = None
    triggers: list[DecisionJson] = field(default_factory=list)
    gate: GateJson | None = None
    promoted: int | None = None
    bootstrap: bool = False
    canary: CanaryJson | None = None
    window: list[str] | None = None  # the spans the candidate was trained on
    waiting: str | None = None  # the bootstrap could not train yet: why
    runs: dict[str, str] = field(default_factory=dict)  # phase -> run id (not in the JSON)

    def to_json(self) -> dict[str, Any]:
        """The replay's stable per-span record: no run ids or wall times, so two replays
        of the same history compare equal."""
        out = asdict(self)
        out.pop("runs")
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, name: str = "",
                  runs: Mapping[str, Any] | None = None) -> SpanReport:
        """The one reader of a stored report (loop status, the UI, a resumed span);
        tolerant of older records and of keys it does not know."""
        known = {f for f in cls.__dataclass_fields__ if f != "runs"}
        values = {k: v for k, v in data.items() if k in known}
        values.setdefault("span", name)
        values.setdefault("rows", 0)
        status = values.get("status")
        values["status"] = "quarantined" if status == "quarantined" else "valid"
        for key in ("anomalies", "triggers"):
            values[key] = list(values.get(key) or [])
        for key in ("served_version", "promoted"):
            values[key] = _int(values.get(key))
        values["rows"] = _int(values["rows"]) or 0
        return cls(**values, runs={str(k): str(v) for k, v in (runs or {}).items()})

    @property
    def fired(self) -> list[DecisionJson]:
        return [d for d in self.triggers if d.get("fired")]


@dataclass
class SpanRecord:
    """One span in the memory: its report once handled, and how far it got."""

    report: SpanReport | None = None
    runs: dict[str, str] = field(default_factory=dict)
    status: Handled | None = None  # "training" while a training run is in flight
    landed: str | None = None  # the land_span artifact of its ingest run
    training_run: str | None = None  # claimed as soon as the run exists (for a restart)
    unreadable: FileFingerprint | None = None  # a landed file that is no span

    @classmethod
    def from_json(cls, name: str, data: Mapping[str, Any]) -> SpanRecord:
        report = data.get("report")
        runs = data.get("runs") or {}
        status = data.get("status")
        unreadable = data.get("unreadable")
        return cls(
            report=SpanReport.from_json(report, name=name, runs=runs)
            if isinstance(report, Mapping) and report else None,
            runs={str(k): str(v) for k, v in runs.items()},
            status=status if status in ("training", "done") else None,
            landed=_str(data.get("landed")),
            training_run=_str(data.get("training_run")),
            unreadable=FileFingerprint(**unreadable)  # type: ignore[typeddict-item]
            if isinstance(unreadable, Mapping) else None,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.report is not None:
            out["report"] = self.report.to_json()
        if self.runs:
            out["runs"] = dict(self.runs)
        for key in ("status", "landed", "training_run", "unreadable"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    @property
    def valid(self) -> bool:
        return self.report is not None and self.report.status == "valid"


@dataclass(frozen=True)
class LastDecision:
    span: str
    fired: bool
    reason: str


@dataclass(frozen=True)
class TriggerRecord:
    """One retrain signal's state: its schedule anchor and when it last fired."""

    anchor: str | None = None  # ISO event time the schedule counts from
    last_fired: str | None = None
    last: LastDecision | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TriggerRecord:
        last = data.get("last")
        return cls(anchor=_str(data.get("anchor")), last_fired=_str(data.get("last_fired")),
                   last=LastDecision(str(last.get("span", "")), bool(last.get("fired")),
                                     str(last.get("reason", "")))
                   if isinstance(last, Mapping) else None)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.anchor is not None:
            out["anchor"] = self.anchor
        if self.last_fired is not None:
            out["last_fired"] = self.last_fired
        if self.last is not None:
            out["last"] = asdict(self.last)
        return out


@dataclass(frozen=True)
class ChampionRecord:
    """What the loop learnt about the champion while it served: the best live value
    (``decay.baseline = "best_live"``) and the first span whose live metric fell (where
    ``window = "auto"`` trains from)."""

    version: int | None = None
    best_live: float | None = None
    falling_since: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChampionRecord:
        best = data.get("best_live")
        return cls(version=_int(data.get("version")),
                   best_live=float(best) if isinstance(best, int | float) else None,
                   falling_since=_str(data.get("falling_since")))

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class LoopMemory:
    """Everything a loop remembers between spans (and between controller restarts)."""

    spans: dict[str, SpanRecord] = field(default_factory=dict)
    triggers: dict[str, TriggerRecord] = field(default_factory=dict)
    last_fired: str | None = None  # any signal: the cooldown counts from here
    champion: ChampionRecord = field(default_factory=ChampionRecord)
    window_since: str | None = None  # the change ``window = "auto"`` last trained from
    monitors_last_end: str | None = None  # live: the log is read from here on
    bootstrap_since: str | None = None  # the first span the bootstrap waited on
    declaration: dict[str, Any] = field(default_factory=dict)  # model, metric, task, signals

    @classmethod
    def from_json(cls, docs: Mapping[str, Mapping[str, Any]]) -> LoopMemory:
        triggers = dict(docs.get("triggers") or {})
        loop = triggers.pop(LOOP_KEY, None) or {}
        return cls(
            spans={str(n): SpanRecord.from_json(str(n), r)
                   for n, r in (docs.get("spans") or {}).items() if isinstance(r, Mapping)},
            triggers={str(n): TriggerRecord.from_json(r) for n, r in triggers.items()
                      if isinstance(r, Mapping)},
            last_fired=_str(loop.get("last_fired")),
            champion=ChampionRecord.from_json(docs.get("champion") or {}),
            window_since=_str((docs.get("window") or {}).get("since")),
            monitors_last_end=_str((docs.get("monitors") or {}).get("last_end")),
            bootstrap_since=_str((docs.get("bootstrap") or {}).get("since")),
            declaration=dict(docs.get("loop") or {}),
        )

    def to_json(self) -> dict[str, dict[str, Any]]:
        triggers = {n: t.to_json() for n, t in self.triggers.items()}
        if self.last_fired is not None:
            triggers[LOOP_KEY] = {"last_fired": self.last_fired}
        docs: dict[str, dict[str, Any]] = {
            "spans": {n: r.to_json() for n, r in self.spans.items()},
            "triggers": triggers,
            "champion": self.champion.to_json(),
        }
        optional = {"window": ("since", self.window_since),
                    "monitors": ("last_end", self.monitors_last_end),
                    "bootstrap": ("since", self.bootstrap_since)}
        for key, (inner, value) in optional.items():
            if value is not None:
                docs[key] = {inner: value}
        if self.declaration:
            docs["loop"] = dict(self.declaration)
        return docs

    def span(self, name: str) -> SpanRecord:
        """The span's record, created empty on first use."""
        return self.spans.setdefault(name, SpanRecord())

    def save_report(self, report: SpanReport, status: Handled) -> None:
        record = self.span(report.span)
        record.report = report
        record.runs = dict(report.runs)
        record.status = status

    def valid_spans(self) -> set[str]:
        return {n for n, r in self.spans.items() if r.valid}


class MemoryStore:
    """Loads and saves one loop's :class:`LoopMemory` whole, under the scope's lock."""

    def __init__(self, state: ControllerState, loop: str) -> None:
        self.state = state
        self.scope = scope_of(loop)

    def load(self) -> LoopMemory:
        return LoopMemory.from_json(self.state.read(self.scope))

    def save(self, memory: LoopMemory) -> None:
        with self.state.update(self.scope) as docs:
            docs.clear()
            docs.update(memory.to_json())

    def clear(self) -> None:
        with self.state.update(self.scope) as docs:
            docs.clear()

    @contextmanager
    def span_record(self, name: str) -> Iterator[SpanRecord]:
        """Change one span's stored record at once (a training run's claim, written while
        the run works, so a controller killed mid-run finds it)."""
        with self.state.update(self.scope) as docs:
            spans = docs.setdefault("spans", {})
            record = SpanRecord.from_json(name, spans.get(name) or {})
            yield record
            spans[name] = record.to_json()


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)
