"""The controller: evaluate triggers, start their pipelines, remember what it did.

Each trigger is handled in three short steps so that controllers on one
project can run side by side:

1. under the state lock: skip it if another process is running it or it is
   cooling down; evaluate its condition; if it fires, write the claim (who,
   since when; for new data the file now counts as seen) and release the lock;
2. run the pipeline through the engine (``trigger`` and ``trigger_info`` are
   kept on the run record), outside the lock, catching any failure;
3. under the lock again: record the outcome and drop the claim.

The clock is injectable so schedules and cooldowns can run in event time (a
replay) or be tested without waiting. The state lives in the metadata database
(``ctloop.triggers.store``), so controllers on several machines share it.
"""

from __future__ import annotations

import glob
import os
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from ctloop.core.clock import Clock, as_clock, utc_now
from ctloop.core.errors import CtloopError, NotFound, UserInputError
from ctloop.core.jsontypes import JSONValue
from ctloop.core.leases import renewing
from ctloop.core.settings import Settings, load_settings
from ctloop.monitoring.signals import check_schedule, cooling_until, last_scheduled
from ctloop.triggers.definitions import TriggerDef, fill_params, load_triggers
from ctloop.triggers.state import (
    CLAIM_TTL,
    Firing,
    FiringInfo,
    FiringStatus,
    TriggerEntry,
    TriggerState,
    claim_alive,
    info_to_json,
    this_process,
)
from ctloop.triggers.store import ControllerState

__all__ = ["Controller", "Firing", "FiringStatus", "utc_now"]


