"""Benchmark: the same pipeline on the local runner and on a 2-worker Dask LocalCluster.

The pipeline describes 20 parquet partitions of 500,000 rows each
(``partitioned_statistics``: one task per partition), samples rows for
training in parallel, then fits a model that standardises its features with
the statistics. Reported:

- wall time of the whole pipeline, local runner vs Dask;
- duration of the statistics step on each, and the speed-up;
- per-step overhead of the Dask runner against local: a chain of tiny steps
  that pass a small artifact on, wall time per step on each runner.

Caching is off so both runners do all the work. The cluster's start-up is
timed apart (a team keeps its cluster running). Run by hand:

    .venv/bin/python bench/bench_dask_runner.py
    .venv/bin/python bench/bench_dask_runner.py --partitions 4 --rows 100000   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import statistics as pystats
import tempfile
import time
from pathlib import Path
from typing import Any

from ctloop.components.data_validation import Statistics
from ctloop.components.partitioned_statistics import partitioned_statistics
from ctloop.pipeline import Dataset, Input, Metrics, Model, Output, component, pipeline

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
FEATURES = ["distance", "dep_hour", "air_time", "temp", "wind", "visib"]


@component
def sample(source: str, rows: int, out: Output[Dataset]) -> int:
    """The first ``rows`` rows of the partitioned dataset, for training."""
    import pyarrow.dataset as pads

    table = pads.dataset(source, format="parquet").head(rows)
    out.write(table.to_pandas())
    return table.num_rows


@component
def fit(data: Input[Dataset], stats: Input[Statistics], model: Output[Model]) -> dict:
    """Standardise with the dataset statistics, then fit a logistic regression."""
    from ctloop.models import fit_model

    described = stats.read()
    df = data.read()
    for name in FEATURES:
        col = described[name].numeric
        assert col is not None
        df[name] = (df[name] - col.mean) / (col.std or 1.0)
    trained = fit_model(df, label="late", features=FEATURES, algorithm="logistic", seed=0)
    trained.save(model.path)
    return {"rows": trained.n_rows}


@pipeline
def stats_then_train(source: str, train_rows: int = 500_000):
    stats = partitioned_statistics(source=source)
    fit(data=sample(source=source, rows=train_rows), stats=stats)


@component
def link(i: int, out: Output[Metrics], prev: Input[Metrics] | None = None) -> None:
    """Reads the previous small artifact (if any) and writes one."""
    value = prev.read()["i"] if prev is not None else 0
    out.write({"i": value + i})


@pipeline
def chain(n: int = 20):
    prev = None
    for i in range(n):
        prev = link(i=i, prev=prev) if prev is not None else link(i=i)


def generate(folder: Path, partitions: int, rows: int) -> Path:
    """Flight-like partitions (cached between runs of the benchmark)."""
    import numpy as np
    import pandas as pd

    target = folder / f"parts-{partitions}x{rows}"
    if target.is_dir() and len(list(target.glob("*.parquet"))) == partitions:
        return target
    target.mkdir(parents=True, exist_ok=True)
    for i in range(partitions):
        rng = np.random.default_rng(i)
        df = pd.DataFrame(
            {
                "distance": rng.gamma(2.0, 400.0, rows),
                "dep_hour": rng.integers(5, 23, rows),
                "air_time": rng.normal(150, 60, rows).clip(20),
                "temp": rng.normal(55 + i, 15, rows),
                "wind": rng.exponential(10, rows),
                "visib": rng.uniform(0, 10, rows),
                "carrier": rng.choice(["UA", "AA", "DL", "B6", "EV", "WN"], rows),
                "origin": rng.choice(["EWR", "JFK", "LGA"], rows),
            }
        )
        logit = 0.02 * (df["dep_hour"] - 12) + 0.05 * (df["wind"] - 10) - 0.1 * df["visib"]
        df["late"] = rng.random(rows) < 1 / (1 + np.exp(-logit))
        df.to_parquet(target / f"part-{i:03d}.parquet", index=False)
    return target


def run_once(pipe: Any, params: dict, runner: str, home: Path) -> tuple[float, Any]:
    from ctloop.core.settings import Settings
    from ctloop.pipeline import run

    settings = Settings(home=home)
    started = time.perf_counter()
    result = run(pipe, params, settings=settings, runner=runner, max_workers=2, cache=False)
    wall = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"{runner}: {result.run.error}")
    return wall, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--partitions", type=int, default=20)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--chain", type=int, default=20, help="tiny steps for the overhead")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, best kept")
    args = parser.parse_args()

    from ctloop.pipeline.loader import load_pipeline
    from ctloop.pipeline.runners.dask import local_cluster

    # Load the pipelines from this file by path, as a user's are, so workers import them.
    main_pipe, _ = load_pipeline(f"{__file__}:stats_then_train")
    chain_pipe, _ = load_pipeline(f"{__file__}:chain")
    t0 = time.perf_counter()
    source = generate(OUT / "dask", args.partitions, args.rows)
    print(
        f"data: {args.partitions} partitions x {args.rows:,} rows in {source} "
        f"({time.perf_counter() - t0:.1f} s to prepare)"
    )

    from ctloop.components.partitioned_statistics import compute_partitioned_statistics

    serial = []
    for _ in range(args.repeat):  # the baseline: one thread, partition after partition
        t0 = time.perf_counter()
        compute_partitioned_statistics(str(source), where="threads", workers=1)
        serial.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    cluster = local_cluster(n_workers=2)
    startup = time.perf_counter() - t0
    runners = {"local": "local", "dask": str(cluster.scheduler_address)}
    report: dict[str, Any] = {
        "partitions": args.partitions,
        "rows": args.rows,
        "cluster_startup_s": round(startup, 3),
        "statistics_one_thread_s": round(min(serial), 3),
        "cpus": os.cpu_count(),
    }
    try:
        with tempfile.TemporaryDirectory(prefix="ctloop-bench-") as tmp:
            for name, spec in runners.items():
                walls, stat_s, fit_s, chain_walls = [], [], [], []
                for r in range(args.repeat):
                    home = Path(tmp) / f"{name}-{r}" / ".ctloop"
                    wall, result = run_once(main_pipe, {"source": str(source)}, spec, home)
                    walls.append(wall)
                    stat_s.append(result.steps["partitioned_statistics"].duration_s)
                    fit_s.append(result.steps["fit"].duration_s)
                    cwall, _ = run_once(chain_pipe, {"n": args.chain}, spec, home)
                    chain_walls.append(cwall)
                report[name] = {
                    "pipeline_wall_s": round(min(walls), 3),
                    "statistics_step_s": round(min(stat_s), 3),
                    "fit_step_s": round(min(fit_s), 3),
                    "chain_wall_s": round(min(chain_walls), 3),
                    "per_step_s": round(min(chain_walls) / args.chain, 4),
                    "pipeline_wall_all_s": [round(w, 3) for w in walls],
                    "pipeline_wall_median_s": round(pystats.median(walls), 3),
                }
    finally:
        cluster.close()
    local, dask = report["local"], report["dask"]
    report["dask_overhead_per_step_s"] = round(dask["per_step_s"] - local["per_step_s"], 4)
    report["statistics_speedup"] = round(local["statistics_step_s"] / dask["statistics_step_s"], 2)
    report["pipeline_speedup"] = round(local["pipeline_wall_s"] / dask["pipeline_wall_s"], 2)
    print(f"Dask LocalCluster (2 workers x 1 thread) start-up: {startup:.2f} s")
    print(f"{'':24}{'local':>10}{'dask':>10}")
    for key, label in [
        ("pipeline_wall_s", "pipeline wall (s)"),
        ("statistics_step_s", "statistics step (s)"),
        ("fit_step_s", "training step (s)"),
        ("per_step_s", f"per tiny step (s, {args.chain})"),
    ]:
        print(f"{label:24}{local[key]:>10.3f}{dask[key]:>10.3f}")
    print(f"statistics on one thread, no runner: {report['statistics_one_thread_s']:.3f} s")
    print(f"Dask overhead per step: {report['dask_overhead_per_step_s'] * 1000:.1f} ms")
    print(
        f"statistics speed-up on Dask: x{report['statistics_speedup']}; "
        f"pipeline speed-up: x{report['pipeline_speedup']}"
    )
    OUT.mkdir(exist_ok=True)
    (OUT / "dask_runner.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
