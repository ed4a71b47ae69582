"""``ctloop loop run``: the live controller of one loop.

Each tick takes the loop's lease (``loop:NAME`` in the metadata database),
finds the spans that landed since the last tick and handles them in
event-time order: validate; with no champion, the bootstrap; else the
monitors read the prediction log (what the service logged and the labels
``ctloop feedback`` delivered since the last look), the canary and the
triggers decide, and a fired trigger runs the training pipeline.

Safe to start twice: only the lease holder acts, and it renews the lease
while it works. A controller killed with ``kill -9`` stops renewing; once its
lease expires the next controller takes over, finds the span whose training
run was recorded but not finished, and resumes that run (or records its
outcome) instead of training again.

A landed file that is no span (unreadable, or without the ``event_time`` or
``label`` column) does not stop the others: it is quarantined once, with its
anomaly, and read again when the file changes (size, modification time and
content), so a fixed file is picked up as a new span.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ctloop.core.clock import Clock, as_clock
from ctloop.core.errors import CtloopError
from ctloop.core.hashing import hash_file
from ctloop.core.leases import renewing
from ctloop.core.settings import Settings
from ctloop.loop.declaration import LoopSpec, resolve_task
from ctloop.loop.episode import run_span
from ctloop.loop.memory import FileFingerprint, MemoryStore, SpanRecord, SpanReport, scope_of
from ctloop.loop.phases import LoopPhases, Phase
from ctloop.loop.spans import BadSpan, scan_spans, span_labels
from ctloop.triggers.store import ControllerState, holder_id

__all__ = ["LoopController", "TickResult"]


class TickResult:
    """What one tick did: the spans handled, or who held the lease instead."""

    def __init__(self, reports: list[SpanReport], blocked_by: str | None = None,
                 errors: list[str] | None = None) -> None:
        self.reports = reports
        self.blocked_by = blocked_by
        self.errors = errors or []


class LoopController:
    """Runs one declared loop live; ``tick()`` once or ``run()`` until stopped."""

    def __init__(self, spec: LoopSpec, settings: Settings, *,
                 clock: Clock | Callable[[], datetime] | None = None,
                 lease_ttl: float = 60.0, on_phase: Phase | None = None,
                 holder: str | None = None) -> None:
        self.spec = spec
        self.settings = settings
        self.clock = as_clock(clock)
        self.lease_ttl = lease_ttl
        self.holder = holder or holder_id()
        self.lease = scope_of(spec.name)
        self.state = ControllerState(settings.metadata_url)
        self.memory = MemoryStore(self.state, spec.name)
        self.phases = LoopPhases(spec, settings, on_phase=on_phase)

    def close(self) -> None:
        self.phases.close()
        self.state.close()

    def tick(self, stop: threading.Event | None = None) -> TickResult:
        """Handle every span not handled yet, if this controller holds the lease; once
        ``stop`` is set, stop after the span in hand (the rest wait for the next tick)."""
        if not self.state.acquire(self.lease, self.holder, self.lease_ttl):
            held = self.state.lease(self.lease)
            return TickResult([], blocked_by=held.holder if held else "another controller")
        try:
            with renewing(lambda: self.state.acquire(self.lease, self.holder, self.lease_ttl),
                          self.lease_ttl / 3, name=f"ctloop-lease-{self.spec.name}"):
                return self._tick(stop or threading.Event())
        finally:
            self.state.release(self.lease, self.holder)

    def run(self, interval: float = 30.0, stop: threading.Event | None = None,
            on_tick: Callable[[TickResult], None] | None = None) -> None:
        """Tick every ``interval`` seconds until ``stop`` is set (SIGTERM, Ctrl-C)."""
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                result = self.tick(stop)
            except CtloopError as exc:  # one bad span or a database hiccup: say so, go on
                result = TickResult([], errors=[exc.one_line()])
            if on_tick:
                on_tick(result)
            stop.wait(interval)

    # -- one tick ----------------------------------------------------------------

    def _tick(self, stop: threading.Event) -> TickResult:
        from ctloop.requestlog.log import open_prediction_log

        spans, bad = scan_spans(self.spec, materialize_to=self.phases.home / "spans")
        if spans:  # the task, declared or read off the labels landed so far
            self.spec = self.phases.spec = resolve_task(self.spec, span_labels(self.spec, spans))
        memory = self.memory.load()
        good = memory.valid_spans()
        valid = [s for s in spans if s.name in good]
        reports, errors = [], []
        log = open_prediction_log(self.spec_log(), settings=self.settings)
        try:
            for span in spans:
                if stop.is_set():  # SIGTERM: the span in hand is done, the rest wait
                    break
                record = memory.spans.get(span.name, SpanRecord())
                if record.unreadable:  # the quarantined file was replaced by a good one
                    self._forget(span.name)
                elif record.status == "done":
                    continue
                report = run_span(self.phases, self.memory, log, span,
                                  [s for s in valid if s.start <= span.start and s != span],
                                  now=self.clock.now())
                if report.status == "valid" and span not in valid:
                    valid.append(span)
                if report.gate and report.gate.get("error"):
                    errors.append(f"Loop {self.spec.name!r}: key 'train': the training run on "
                                  f"span {span.name} failed: {report.gate['error']}")
                reports.append(report)
        finally:
            log.close()
        for file in bad:  # after the spans, so the report names the champion now serving
            quarantined = self._quarantine_file(file, memory.spans.get(file.name))
            if quarantined is not None:
                reports.append(quarantined)
                errors.append(f"Loop {self.spec.name!r}: {file.problem} Quarantined; the "
                              "other spans go on, and the file is read again once it changes.")
        return TickResult(reports, errors=errors)

    def _quarantine_file(self, file: BadSpan, record: SpanRecord | None) -> SpanReport | None:
        """Record a landed file that is no span, once per content; ``None`` when already
        recorded (or when it is a span handled while it was still good)."""
        seen = record.unreadable if record else None
        if record is not None and record.to_json() and not seen:
            return None  # handled while it was good: its record (and training) stand
        if seen and (seen["size"], seen["mtime_ns"]) == (file.size, file.mtime_ns):
            return None
        digest = _digest(file.path)
        fingerprint: FileFingerprint = {"file": file.path, "key": file.key, "size": file.size,
                                        "mtime_ns": file.mtime_ns, "sha256": digest}
        if seen and digest is not None and seen["sha256"] == digest:
            with self.memory.span_record(file.name) as stored:  # touched, not changed
                stored.unreadable = fingerprint
            return None
        self.phases.on_phase(file.name, "quarantine")
        report = SpanReport(span=file.name, rows=0, status="quarantined",
                            anomalies=[file.problem], served_version=self.phases.alias())
        memory = self.memory.load()
        memory.save_report(report, "done")
        memory.span(file.name).unreadable = fingerprint
        self.memory.save(memory)
        return report

    def _forget(self, name: str) -> None:
        memory = self.memory.load()
        memory.spans.pop(name, None)
        self.memory.save(memory)

    def spec_log(self) -> Any:
        return self.settings.tables.serving.get("prediction_log") or None



def _digest(path: str) -> str | None:
    """The file's SHA-256, so a file touched but not changed is not quarantined again."""
    try:
        return hash_file(path)
    except OSError:
        return None
