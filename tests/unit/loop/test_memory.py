"""The loop's memory as typed records: the stored layout reads back whole, older
records read, and the one constructor of a span report tolerates what it does not know."""

from __future__ import annotations

from pathlib import Path

from ctloop.core.settings import load_settings
from ctloop.loop.memory import (
    ChampionRecord,
    LastDecision,
    LoopMemory,
    MemoryStore,
    SpanRecord,
    SpanReport,
    TriggerRecord,
)
from ctloop.triggers.store import ControllerState

LAYOUT = {
    "spans": {
        "w0": {"report": {"span": "w0", "rows": 10, "status": "valid", "bootstrap": True,
                          "promoted": 1, "gate": {"blessed": True, "version": 1},
                          "triggers": [{"name": "bootstrap", "fired": True, "reason": "x"}]},
               "runs": {"validate": "a" * 32, "train": "b" * 32}, "status": "done",
               "landed": "c" * 32, "training_run": "b" * 32},
        "bad": {"report": {"span": "bad", "rows": 0, "status": "quarantined",
                           "anomalies": ["cannot be read"]},
                "status": "done", "unreadable": {"file": "/x/bad.parquet", "key": "data",
                                                 "size": 3, "mtime_ns": 7, "sha256": None}},
    },
    "triggers": {"decay": {"last_fired": "2024-01-07T00:00:00+00:00",
                           "last": {"span": "w0", "fired": True, "reason": "fell"}},
                 "schedule": {"anchor": "2024-01-01T00:00:00+00:00"},
                 "_loop": {"last_fired": "2024-01-07T00:00:00+00:00"}},
    "champion": {"version": 1, "best_live": 0.8, "falling_since": "w0"},
    "window": {"since": "w0"},
    "monitors": {"last_end": "2024-01-08T00:00:00+00:00"},
}


def test_the_stored_layout_reads_as_records_and_writes_back_unchanged() -> None:
    memory = LoopMemory.from_json(LAYOUT)  # type: ignore[arg-type]  # the JSON as stored
    w0 = memory.spans["w0"]
    assert w0.report is not None and w0.report.promoted == 1 and w0.report.bootstrap
    assert w0.runs["train"] == "b" * 32 and w0.training_run == "b" * 32
    assert memory.spans["bad"].unreadable is not None
    assert memory.spans["bad"].report.status == "quarantined"  # type: ignore[union-attr]
    assert memory.triggers["decay"] == TriggerRecord(
        last_fired="2024-01-07T00:00:00+00:00", last=LastDecision("w0", True, "fell"))
    assert memory.triggers["schedule"].anchor == "2024-01-01T00:00:00+00:00"
    assert "_loop" not in memory.triggers and memory.last_fired == "2024-01-07T00:00:00+00:00"
    assert memory.champion == ChampionRecord(1, 0.8, "w0")
    assert (memory.window_since, memory.monitors_last_end) == ("w0",
                                                               "2024-01-08T00:00:00+00:00")
    again = LoopMemory.from_json(memory.to_json())
    assert again == memory
    assert memory.valid_spans() == {"w0"}


def test_a_report_reads_older_and_newer_records() -> None:
    report = SpanReport.from_json({"span": "w1", "rows": 5.0, "served_version": 2,
                                   "some_newer_key": 1}, runs={"train": "r"})
    assert (report.rows, report.served_version, report.runs) == (5, 2, {"train": "r"})
    assert report.status == "valid" and report.waiting is None
    named = SpanReport.from_json({}, name="w2")
    assert (named.span, named.rows, named.anomalies) == ("w2", 0, [])
    full = SpanReport("w3", 7, waiting="one class", triggers=[
        {"name": "decay", "fired": True, "reason": "fell"}])
    assert SpanReport.from_json(full.to_json()) == full
    assert full.fired == [{"name": "decay", "fired": True, "reason": "fell"}]


def test_saved_once_whole_and_one_span_record_changed_alone(ctloop_home: Path) -> None:
    state = ControllerState(load_settings().metadata_url)
    store = MemoryStore(state, "churn")
    try:
        assert store.load() == LoopMemory()
        memory = LoopMemory.from_json(LAYOUT)  # type: ignore[arg-type]
        store.save(memory)
        assert store.load() == memory
        with store.span_record("w1") as record:
            record.training_run = "r" * 32
        loaded = store.load()
        assert loaded.spans["w1"] == SpanRecord(training_run="r" * 32)
        assert loaded.spans["w0"] == memory.spans["w0"]
        store.clear()
        assert state.read("loop:churn") == {}
    finally:
        state.close()