class Controller:
    """Evaluates triggers and starts pipelines; ``tick()`` once or ``run()`` in a loop."""

    def __init__(
        self,
        triggers: Iterable[TriggerDef] | None = None,
        *,
        settings: Settings | None = None,
        clock: Clock | Callable[[], datetime] | None = None,
        state: ControllerState | None = None,
        runner: str | None = None,
        on_event: Callable[[str, Firing], None] | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        self.triggers = {t.name: t for t in (
            load_triggers(self.settings) if triggers is None else triggers)}
        self.clock = as_clock(clock)
        self.state = TriggerState(state or ControllerState(self.settings.metadata_url))
        self.runner = runner
        self.on_event = on_event or (lambda _kind, _firing: None)

    # -- public --------------------------------------------------------------

    def tick(self) -> list[Firing]:
        """Evaluate every enabled trigger once; start what fires. Never raises for one trigger."""
        done: list[Firing] = []
        for trigger in self.triggers.values():
            if not trigger.enabled or trigger.kind == "manual":
                continue
            while True:  # new data: one run per new file, oldest first, while allowed
                firing = self._handle(trigger)
                if firing is None:
                    break
                done.append(firing)
                if trigger.kind != "new_data" or firing.status == "error":
                    break
        return done

    def fire(self, name: str, info: FiringInfo | None = None) -> Firing:
        """Start a trigger's pipeline now, whatever its condition and cooldown."""
        trigger = self.get(name)
        firing = self._handle(trigger, manual_info=FiringInfo(by="manual") | (info or {}))
        assert firing is not None
        return firing

    def get(self, name: str) -> TriggerDef:
        if name not in self.triggers:
            raise NotFound(
                f"No trigger named {name!r}; defined: {', '.join(self.triggers) or 'none'}. "
                "Triggers live in [ctloop.triggers.NAME] tables of ctloop.toml."
            )
        return self.triggers[name]

    def run(self, interval: float = 30.0, stop: threading.Event | None = None,
            max_ticks: int | None = None) -> None:
        """Tick every ``interval`` seconds until ``stop`` is set (or Ctrl-C)."""
        stop = stop or threading.Event()
        ticks = 0
        while not stop.is_set():
            started = self.clock.monotonic()
            self.tick()
            ticks += 1
            if max_ticks is not None and ticks >= max_ticks:
                return
            stop.wait(max(0.0, interval - (self.clock.monotonic() - started)))

    def entries(self) -> dict[str, TriggerEntry]:
        """Per trigger that ever ran or was checked: its state entry (last fire, last
        status, files seen ...)."""
        return self.state.read()

    def status(self) -> dict[str, dict[str, JSONValue]]:
        """:meth:`entries` as the JSON documents they are stored as."""
        return {name: entry.to_json() for name, entry in self.entries().items()}

    # -- one trigger -----------------------------------------------------------

    def _handle(self, trigger: TriggerDef, manual_info: FiringInfo | None = None
                ) -> Firing | None:
        now = self.clock.now()
        measured: FiringInfo | None = None
        info: FiringInfo | None
        if manual_info is None and trigger.kind in ("degradation", "drift"):
            # Monitors read the log and write reports: never while holding the state lock.
            with self.state.entry(trigger.name) as entry:
                if claim_alive(entry.running) or self._cooling(trigger, entry, now):
                    return None
            try:
                measured = self._monitor(trigger, now)
            except CtloopError as exc:
                return self._failed_check(trigger, now, exc)
        with self.state.entry(trigger.name) as entry:
            if entry.running is not None and claim_alive(entry.running):
                if manual_info is not None:
                    raise UserInputError(
                        f"Trigger {trigger.name!r} is already running (since "
                        f"{entry.running.since}, pid {entry.running.pid}). "
                        "Wait for it to finish."
                    )
                return None
            if manual_info is None:
                if self._cooling(trigger, entry, now):
                    return None
                if trigger.kind in ("degradation", "drift"):
                    info = measured
                else:
                    error: CtloopError | None = None
                    try:
                        info = self._evaluate(trigger, entry, now)
                    except CtloopError as exc:
                        error, info = exc, None
                    if error is not None:
                        entry.last_error = error.one_line()
                        entry.last_checked = now.isoformat()
                        firing = Firing(trigger.name, trigger.kind, "error",
                                        error=error.one_line(), at=now.isoformat())
                        self.on_event("error", firing)
                        return firing
                entry.last_checked = now.isoformat()
                entry.last_error = None
                if info is None:
                    return None
                kind = trigger.kind
            else:
                info, kind = manual_info, "manual"
            fired = FiringInfo(trigger=trigger.name) | info
            entry.running = this_process(since=now.isoformat())
            entry.last_fired = now.isoformat()
        with renewing(lambda: self._renew_claim(trigger.name), CLAIM_TTL / 4,
                      name=f"ctloop-claim-{trigger.name}"):
            firing = self._start(trigger, kind, fired, now)
        with self.state.entry(trigger.name) as entry:
            entry.running = None
            entry.last_status = firing.status
            entry.last_run_id = firing.run_id
            if firing.error:
                entry.last_error = firing.error
            entry.add_history(firing)
        return firing

    def _failed_check(self, trigger: TriggerDef, now: datetime, exc: CtloopError) -> Firing:
        firing = Firing(trigger.name, trigger.kind, "error", error=exc.one_line(),
                        at=now.isoformat())
        with self.state.entry(trigger.name) as entry:
            entry.last_error = firing.error
            entry.last_checked = now.isoformat()
        self.on_event("error", firing)
        return firing

    def _renew_claim(self, name: str) -> None:
        """Extend this process's running claim on ``name`` while its pipeline runs."""
        with self.state.entry(name) as entry:
            if entry.running is not None and entry.running.pid == os.getpid():
                entry.running = entry.running.renewed()

    def _cooling(self, trigger: TriggerDef, entry: TriggerEntry, now: datetime) -> bool:
        return cooling_until(entry.last_fired, trigger.cooldown, now) is not None

    def _start(self, trigger: TriggerDef, kind: str, info: FiringInfo,
               now: datetime) -> Firing:
        from ctloop.pipeline.api import run

        self.on_event("start", Firing(trigger.name, kind, "running", info, at=now.isoformat()))
        try:
            params = fill_params(trigger, info)
            result = run(trigger.pipeline, params, settings=self.settings, runner=self.runner,
                         trigger=kind, trigger_info=info_to_json(info))
        except Exception as exc:  # a failing pipeline must not stop the controller
            message = (exc.one_line() if isinstance(exc, CtloopError)
                       else f"{type(exc).__name__}: {exc}")
            firing = Firing(trigger.name, kind, "failed", info, None, message, now.isoformat())
        else:
            status: FiringStatus = "succeeded" if result.ok else "failed"
            firing = Firing(trigger.name, kind, status, info, result.run.id, result.run.error,
                            now.isoformat())
        self.on_event("end", firing)
        return firing

    # -- conditions -------------------------------------------------------------

    def _evaluate(self, trigger: TriggerDef, entry: TriggerEntry, now: datetime
                  ) -> FiringInfo | None:
        if trigger.kind == "cron":
            return _due_cron(trigger.cron, entry, now)
        return _next_new_file(trigger.pattern, entry) if trigger.kind == "new_data" else None

    def _monitor(self, trigger: TriggerDef, now: datetime) -> FiringInfo | None:
        from ctloop.metadata import open_metadata_store
        from ctloop.monitoring.monitors import check_decay, check_drift, record_result
        from ctloop.requestlog.log import open_prediction_log

        if trigger.kind != "degradation" and trigger.kind != "drift":
            return None
        log = open_prediction_log(trigger.log, settings=self.settings)
        start = now - timedelta(seconds=trigger.window) if trigger.window else None
        store = open_metadata_store(self.settings.metadata_url)
        if trigger.kind == "degradation":
            result = check_decay(
                log, trigger.model, metric=trigger.metric, max_drop=trigger.max_drop,
                baseline=trigger.baseline, min_labels=trigger.min_labels,
                start=start, store=store, version=trigger.version,
            )
        else:
            result = check_drift(
                log, trigger.model, trigger.reference, start=start, share=trigger.share,
                min_rows=trigger.min_rows, columns=trigger.columns,
            )
        if not result.fired:
            return None
        from ctloop.artifacts import open_artifact_store

        report = record_result(result, store,
                               open_artifact_store(self.settings.artifacts_url))
        info = FiringInfo(summary=result.summary(), threshold=result.threshold,
                          baseline=result.baseline, n=result.n, report=report.id,
                          model=result.model)
        if result.value is not None:  # a monitor that fired measured something
            info["value"] = result.value
        return info


def _due_cron(expr: str, entry: TriggerEntry, now: datetime) -> FiringInfo | None:
    """Fire once when a scheduled time has passed since the last one handled.

    The first evaluation only anchors the schedule; see
    :func:`ctloop.monitoring.signals.check_schedule`.
    """
    anchor = entry.cron_anchor
    if anchor is None:
        entry.cron_anchor = now.isoformat()
        return None
    if not check_schedule(expr, anchor, now).fired:
        return None
    latest = last_scheduled(expr, now)
    entry.cron_anchor = latest.isoformat()
    return FiringInfo(scheduled=latest.isoformat())


def _next_new_file(pattern: str, entry: TriggerEntry) -> FiringInfo | None:
    """The oldest file matching ``pattern`` not seen before; it is marked as seen."""
    seen = set(entry.seen)
    fresh = []
    for name in glob.glob(pattern, recursive=True):
        path = os.path.abspath(name)
        if path in seen or not os.path.isfile(path) or os.path.basename(path).startswith("."):
            continue
        fresh.append((os.stat(path).st_mtime, path))
    if not fresh:
        return None
    mtime, path = min(fresh)
    entry.seen.append(path)
    return FiringInfo(path=path, name=os.path.basename(path),
                      mtime=datetime.fromtimestamp(mtime, UTC).isoformat())
