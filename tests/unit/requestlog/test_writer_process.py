"""The writer process: every row once, counters mirrored, a dead writer means 503, then a new one.

Real processes: a :class:`ProcessLogger` over a log in a temporary folder, its
writer started with ``python -m ctloop.requestlog.process``.
"""

from __future__ import annotations

import os
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctloop.requestlog.batches import LogBatch
from ctloop.requestlog.log import LogOptions, open_prediction_log
from ctloop.requestlog.process import ProcessLogger
from ctloop.requestlog.writer import LogUnavailable
from ctloop.testing.services import wait_until

T = datetime(2024, 1, 1, tzinfo=UTC)


def _batch(i: int, n: int = 1) -> LogBatch:
    return LogBatch(model_name="m", model_version=1, route="champion", ts=T,
                    request_ids=[f"q{i}-{j}" for j in range(n)],
                    predictions=np.full(n, 0.25),
                    features=pd.DataFrame({"x": np.arange(n, dtype=float) + i, "c": ["a"] * n}),
                    entity=pd.DataFrame({"k": list(range(n))}), latency_ms=1.5)


def test_every_row_is_logged_once_through_the_writer_process(tmp_path: Path) -> None:
    log = open_prediction_log(tmp_path)
    logger = ProcessLogger(log)

    def send(t: int) -> None:
        for i in range(300):
            for n in (1, 2):
                logger.submit([_batch(t * 1000 + 500 * (n - 1) + i, n)])

    threads = [threading.Thread(target=send, args=(t,)) for t in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    logger.flush()  # spooled and published by the writer: visible to this process
    stats = logger.stats()
    assert stats.written_rows == 3 * 300 * 3 and stats.pending_rows == 0
    assert len(log.read(model_name="m")) == 2700
    logger.submit([_batch(99_999, 1)])
    logger.close()  # the rest is spooled and published before the writer exits
    frame = open_prediction_log(tmp_path).read(model_name="m")
    assert frame["request_id"].is_unique and len(frame) == 2701
    assert list(frame[frame["request_id"] == "q99999-0"]["f_x"]) == [99_999.0]


def test_a_dead_writer_means_503_until_a_new_one_runs(tmp_path: Path) -> None:
    log = open_prediction_log(tmp_path, options=LogOptions())
    logger = ProcessLogger(log, retry_interval=3.0)  # a new writer after 3 s
    try:
        assert logger.submit([_batch(0)])
        logger.drain()
        child = logger._child
        assert child is not None
        os.kill(child.proc.pid, signal.SIGKILL)
        wait_until(lambda: logger.stats().failing, "the server to see its writer die", 30,
                   interval=0.01)
        with pytest.raises(LogUnavailable, match="writer process exited"):
            logger.submit([_batch(1)])  # refused, never acknowledged
        wait_until(lambda: not logger.stats().failing, "a new writer process", 60)
        assert logger.submit([_batch(2)])
        logger.flush()
    finally:
        logger.close()
    ids = set(open_prediction_log(tmp_path).read(model_name="m")["request_id"])
    assert {"q0-0", "q2-0"} <= ids  # the dead writer's spool was adopted and published


def test_one_wait_the_sender_waits_the_window_less_the_writers_spool_writes(
        tmp_path: Path) -> None:
    """The writer spools each frame on receipt and reports how long its writes take; the
    sender waits the window less two of them, within [25 ms, send_interval]."""
    logger = ProcessLogger(open_prediction_log(tmp_path), window=0.1, send_interval=0.075)
    try:
        logger.submit([_batch(1, 3)])
        logger.drain()
        child = logger._child
        assert child is not None and child.settled == 3
        assert 0 < child.write_s < 10  # reported with the counters after the write
        child.write_s = 0.001
        assert logger._delay() == 0.075  # a fast disk: the longest wait, fewest frames
        child.write_s = 0.030
        assert logger._delay() == pytest.approx(0.04)
        child.write_s = 0.2
        assert logger._delay() == 0.025  # a slow disk never means back-to-back tiny frames
    finally:
        logger.close()
    assert len(open_prediction_log(tmp_path).read(model_name="m")) == 3


def test_the_writer_process_runs_at_a_lower_priority(tmp_path: Path) -> None:
    logger = ProcessLogger(open_prediction_log(tmp_path))
    try:
        logger.submit([_batch(1)])
        logger.drain()
        child = logger._child
        assert child is not None
        assert os.getpriority(os.PRIO_PROCESS, child.proc.pid) \
            >= min(19, os.getpriority(os.PRIO_PROCESS, 0) + 5)
    finally:
        logger.close()
