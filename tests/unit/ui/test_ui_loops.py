"""The loop timeline's reading side: the loop's memory in the controller state, no browser."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from ctloop.core.settings import load_settings
from ctloop.loop.memory import SpanReport
from ctloop.metadata import open_metadata_store
from ctloop.triggers.store import ControllerState
from ctloop.ui import create_app
from ctloop.ui.loops import read_timeline, timelines


def _remember(url: str, loop: str, *reports: SpanReport) -> None:
    """What the loop episode writes: the report and its runs under ``loop:NAME``."""
    state = ControllerState(url)
    try:
        with state.update(f"loop:{loop}") as docs:
            spans = docs.setdefault("spans", {})
            for r in reports:
                spans[r.span] = {"report": r.to_json(), "runs": r.runs, "status": "done"}
    finally:
        state.close()


def _history() -> list[SpanReport]:
    return [
        SpanReport("w0", 100, bootstrap=True, promoted=1, runs={"train": "r" * 32},
                   gate={"blessed": True, "failed": [], "candidate": 0.8, "version": 1},
                   triggers=[{"name": "bootstrap", "fired": True, "reason": "no champion"}]),
        SpanReport("w1", 100, status="quarantined", served_version=1,
                   anomalies=["[error] spend: required column 'spend' is missing"]),
        SpanReport("w2", 100, served_version=1, window=["w2"],
                   gate={"blessed": False, "failed": ["roc_auc below floor 0.7"],
                         "candidate": 0.61, "champion": 0.66, "version": 2},
                   triggers=[{"name": "decay", "fired": True, "reason": "live 0.66 < 0.7"},
                             {"name": "drift", "fired": False, "reason": "quiet"}]),
    ]


def test_memory_written_as_the_loop_writes_it_reads_back_as_a_timeline(
    ctloop_home: Path,
) -> None:
    settings = load_settings()
    open_metadata_store(settings.metadata_url).close()  # migrated, as the dashboard finds it
    _remember(settings.metadata_url, "churn", *_history())
    tl = read_timeline(settings.metadata_url, "churn", "live")
    assert [(s.span, s.status) for s in tl.spans] == [
        ("w0", "valid"), ("w1", "quarantined"), ("w2", "valid")]
    assert (tl.valid, tl.quarantined, tl.promotions) == (2, 1, [("w0", 1)])
    w0, w1, w2 = tl.spans
    assert w0.bootstrap and w0.blessed and w0.runs == {"train": "r" * 32}
    assert w1.blessed is None and w1.served_version == 1 and "spend" in w1.anomalies[0]
    assert w2.fired == [("decay", "live 0.66 < 0.7")]
    assert w2.gate_summary == "not blessed: v2 0.6100 vs 0.6600 (roc_auc below floor 0.7)"
    found, note = timelines(settings)  # undeclared, but it has a memory: shown
    assert [t.name for t in found] == ["churn"] and note == ""


def test_the_page_without_loops_and_with_a_broken_declaration(ctloop_home: Path) -> None:
    client = TestClient(create_app(load_settings()), raise_server_exceptions=False)
    page = client.get("/monitoring")
    assert page.status_code == 200 and "No loops declared" in page.text
    (ctloop_home / "ctloop.toml").write_text(
        '[ctloop.loops.churn]\nmodel = "churn"\ndata = "x/*.parquet"\nevent_time = "ts"\n'
        'label = "y"\nwindw = "3 spans"\n')
    client = TestClient(create_app(load_settings()), raise_server_exceptions=False)
    page = client.get("/monitoring")
    assert page.status_code == 200 and "Traceback" not in page.text
    assert "windw" in page.text and "window" in page.text  # the loop's own one-line error
    assert 'data-loop="churn"' in page.text and "No spans handled yet" in page.text
    assert client.get("/monitoring/nobody").status_code == 404


def test_a_replay_sandbox_is_the_latest_replay_timeline(ctloop_home: Path) -> None:
    settings = load_settings()
    sandbox = settings.home / "replays" / "churn"
    sandbox.mkdir(parents=True)
    url = f"sqlite:///{sandbox / 'metadata.db'}"
    open_metadata_store(url).close()
    _remember(url, "churn", *_history())
    found, _ = timelines(settings)
    assert [(t.name, t.source, t.linked, len(t.spans)) for t in found] == [
        ("churn", "replay", False, 3)]
    page = TestClient(create_app(settings)).get("/monitoring").text
    assert "latest replay" in page and 'href="/runs/' + "r" * 32 not in page  # not linked
