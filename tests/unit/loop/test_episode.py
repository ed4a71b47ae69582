"""One per-span episode: the replay and the live controller run the same function.

Fails if either keeps (or grows again) its own copy of the span's sequence.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

import ctloop
from ctloop.loop import episode
from ctloop.loop.memory import SpanReport

# The steps of a span's sequence: only the episode may call them.
STEPS = {"validate", "monitors", "canary_live", "settle_canary", "decide", "window",
         "bootstrap_window", "judge_canary", "train", "record_training", "resume",
         "track_change", "decay_baseline"}
SRC = Path(ctloop.__file__).parent


def _calls(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            names.add(name)
    return names


@pytest.mark.parametrize("module", ["controller.py", "replay.py"])
def test_neither_the_controller_nor_the_replay_sequences_a_span_itself(module: str) -> None:
    calls = _calls(SRC / "loop" / module)
    assert "run_span" in calls
    assert not calls & STEPS, f"loop/{module} calls {sorted(calls & STEPS)} itself"


def test_only_the_episode_sequences_the_phases() -> None:
    outside = {}
    for path in (SRC / "loop").glob("*.py"):
        if path.name in ("episode.py", "policy.py", "phases.py"):
            continue
        used = _calls(path) & (STEPS - {"window", "train", "validate"})
        if used:
            outside[path.name] = sorted(used)
    assert outside == {}


def test_replay_and_live_both_handle_each_span_through_run_span(
    ctloop_home: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ctloop.core.settings import load_settings
    from ctloop.loop.controller import LoopController
    from ctloop.loop.declaration import parse_loop
    from ctloop.loop.replay import replay
    from ctloop.loop.sample import write_sample_spans

    write_sample_spans(ctloop_home / "landing", spans=2, rows=60, change_at=None,
                       shift_at=None)
    seen: list[tuple[str, bool]] = []

    def stub(phases: Any, store: Any, memory: Any, log: Any, span: Any, valid: Any, *,
             now: Any, serve: Any) -> SpanReport:
        seen.append((span.name, now is None))
        return SpanReport(span=span.name, rows=span.rows)

    monkeypatch.setattr(episode, "_episode", stub)
    spec = parse_loop("churn", {"model": "churn", "data": "landing/*.parquet",
                                "event_time": "ts", "label": "churned", "window": "1 span"},
                      root=ctloop_home)
    settings = load_settings()
    result = replay(spec, settings)
    assert [r.span for r in result.spans] == ["week-00", "week-01"]
    controller = LoopController(spec, settings)
    try:
        assert [r.span for r in controller.tick().reports] == ["week-00", "week-01"]
    finally:
        controller.close()
    assert seen == [("week-00", True), ("week-01", True), ("week-00", False),
                    ("week-01", False)]
