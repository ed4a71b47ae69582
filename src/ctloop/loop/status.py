"""``ctloop loop status``: what a loop knows, from its memory in the metadata database.

The live project's memory, or with ``--replay`` the sandbox the last
``ctloop loop replay`` left in ``.ctloop/replays/NAME/``. A loop that is not
declared in ctloop.toml but has a memory (the demo's ``flights``, declared in
Python) is read from the declaration its memory keeps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ctloop.core.errors import CtloopError, NotFound
from ctloop.core.settings import Settings
from ctloop.loop.declaration import LoopSpec
from ctloop.loop.memory import LoopMemory, SpanRecord, SpanReport, TriggerRecord, scope_of
from ctloop.triggers.store import ControllerState

__all__ = ["loop_status", "read_memory"]


def read_memory(settings: Settings, name: str) -> LoopMemory:
    """Loop ``name``'s memory in the project of ``settings`` (empty when none); never
    creates a database where there is none."""
    from sqlalchemy.exc import SQLAlchemyError

    url = settings.metadata_url
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).is_file():
        return LoopMemory()
    try:
        state = ControllerState(url, migrate=False)
    except CtloopError:
        return LoopMemory()
    try:
        return LoopMemory.from_json(state.read(scope_of(name)))
    except (CtloopError, SQLAlchemyError):  # a database without the loop's table yet
        return LoopMemory()
    finally:
        state.close()


def loop_status(spec: LoopSpec | None, settings: Settings, *, name: str | None = None,
                replay: bool = False) -> dict[str, Any]:
    """Spans with their status, champion/challenger, last signals, each trigger's why.

    ``spec`` ``None``: the loop ``name`` as its memory recorded it (an undeclared loop).
    """
    name = spec.name if spec is not None else str(name)
    state = ControllerState(settings.metadata_url)
    try:
        memory = LoopMemory.from_json(state.read(scope_of(name)))
        lease = state.lease(scope_of(name))
    finally:
        state.close()
    declared = memory.declaration if spec is None else {
        "model": spec.model, "metric": spec.metric, "task": spec.task,
        "retrain_on": list(spec.retrain_on)}
    model = str(declared.get("model") or "")
    aliases = _aliases(settings, model)
    spans = [_span(n, r) for n, r in memory.spans.items()]
    signals = declared.get("retrain_on") or list(memory.triggers)
    last = next((s for s in reversed(spans) if s["live"] or s["drift"]), None)
    return {
        "loop": name, "model": model, "source": "replay" if replay else "live",
        "home": str(settings.home), "metric": declared.get("metric"),
        "task": declared.get("task"),
        "champion": aliases.get("champion"), "challenger": aliases.get("challenger"),
        "spans": spans,
        "valid": sum(1 for s in spans if s["status"] == "valid"),
        "quarantined": sum(1 for s in spans if s["status"] == "quarantined"),
        "last_signals": last and {k: last[k] for k in ("span", "live", "drift")},
        "triggers": [_trigger(signal, memory.triggers.get(signal)) for signal in signals],
        "lease": {"holder": lease.holder, "expires_at": lease.expires_at.isoformat()}
        if lease is not None and lease.alive() else None,
    }


def _aliases(settings: Settings, model: str) -> dict[str, int]:
    """The model's aliases ({} for a model not registered yet)."""
    from ctloop.metadata import open_metadata_store

    if not model:
        return {}
    store = open_metadata_store(settings.metadata_url)
    try:
        return dict(store.get_aliases(model))
    except NotFound:
        return {}
    finally:
        store.close()


def _span(name: str, record: SpanRecord) -> dict[str, Any]:
    """One span's line of the status, from its report (``SpanReport.from_json``)."""
    report = record.report or SpanReport(span=name, rows=0)
    return {"span": name,
            "status": report.status if record.report is not None else record.status,
            "handled": record.status, "anomalies": list(report.anomalies),
            "served_version": report.served_version, "live": report.live,
            "drift": report.drift, "promoted": report.promoted, "gate": report.gate,
            "waiting": report.waiting}


def _trigger(signal: str, entry: TriggerRecord | None) -> dict[str, Any]:
    """One retrain signal: the last span it was judged on, and why it did or did not fire."""
    last = entry.last if entry else None
    return {"name": signal, "span": last.span if last else None,
            "fired": last.fired if last else None,
            "reason": (last.reason if last else None) or "not evaluated yet",
            "last_fired": entry.last_fired if entry else None}
