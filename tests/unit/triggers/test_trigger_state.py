"""The trigger state's typed records: documents of earlier versions load, unknown keys
survive a write, and a round trip gives back what was stored."""

from __future__ import annotations

import os
import socket
from datetime import timedelta

from ctloop.core.clock import utc_now
from ctloop.core.settings import load_settings
from ctloop.triggers.state import (
    Claim,
    Firing,
    FiringInfo,
    TriggerEntry,
    TriggerState,
    claim_alive,
    info_from_json,
    info_to_json,
    this_process,
)
from ctloop.triggers.store import ControllerState

# An entry as the controller wrote it before claims had leases (no "expires", no "since"),
# with the pid as text, a history item without "info" and a key this version does not know.
OLD = {
    "last_fired": "2026-11-22T05:00:00+00:00",
    "last_status": "succeeded",
    "last_run_id": None,
    "cron_anchor": "2026-11-22T05:00:00+00:00",
    "seen": ["/data/a.parquet", "/data/b.parquet"],
    "running": {"pid": "4242", "host": "elsewhere"},
    "history": [{"trigger": "t", "kind": "cron", "status": "succeeded", "run_id": "r1",
                 "error": None, "at": "2026-11-22T05:00:00+00:00"}],
    "from_a_newer_version": {"x": [1, 2]},
}


def test_an_entry_of_an_earlier_version_loads() -> None:
    entry = TriggerEntry.from_json(OLD)
    assert entry.last_fired == "2026-11-22T05:00:00+00:00" and entry.last_status == "succeeded"
    assert entry.last_run_id is None and entry.seen == ["/data/a.parquet", "/data/b.parquet"]
    assert entry.running == Claim(pid=4242, host="elsewhere")
    assert claim_alive(entry.running)  # another host's claim without a lease holds
    (item,) = entry.history
    assert (item.trigger, item.status, item.run_id, item.info) == ("t", "succeeded", "r1", {})
    assert entry.unknown == {"from_a_newer_version": {"x": [1, 2]}}


def test_unknown_keys_are_written_back_and_nulls_left_out() -> None:
    again = TriggerEntry.from_json(OLD).to_json()
    assert again["from_a_newer_version"] == {"x": [1, 2]}
    assert "last_run_id" not in again  # null: absent, as readers of .get() saw it
    assert again["running"] == {"pid": 4242, "host": "elsewhere"}
    assert TriggerEntry.from_json(again) == TriggerEntry.from_json(OLD)


def test_an_empty_or_odd_document_is_an_empty_entry() -> None:
    assert TriggerEntry.from_json({}) == TriggerEntry()
    odd = TriggerEntry.from_json({"running": {}, "seen": "not a list", "history": [3, "x"],
                                  "last_status": "exploded"})
    assert odd == TriggerEntry(unknown={})
    assert not claim_alive(odd.running)


def test_claims_by_this_process_and_their_leases() -> None:
    mine = this_process(since="2026-12-01T00:00:00+00:00")
    assert (mine.pid, mine.host, mine.since) == (os.getpid(), socket.gethostname(),
                                                 "2026-12-01T00:00:00+00:00")
    assert claim_alive(mine)
    lapsed = Claim(pid=os.getpid(), host=socket.gethostname(),
                   expires=(utc_now() - timedelta(seconds=1)).isoformat())
    assert not claim_alive(lapsed)  # its holder stopped renewing
    assert claim_alive(lapsed.renewed())
    gone = Claim(pid=2**22 + 12345, host=socket.gethostname())
    assert not claim_alive(gone)


def test_firing_info_keeps_known_keys_of_their_types() -> None:
    info = info_from_json({"path": "/a", "value": 0.5, "n": 3, "baseline": None,
                           "threshold": "high", "extra": 1, "summary": 7})
    assert info == FiringInfo(path="/a", value=0.5, n=3, baseline=None, threshold=None)
    firing = Firing("t", "drift", "succeeded", FiringInfo(summary="drift 0.4", value=0.4))
    assert Firing.from_json(firing.to_json()) == firing
    by_hand = {"by": "manual", "reason": "test", "files": ["a", "b"]}  # a person's extras
    assert info_to_json(by_hand) == by_hand  # type: ignore[arg-type]  # untyped caller


def test_history_keeps_the_last_twenty() -> None:
    entry = TriggerEntry()
    for i in range(25):
        entry.add_history(Firing("t", "cron", "succeeded", run_id=str(i)))
    assert [f.run_id for f in entry.history] == [str(i) for i in range(5, 25)]


def test_a_stored_old_document_loads_and_keeps_its_unknown_keys(ctloop_home) -> None:
    store = ControllerState(load_settings().metadata_url)
    try:
        with store.update("triggers") as docs:
            docs["nightly"] = dict(OLD)
            docs["other"] = {"last_fired": "2026-11-01T00:00:00+00:00"}
        state = TriggerState(store)
        assert set(state.read()) == {"nightly", "other"}
        with state.entry("nightly") as entry:
            entry.last_error = "boom"
        raw = store.read("triggers")
        assert raw["nightly"]["last_error"] == "boom"
        assert raw["nightly"]["from_a_newer_version"] == {"x": [1, 2]}
        assert raw["other"] == {"last_fired": "2026-11-01T00:00:00+00:00"}  # untouched
        with state.entry("fresh"):
            pass
        assert store.read("triggers")["fresh"] == {}
    finally:
        store.close()
