"""What the request log costs on the request path, against writing parquet directly.

Run by hand: ``.venv/bin/python bench/bench_request_log.py [--requests 20000]``.

Three measurements, interleaved and repeated, on the same single-row batches
a prediction service produces (8 model inputs, 1 entity key):

- ``submit``: the only call on the request path (``RequestLogger.submit``), in
  microseconds per request;
- ``log``: submit every batch, then flush (spooled, published as a segment,
  indexed), in rows per second;
- ``parquet``: the raw baseline: build one Arrow table from the same batches
  (the same column-wise conversion the log uses) and ``pyarrow.parquet.write_table``
  it once, in rows per second: no durability, no index, no concurrency.

Ratios are what to quote: the machine is shared and absolute times are noisy.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from ctloop.requestlog.log import open_prediction_log
from ctloop.requestlog.writer import LogBatch, RequestLogger, batches_table


def batches(n: int) -> list[LogBatch]:
    rng = np.random.default_rng(0)
    ts = datetime.now(UTC)
    out = []
    for i in range(n):
        features = pd.DataFrame({
            "temp": [rng.normal(60, 10)], "dewp": [rng.normal(40, 10)],
            "humid": [rng.uniform(20, 90)], "wind_speed": [rng.uniform(0, 20)],
            "distance": [float(rng.integers(100, 2500))], "hour": [int(rng.integers(5, 23))],
            "origin": [["JFK", "LGA", "EWR"][i % 3]], "carrier": ["UA"],
        })
        out.append(LogBatch(
            model_name="flights", model_version=1, route="champion", ts=ts,
            request_ids=[f"r{i}"], predictions=np.array([rng.uniform()]), features=features,
            entity=pd.DataFrame({"flight": [i]}), latency_ms=2.0, row_ids=[f"row{i}"],
            decisions=np.array([1]),
        ))
    return out


def run_log(items: list[LogBatch], folder: Path) -> tuple[float, float]:
    log = open_prediction_log(folder)
    logger = RequestLogger(log)
    started = time.perf_counter()
    submit_s = 0.0
    for b in items:
        t = time.perf_counter()
        logger.submit([b])
        submit_s += time.perf_counter() - t
    logger.flush()
    total = time.perf_counter() - started
    rows = len(log.read(model_name="flights"))
    assert rows == len(items), rows
    logger.close()
    return len(items) / total, submit_s / len(items) * 1e6


def run_parquet(items: list[LogBatch], folder: Path) -> float:
    started = time.perf_counter()
    pq.write_table(batches_table(items), folder / "direct.parquet")
    return len(items) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    items = batches(args.requests)
    log_rates, submit_us, raw_rates = [], [], []
    for r in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            rate, us = run_log(items, Path(tmp) / f"log{r}")
            log_rates.append(rate)
            submit_us.append(us)
            raw_rates.append(run_parquet(items, Path(tmp)))
    med = statistics.median
    print(f"{args.requests} single-row requests, {args.repeat} interleaved rounds")
    print(f"submit on the request path: {med(submit_us):.1f} us/request "
          f"(runs: {', '.join(f'{u:.1f}' for u in submit_us)})")
    print(f"log (submit + spool + publish + index): {med(log_rates):,.0f} rows/s")
    print(f"parquet written directly:               {med(raw_rates):,.0f} rows/s")
    print(f"ratio log / direct parquet: {med(log_rates) / med(raw_rates):.2f}x")


if __name__ == "__main__":
    main()
