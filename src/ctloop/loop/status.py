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
from ctloop.loop.memory import LoopMemory, scope_of
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
    from ctloop.metadata import open_metadata_store

    name = spec.name if spec is not None else str(name)
    state = ControllerState(settings.metadata_url)
    store = open_metadata_store(settings.metadata_url)
    try:
        memory = LoopMemory.from_json(state.read(scope_of(name)))
        lease = state.lease(scope_of(name))
        model = spec.model if spec is not None else str(memory.declaration.get("model", ""))
        try:
            aliases = store.get_aliases(model) if model else {}
        except NotFound:
            aliases = {}
    finally:
        state.close()
        store.close()
    spans = []
    for span_name, record in memory.spans.items():
        report = record.report
        spans.append({
            "span": span_name,
            "status": report.status if report is not None else record.status,
            "handled": record.status,
            "anomalies": list(report.anomalies) if report else [],
            "served_version": report.served_version if report else None,
            "live": report.live if report else None,
            "drift": report.drift if report else None,
            "promoted": report.promoted if report else None,
            "gate": report.gate if report else None,
            "waiting": report.waiting if report else None,
        })
    signals = spec.retrain_on if spec is not None else tuple(
        memory.declaration.get("retrain_on") or memory.triggers)
    triggers = []
    for signal in signals:
        entry = memory.triggers.get(signal)
        last = entry.last if entry else None
        triggers.append({"name": signal, "span": last.span if last else None,
                         "fired": last.fired if last else None,
                         "reason": (last.reason if last else None) or "not evaluated yet",
                         "last_fired": entry.last_fired if entry else None})
    last_signals = next((s for s in reversed(spans) if s["live"] or s["drift"]), None)
    return {
        "loop": name, "model": model, "source": "replay" if replay else "live",
        "home": str(settings.home),
        "metric": spec.metric if spec is not None else memory.declaration.get("metric"),
        "task": spec.task if spec is not None else memory.declaration.get("task"),
        "champion": aliases.get("champion"), "challenger": aliases.get("challenger"),
        "spans": spans,
        "valid": sum(1 for s in spans if s["status"] == "valid"),
        "quarantined": sum(1 for s in spans if s["status"] == "quarantined"),
        "last_signals": None if last_signals is None else {
            "span": last_signals["span"], "live": last_signals["live"],
            "drift": last_signals["drift"]},
        "triggers": triggers,
        "lease": None if lease is None or not lease.alive() else {
            "holder": lease.holder, "expires_at": lease.expires_at.isoformat()},
    }
