"""Benchmark: statistics + drift of 1M rows x 20 columns against a reference of the same size.

Contestants, each in its own subprocess so time and peak memory are its own:

- ``ctloop``: ``compute_statistics`` of both DataFrames + ``compute_drift``;
- ``ctloop-files``: the same, streaming from the parquet files;
- ``numpy``: the naive baseline, one pass per column (shared-bin histograms,
  KS with SciPy for numbers, value counts and chi-squared for categories);
- ``evidently``: Evidently's default data drift report (``DataDriftPreset``) on
  the same frames, run with the Python of a separate venv under
  ``bench/.peers/evidently`` that this script creates (never a ctloop dependency).

Each worker loads the frames first (not timed), then times the computation and
reads its peak resident memory (VmHWM) from /proc. Run by hand:

    .venv/bin/python bench/bench_data_drift.py            # 1,000,000 rows
    .venv/bin/python bench/bench_data_drift.py --rows 100000 --skip-evidently
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
PEERS = HERE / ".peers"
EVIDENTLY_VENV = PEERS / "evidently"
# Evidently 0.7 does not import with pandas 3; its venv pins pandas 2.
EVIDENTLY_REQUIREMENTS = ["evidently==0.7.23", "pandas<3"]
N_NUMERIC = 10
N_CATEGORICAL = 10


def generate(rows: int, folder: Path) -> tuple[Path, Path]:
    """Reference and current parquet files; the current one drifts in a few columns."""
    folder.mkdir(parents=True, exist_ok=True)
    ref_path, cur_path = folder / f"reference-{rows}.parquet", folder / f"current-{rows}.parquet"
    if ref_path.exists() and cur_path.exists():
        return ref_path, cur_path
    for path, seed, drift in ((ref_path, 1, False), (cur_path, 2, True)):
        rng = np.random.default_rng(seed)
        cols: dict[str, np.ndarray] = {}
        for i in range(N_NUMERIC):
            shift = 0.5 if drift and i < 3 else 0.0
            if i % 3 == 0:
                values = rng.normal(shift, 1.0, rows)
            elif i % 3 == 1:
                values = rng.exponential(1.0 + shift, rows)
            else:
                values = rng.integers(0, 1000, rows).astype(float) + shift * 100
            values[rng.random(rows) < 0.01] = np.nan
            cols[f"num_{i}"] = values
        for i in range(N_CATEGORICAL):
            k = 5 + 5 * i
            p = np.linspace(1, 2, k)
            if drift and i < 3:
                p = p[::-1]
            vocabulary = np.array([f"c{i}_{j}" for j in range(k)], dtype=object)
            cols[f"cat_{i}"] = vocabulary[rng.choice(k, rows, p=p / p.sum())]
        pd.DataFrame(cols).to_parquet(path, index=False)
    return ref_path, cur_path


def ensure_evidently() -> Path:
    python = EVIDENTLY_VENV / "bin" / "python"
    probe = [str(python), "-c", "import evidently"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print("installing Evidently into", EVIDENTLY_VENV, "(once; takes a few minutes)")
    subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", *EVIDENTLY_REQUIREMENTS]
    subprocess.run(pip, check=True)
    return python


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_ctloop(ref: pd.DataFrame, cur: pd.DataFrame) -> dict:
    from ctloop.data import compute_drift, compute_statistics

    report = compute_drift(compute_statistics(ref), compute_statistics(cur))
    return {"drifted": sorted(f.column for f in report.drifted)}


def run_ctloop_files(ref_path: Path, cur_path: Path) -> dict:
    from ctloop.data import compute_drift

    report = compute_drift(ref_path, cur_path)
    return {"drifted": sorted(f.column for f in report.drifted)}


def run_numpy(ref: pd.DataFrame, cur: pd.DataFrame) -> dict:
    from scipy import stats

    drifted = []
    for name in ref.columns:
        a, b = ref[name].to_numpy(), cur[name].to_numpy()
        if name.startswith("num_"):
            a, b = a[~np.isnan(a)], b[~np.isnan(b)]
            edges = np.linspace(min(a.min(), b.min()), max(a.max(), b.max()), 51)
            np.histogram(a, edges), np.histogram(b, edges)
            if stats.ks_2samp(a, b).pvalue < 0.05:
                drifted.append(name)
        else:
            va, ca = np.unique(a.astype(str), return_counts=True)
            vb, cb = np.unique(b.astype(str), return_counts=True)
            labels = np.union1d(va, vb)
            table = np.zeros((2, len(labels)))
            table[0, np.searchsorted(labels, va)] = ca
            table[1, np.searchsorted(labels, vb)] = cb
            if stats.chi2_contingency(table)[1] < 0.05:
                drifted.append(name)
    return {"drifted": drifted}


def run_evidently(ref: pd.DataFrame, cur: pd.DataFrame) -> dict:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    snapshot = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)
    snapshot.dict()  # make sure every metric is computed and serialisable
    return {}


def worker(name: str, ref_path: Path, cur_path: Path) -> None:
    """Runs inside the child process: load (untimed), compute (timed), report as JSON."""
    if name == "ctloop-files":
        loaded = current_rss_mb()
        start = time.perf_counter()
        extra = run_ctloop_files(ref_path, cur_path)
    else:
        ref, cur = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
        loaded = current_rss_mb()
        runner = {"ctloop": run_ctloop, "numpy": run_numpy, "evidently": run_evidently}[name]
        start = time.perf_counter()
        extra = runner(ref, cur)
    seconds = time.perf_counter() - start
    result = {"seconds": seconds, "peak_mb": peak_rss_mb(), "loaded_mb": loaded, **extra}
    print(json.dumps(result))


def measure(python: str, name: str, ref_path: Path, cur_path: Path) -> dict:
    cmd = [python, __file__, "--worker", name, str(ref_path), str(cur_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--repeat", type=int, default=1, help="runs per contestant (best kept)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, Path(args.paths[0]), Path(args.paths[1]))
        return

    ref_path, cur_path = generate(args.rows, HERE / "out" / "data_drift")
    cols = N_NUMERIC + N_CATEGORICAL
    print(f"{args.rows:,} rows x {cols} columns, reference and current ({ref_path.parent})")
    contestants = [("numpy", sys.executable), ("ctloop", sys.executable)]
    contestants.append(("ctloop-files", sys.executable))
    if not args.skip_evidently:
        contestants.append(("evidently", str(ensure_evidently())))
    results = {}
    for name, python in contestants:
        runs = [measure(python, name, ref_path, cur_path) for _ in range(args.repeat)]
        results[name] = min(runs, key=lambda r: r["seconds"])
        r = results[name]
        print(
            f"  {name:13s} {r['seconds']:8.2f} s   peak {r['peak_mb']:7.0f} MB"
            f"   (frames loaded: {r['loaded_mb']:.0f} MB)"
            + (f"   drifted: {len(r['drifted'])}" if "drifted" in r else "")
        )
    base = results["ctloop"]["seconds"]
    print("ratios (time of X / time of ctloop):")
    for name, r in results.items():
        print(f"  {name:13s} {r['seconds'] / base:7.1f}x")
    out = HERE / "out" / "bench_data_drift.json"
    out.write_text(json.dumps({"rows": args.rows, "columns": cols, "results": results}, indent=1))
    print("wrote", out)


if __name__ == "__main__":
    main()
