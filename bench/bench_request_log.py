"""What the request log costs on the request path, against writing parquet directly.

Run by hand: ``.venv/bin/python bench/bench_request_log.py [--requests 20000]``.

Three measurements, interleaved and repeated, on the same single-row batches
a prediction service produces (8 model inputs, 1 entity key):

- ``submit``: the only call on the request path (``RequestLogger.submit`` of
  the request's :class:`Entry`, its arrays), in microseconds per request;
- ``log``: submit every batch, then flush (spooled, published as a segment,
  indexed), in rows per second;
- ``parquet``: the raw baseline: build one Arrow table from the same batches
  (the same column-wise builder the log uses) and ``pyarrow.parquet.write_table``
  it once, in rows per second: no durability, no index, no concurrency.

Ratios are what to quote: the machine is shared and absolute times are noisy.

``--serve``: the request log's cost where it matters, in a running service.
Two ``ctloop serve`` processes of the same project and model (bench_serving's
setup: 100-tree LightGBM flights model), one with the request log on (the
default) and one with it off (``prediction_log = ""``), measured in alternating
order for ``--repeat`` rounds with bench/loadgen.py: 1 row at c=1 and c=32,
100 rows at c=1. CPU per request counts everything the server did until it was
idle again (the log's background work included). Prints requests/s and CPU per
request of each, and the per-round ratios on/off (the aim: >= 0.90). The log-on
server writes its log in a writer process (the default); ``--log-settings 'writer =
"thread"'`` measures the writer thread instead. CPU per request counts the whole
process group, the writer process included. ``--baseline-src DIR`` adds a third server,
log on, running the ``ctloop`` package found in DIR (e.g. another checkout's ``src``),
interleaved with the other two: before and after a change in one run.
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

from ctloop.requestlog.batches import LogBatch, as_entry
from ctloop.requestlog.entries import Entry, SchemaBook, build_tables
from ctloop.requestlog.log import open_prediction_log
from ctloop.requestlog.tables import concat_tables
from ctloop.requestlog.writer import RequestLogger


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


def run_log(items: list[Entry], folder: Path) -> tuple[float, float]:
    log = open_prediction_log(folder)
    logger = RequestLogger(log, max_wait=30.0)  # a tight loop waits for room, never a 503
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


def run_parquet(items: list[Entry], folder: Path) -> float:
    started = time.perf_counter()
    table = concat_tables(build_tables(items, SchemaBook()).tables)
    pq.write_table(table, folder / "direct.parquet")
    return len(items) / (time.perf_counter() - started)


def serve(seconds: float, repeat: int, log_settings: str = "", baseline_src: str = "") -> None:
    """Log on vs off in two running services, interleaved (see the module docstring)."""
    import os
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_serving import FEATURES, Server, servers, settle, setup
    from loadgen import load

    from ctloop.examples.flights.data import flights

    sample = flights([3]).head(100)[FEATURES].reset_index(drop=True)
    rows = sample.astype(object).where(sample.notna(), None).to_dict("records")
    scenarios = {"1 row, c=1": (rows[:1], 1), "1 row, c=32": (rows[:1], 32),
                 "100 rows, c=1": (rows, 1)}
    with tempfile.TemporaryDirectory() as tmp:
        on_root = Path(tmp) / "on"
        model = setup(on_root)
        if log_settings:  # e.g. "fsync = false": the log-on server's [ctloop.prediction_log]
            (on_root / "ctloop.toml").write_text(f"[ctloop.prediction_log]\n{log_settings}\n")
        off_root = Path(tmp) / "off"  # the same home, its own ctloop.toml: log off
        off_root.mkdir()
        (off_root / "ctloop.toml").write_text('[ctloop.serving]\nprediction_log = ""\n')
        on = servers(on_root, model, None)[0]
        off = servers(on_root, model, None)[0]
        off.cwd = off_root
        on.name, off.name = "log on", "log off"
        group = [on, off]
        if baseline_src:  # the same settings, another tree's package
            base = servers(on_root, model, None)[0]
            base.env = {**base.env, "PYTHONPATH": str(Path(baseline_src).resolve())}
            base.name = "base on"
            group.append(base)
        results: dict[tuple[str, str], list[tuple[float, float, float, float]]] = {}

        def measure(server: Server, body: list[dict[str, object]],
                    concurrency: int) -> tuple[float, float, float, float]:
            """Requests/s during the load, CPU per request until the server is idle again,
            p50 and p99 latency (ms)."""
            settle(server)
            cpu = server.cpu_seconds()
            result = load(server.url(server.predict), server.body(body),
                          concurrency=concurrency, seconds=seconds)
            settle(server)
            if result.errors:
                raise RuntimeError(f"{server.name}: {result.errors} failed requests")
            return (result.rps, (server.cpu_seconds() - cpu) * 1000 / max(result.requests, 1),
                    result.p50_ms, result.p99_ms)

        try:
            for server in group:
                server.start()
            for r in range(repeat):
                for label, (body_rows, concurrency) in scenarios.items():
                    for server in (group if r % 2 == 0 else group[::-1]):
                        results.setdefault((label, server.name), []).append(
                            measure(server, body_rows, concurrency))
            rss = {server.name: group_rss_mb(server) for server in group}
        finally:
            for server in group:
                server.stop()
        print(f"load average {os.getloadavg()[0]:.1f}; {repeat} interleaved rounds of "
              f"{seconds:g} s")
        print(f"{'scenario':<15} {'server':<8} {'req/s':>8} {'cpu ms/req':>10} {'p50 ms':>7} "
              f"{'p99 ms':>7} {'p99/p50':>7}   (medians)")
        for label in scenarios:
            for server in group:
                runs = results[(label, server.name)]
                p50 = statistics.median(r[2] for r in runs)
                p99 = statistics.median(r[3] for r in runs)
                print(f"{label:<15} {server.name:<8} "
                      f"{statistics.median(r[0] for r in runs):>8.0f} "
                      f"{statistics.median(r[1] for r in runs):>10.3f} {p50:>7.2f} {p99:>7.2f} "
                      f"{statistics.median(r[3] / r[2] for r in runs):>6.1f}x")
        print("RSS of each server's process group after the load: " + ", ".join(
            f"{name} {mb}" for name, mb in rss.items()))
        for name in [s.name for s in group if s is not off]:
            print(f"\nratios {name} / log off per round (req/s: aim >= 0.90; cpu: lower is "
                  "better)")
            for label in scenarios:
                pairs = list(zip(results[(label, name)], results[(label, "log off")],
                                 strict=True))
                rps = [a[0] / b[0] for a, b in pairs]
                cpu = [a[1] / b[1] for a, b in pairs]
                print(f"{label:<15} req/s {statistics.median(rps):.2f}x "
                      f"[{', '.join(f'{x:.2f}' for x in rps)}]   cpu/req "
                      f"{statistics.median(cpu):.2f}x [{', '.join(f'{x:.2f}' for x in cpu)}]")


def group_rss_mb(server: object) -> str:
    """Resident memory of a server's process group in MB: the total, then each process
    (the server first, then its writer process)."""
    import os

    pgid = server.proc.pid  # type: ignore[attr-defined]
    each = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            each.append((int(stat.parent.name) != pgid,
                         int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20))
    sizes = [mb for _, mb in sorted(each)]
    return f"{sum(sizes):.0f} MB ({' + '.join(f'{mb:.0f}' for mb in sizes)})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--serve", action="store_true",
                        help="log on vs off in running services instead")
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement (--serve)")
    parser.add_argument("--log-settings", default="",
                        help="TOML lines for the log-on server's [ctloop.prediction_log] (--serve)")
    parser.add_argument("--baseline-src", default="",
                        help="a third server, log on, running the ctloop package in this "
                             "folder (--serve)")
    args = parser.parse_args()
    if args.serve:
        serve(args.seconds, args.repeat, args.log_settings, args.baseline_src)
        return
    items = [as_entry(b) for b in batches(args.requests)]  # arrays, as the service hands over
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
