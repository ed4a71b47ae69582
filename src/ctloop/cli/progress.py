"""Live progress of a run in the terminal: one row per step, state and duration."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ctloop.metadata.base import RunRecord, StepRecord, StepStatus

__all__ = ["LiveProgress", "status_text"]

_STYLE = {
    StepStatus.PENDING: ("·", "dim"),
    StepStatus.RUNNING: ("▶", "bold yellow"),
    StepStatus.SUCCEEDED: ("✔", "green"),
    StepStatus.CACHED: ("↺", "cyan"),
    StepStatus.FAILED: ("✘", "bold red"),
    StepStatus.SKIPPED: ("-", "dim"),
}


def status_text(status: Any) -> Text:
    """A coloured status label with its symbol."""
    try:
        st = StepStatus(status)
    except ValueError:
        style = {"succeeded": "green", "failed": "bold red", "running": "bold yellow"}.get(
            str(status), ""
        )
        return Text(str(status), style=style)
    symbol, style = _STYLE[st]
    return Text(f"{symbol} {st.value}", style=style)


class LiveProgress:
    """A ``RunObserver`` that redraws a table as steps change."""

    def __init__(self, console: Any, *, enabled: bool = True, transient: bool = False) -> None:
        self.console = console
        self.enabled = enabled
        self.transient = transient
        self.steps: dict[str, StepRecord] = {}
        self.run: RunRecord | None = None
        self._live: Live | None = None
        self._t0 = time.monotonic()

    def _render(self) -> Group:
        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        table.add_column("step")
        table.add_column("state")
        table.add_column("duration", justify="right")
        table.add_column("note", overflow="fold")
        for step in self.steps.values():
            if step.status == StepStatus.RUNNING and step.started_at is not None:
                secs = time.time() - step.started_at.timestamp()
                duration = f"{secs:.1f}s"
            elif step.duration_s is not None:
                duration = f"{step.duration_s:.2f}s"
            else:
                duration = ""
            note = ""
            if step.status == StepStatus.FAILED and step.error:
                note = step.error.splitlines()[0][:120]
            elif step.attempts > 1:
                note = f"attempt {step.attempts}"
            table.add_row(Text(step.name), status_text(step.status), duration, Text(note))
        title = Text(f"run {self.run.id}  {self.run.pipeline}" if self.run else "",
                     style="bold")
        return Group(title, table)

    def run_started(self, run: RunRecord, steps: list[StepRecord]) -> None:
        self.run = run
        self.steps = {s.name: s for s in steps}
        if self.enabled:
            # get_renderable: redrawn on every refresh, so running steps' clocks tick
            self._live = Live(get_renderable=self._render, console=self.console,
                              refresh_per_second=8,
                              transient=self.transient)
            self._live.start()

    def step_changed(self, step: StepRecord) -> None:
        self.steps[step.name] = step
        if self._live is not None:
            self._live.refresh()

    def run_finished(self, run: RunRecord) -> None:
        self.run = run
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
            self._live = None
