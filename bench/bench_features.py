"""Feature store benchmark: ctloop vs Feast on the same data, in the same run.

    .venv/bin/python bench/bench_features.py [--rows 1000000] [--skip-feast] [--feast-full]

(a) online lookups of 10 features for 1 and for 100 entities, p50/p99: Feast (SQLite
    online store), ctloop (SQLite and Redis), and a raw SQLite primary-key lookup;
(b) point-in-time retrieval of 3 views (hourly weather, daily, static) for --rows entity
    rows: ctloop, a raw DuckDB ASOF JOIN (the floor), and Feast's file offline store
    (3 views at 10,000 rows and 2 views at --rows; --feast-full adds 3 views at --rows);
(c) opening a feature store in a fresh process and doing one lookup.

Feast lives in its own virtual environment, bench/.peers/feast (created on first
use with `pip install feast`), never in ctloop's dependencies. Each part runs in its
own process; Feast's offline runs get a 12 GB address-space cap and a timeout and
report "out of memory" / "timed out" instead of taking the machine down. Results go
to bench/out/features.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FEAST_VENV = HERE / ".peers" / "feast"
FEAST_PY = FEAST_VENV / "bin" / "python"
CTLOOP_PY = Path(sys.executable)
OUT = HERE / "out"
MEM_CAP = 12 * 1024**3

sys.path.insert(0, str(HERE))
from features.data import generate  # noqa: E402


def ensure_feast() -> None:
    if (
        FEAST_PY.exists()
        and subprocess.run([FEAST_PY, "-c", "import feast"], capture_output=True).returncode == 0
    ):
        return
    print("installing Feast into bench/.peers/feast (a few minutes) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", FEAST_VENV], check=True)
    subprocess.run([FEAST_PY, "-m", "pip", "install", "-q", "feast"], check=True)


def run(
    python: Path, script: str, *args: object, cap: bool = False, timeout: float = 600
) -> tuple[dict | str, float]:
    """Run a part in a fresh process; return (its JSON or a failure word, wall seconds)."""

    def limit() -> None:
        if cap:
            resource.setrlimit(resource.RLIMIT_AS, (MEM_CAP, MEM_CAP))

    env = {
        **os.environ,
        "PYTHONPATH": str(HERE),
        "FEAST_USAGE": "False",
        "PYTHONWARNINGS": "ignore",
    }
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [str(python), str(HERE / "features" / script), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=limit,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return f"timed out (> {timeout:.0f} s)", time.perf_counter() - start
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        err = proc.stderr[-3000:]
        oom = any(
            s in err
            for s in (
                "MemoryError",
                "bad_alloc",
                "Cannot allocate",
                "out of memory",
                "OutOfMemory",
                "std::bad_alloc",
            )
        )
        if oom or proc.returncode in (-9, 137):
            return "out of memory (> 12 GB)", wall
        return f"failed: {err.strip().splitlines()[-1] if err.strip() else proc.returncode}", wall
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def fmt(value: object, key: str) -> str:
    if isinstance(value, dict):
        v = value.get(key)
        return f"{v:.3f}" if isinstance(v, float) else str(v)
    return str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--skip-feast", action="store_true")
    parser.add_argument("--feast-full", action="store_true")
    parser.add_argument("--feast-timeout", type=float, default=300)
    opts = parser.parse_args()

    data = OUT / "features_data"
    feast_small = 10_000
    generate(data, sorted({opts.rows, feast_small}))
    work = Path(tempfile.mkdtemp(prefix="ctloop-bench-features-"))
    home, repo = work / "ctloop", work / "feast"
    results: dict = {"rows": opts.rows, "command": " ".join([sys.executable, *sys.argv])}

    print("ctloop setup ...", flush=True)
    results["ctloop_setup"], _ = run(CTLOOP_PY, "ctloop_part.py", "setup", data, home)
    print("online lookups ...", flush=True)
    results["raw_sqlite"], _ = run(CTLOOP_PY, "ctloop_part.py", "raw_sqlite", data, home)
    results["ctloop_sqlite"], _ = run(CTLOOP_PY, "ctloop_part.py", "online", data, home)
    results["ctloop_redis"], _ = run(
        CTLOOP_PY,
        "ctloop_part.py",
        "online",
        data,
        home,
        "redis://127.0.0.1:6379/0?prefix=ctloop_bench",
    )
    opens = [run(CTLOOP_PY, "ctloop_part.py", "open", data, home)[1] for _ in range(3)]
    results["ctloop_open_s"] = sorted(opens)[1]

    print(f"offline, {opts.rows:,} entity rows ...", flush=True)
    results["raw_duckdb_3"], _ = run(CTLOOP_PY, "ctloop_part.py", "raw_duckdb", data, opts.rows, 3)
    results["ctloop_offline_3"], _ = run(CTLOOP_PY, "ctloop_part.py", "offline", data, opts.rows, 3)
    results["raw_duckdb_2"], _ = run(CTLOOP_PY, "ctloop_part.py", "raw_duckdb", data, opts.rows, 2)
    results["ctloop_offline_2"], _ = run(CTLOOP_PY, "ctloop_part.py", "offline", data, opts.rows, 2)

    if not opts.skip_feast:
        ensure_feast()
        print("Feast setup ...", flush=True)
        results["feast_setup"], _ = run(FEAST_PY, "feast_part.py", "setup", data, repo)
        results["feast_online"], _ = run(FEAST_PY, "feast_part.py", "online", data, repo)
        opens = [run(FEAST_PY, "feast_part.py", "open", data, repo)[1] for _ in range(3)]
        results["feast_open_s"] = sorted(opens)[1]
        plan = [(3, feast_small), (2, opts.rows)] + ([(3, opts.rows)] if opts.feast_full else [])
        for views, n in plan:
            print(f"Feast offline, {views} views x {n:,} rows ...", flush=True)
            results[f"feast_offline_{views}_{n}"], _ = run(
                FEAST_PY,
                "feast_part.py",
                "offline",
                data,
                repo,
                n,
                views,
                cap=True,
                timeout=opts.feast_timeout,
            )

    OUT.mkdir(exist_ok=True)
    (OUT / "features.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print("\nonline, ms          1 entity p50/p99      100 entities p50/p99")
    for name, key in (
        ("raw sqlite", "raw_sqlite"),
        ("ctloop sqlite", "ctloop_sqlite"),
        ("ctloop redis", "ctloop_redis"),
    ):
        r = results[key]
        print(
            f"{name:18}  {fmt(r.get('online_1') if isinstance(r, dict) else r, 'p50_ms'):>8} "
            f"{fmt(r.get('online_1') if isinstance(r, dict) else r, 'p99_ms'):>8}      "
            f"{fmt(r.get('online_100') if isinstance(r, dict) else r, 'p50_ms'):>8} "
            f"{fmt(r.get('online_100') if isinstance(r, dict) else r, 'p99_ms'):>8}"
        )
    if "feast_online" in results and isinstance(results["feast_online"], dict):
        r = results["feast_online"]
        one, many = r["online_1"], r["online_100"]
        print(
            f"{'feast sqlite':18}  {fmt(one, 'p50_ms'):>8} {fmt(one, 'p99_ms'):>8}      "
            f"{fmt(many, 'p50_ms'):>8} {fmt(many, 'p99_ms'):>8}"
        )
    print("\noffline             seconds   peak MB")
    for key, value in results.items():
        if key.startswith(("raw_duckdb", "ctloop_offline", "feast_offline")):
            print(f"{key:28} {fmt(value, 'seconds'):>10} {fmt(value, 'peak_mb'):>10}")
    print(
        f"\nopen + 1 lookup, fresh process: ctloop {results['ctloop_open_s']:.2f} s"
        + (f", Feast {results['feast_open_s']:.2f} s" if "feast_open_s" in results else "")
    )


if __name__ == "__main__":
    main()
