"""``ctloop loop status``: what a loop knows, from its memory in the metadata database."""

from __future__ import annotations

from typing import Any

from ctloop.core.errors import NotFound
from ctloop.core.settings import Settings
from ctloop.loop.declaration import LoopSpec
from ctloop.triggers.store import ControllerState

__all__ = ["loop_status"]


def loop_status(spec: LoopSpec, settings: Settings) -> dict[str, Any]:
    """Spans with their status, champion/challenger, last signals, each trigger's why."""
    from ctloop.metadata import open_metadata_store

    state = ControllerState(settings.metadata_url)
    store = open_metadata_store(settings.metadata_url)
    try:
        memory = state.read(f"loop:{spec.name}")
        lease = state.lease(f"loop:{spec.name}")
        try:
            aliases = store.get_aliases(spec.model)
        except NotFound:
            aliases = {}
    finally:
        state.close()
        store.close()
    spans = []
    for name, record in memory.get("spans", {}).items():
        report = record.get("report", {})
        spans.append({"span": name, "status": report.get("status", record.get("status")),
                      "handled": record.get("status"),
                      "anomalies": report.get("anomalies", []),
                      "served_version": report.get("served_version"),
                      "live": report.get("live"), "drift": report.get("drift"),
                      "promoted": report.get("promoted"), "gate": report.get("gate")})
    triggers = []
    for signal in spec.retrain_on:
        entry = memory.get("triggers", {}).get(signal, {})
        last = entry.get("last", {})
        triggers.append({"name": signal, "span": last.get("span"), "fired": last.get("fired"),
                         "reason": last.get("reason") or "not evaluated yet",
                         "last_fired": entry.get("last_fired")})
    last_signals = next((s for s in reversed(spans) if s["live"] or s["drift"]), None)
    return {
        "loop": spec.name, "model": spec.model,
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
