"""``ctloop loop run`` long-running, as a service manager runs it: one line per phase on
stderr, and SIGTERM stops it after the span in hand, with the lease released."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest

from ctloop.loop.sample import write_sample_spans
from ctloop.testing.cli import cli
from ctloop.testing.loops import churn_loop
from ctloop.testing.services import patience

pytestmark = pytest.mark.slow

TOML = churn_loop(
    'retrain_on = ["new_span"]',
    'window = "1 spans"',
    'train = { flavor = "lightgbm", params = { n_estimators = 10 } }',
)


class _Controller:
    """A ``ctloop loop run`` subprocess whose output is read line by line as it comes."""

    def __init__(self, project: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ctloop", "loop", "run", "churn", *args], cwd=project,
            env={**os.environ, "COLUMNS": "200"}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[tuple[str, str]] = queue.Queue()
        self.seen: dict[str, list[str]] = {"out": [], "err": []}
        self.pumps = [threading.Thread(target=self._pump, args=(stream, where), daemon=True)
                      for stream, where in ((self.proc.stdout, "out"), (self.proc.stderr, "err"))]
        for pump in self.pumps:
            pump.start()

    def _pump(self, stream: IO[str] | None, where: str) -> None:
        assert stream is not None
        for line in stream:
            self.lines.put((where, line.rstrip("\n")))

    def wait_for(self, where: str, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + patience(timeout)
        while not any(text in line for line in self.seen[where]):
            assert time.monotonic() < deadline, (f"no {text!r} on std{where}", self.seen)
            try:
                source, line = self.lines.get(timeout=0.2)
            except queue.Empty:
                assert self.proc.poll() is None, (self.proc.returncode, self.seen)
                continue
            self.seen[source].append(line)

    def stop(self, timeout: float) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=patience(timeout))
        for pump in self.pumps:  # they end at the pipes' end: everything is in the queue
            pump.join(timeout=patience(10))
        while not self.lines.empty():
            source, line = self.lines.get()
            self.seen[source].append(line)
        return code


def _status(capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    code, out, err = cli(capsys, "loop", "status", "churn", "--json")
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def test_sigterm_stops_after_the_span_in_hand_and_releases_the_lease(
        ctloop_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (ctloop_home / "ctloop.toml").write_text(TOML)
    write_sample_spans(ctloop_home / "landing", spans=3, rows=300, change_at=None,
                       shift_at=None)
    controller = _Controller(ctloop_home, "--interval", "0.5")
    controller.wait_for("out", "loop churn: watching")
    controller.wait_for("err", "span week-00: validate")  # phases as lines: stderr is a log
    controller.wait_for("err", "span week-00: training")
    assert controller.stop(timeout=120) == 0
    err = "\n".join(controller.seen["err"])
    assert "loop churn: SIGTERM: stopping after the span in hand" in err
    assert "span week-00: gate" in err and "week-01" not in err, err
    out = controller.seen["out"]
    assert any("week-00 bootstrap: v1 is the first champion" in line for line in out), out
    assert out[-1] == "loop churn: stopped"
    status = _status(capsys)
    assert [s["span"] for s in status["spans"]] == ["week-00"]  # the rest wait
    assert status["champion"] == 1 and status["lease"] is None  # released, not left to expire

    # Started again, it handles the rest, then idles; SIGTERM while idle stops at once,
    # not after the interval: an hour, far past stop's bound (was a 30 s interval and a
    # `< 10 s` wall-clock assertion; issue 20.7)
    controller = _Controller(ctloop_home, "--interval", "3600")
    controller.wait_for("out", "week-02 v")
    assert controller.stop(timeout=60) == 0
    assert controller.seen["out"][-1] == "loop churn: stopped"
    status = _status(capsys)
    assert [s["handled"] for s in status["spans"]] == ["done"] * 3
    assert status["lease"] is None
