"""Benchmark: how long the ``ctloop`` command takes to start, against ``python -c pass``.

Each command runs as a fresh process (the console script's own interpreter),
interleaved with the baseline and repeated, in an empty project folder. The
median wall time of each is reported with its ratio to the baseline measured
in the same rounds, and the time above the baseline (what ctloop itself adds).
The goal is ``ctloop --help`` and light commands under 0.3 s on a quiet
machine; on a shared one quote the ratios and the overhead. ``--before SRC``
also times another checkout's ``src`` folder (e.g. the main branch) in the same
rounds, as ``before:`` rows. Run by hand:

    .venv/bin/python bench/bench_cli_startup.py
    .venv/bin/python bench/bench_cli_startup.py --rounds 5   # quick
    .venv/bin/python bench/bench_cli_startup.py --before ../main/src

A newcomer's mistakes (a wrong loop name, a config typo, a missing file, an id looked
up in an empty project) are timed too, as ``mistake:`` rows, in a folder whose
ctloop.toml declares a loop: each must answer (exit 2) before pandas, pyarrow or
SQLAlchemy load, so its ratio to ``ctloop --version`` stays near 1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"

COMMANDS: dict[str, list[str]] = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "ctloop --version": [sys.executable, "-m", "ctloop", "--version"],
    "ctloop --help": [sys.executable, "-m", "ctloop", "--help"],
    "ctloop runs --help": [sys.executable, "-m", "ctloop", "runs", "--help"],
    "ctloop run --help": [sys.executable, "-m", "ctloop", "run", "--help"],
    "ctloop data --help": [sys.executable, "-m", "ctloop", "data", "--help"],
    "ctloop runs list": [sys.executable, "-m", "ctloop", "runs", "list"],
}
# A newcomer's mistakes (issue 23.4): each must answer (exit 2, one line) before the
# heavy stack loads; run in a folder with a ctloop.toml declaring the loop ``shop``.
_CTLOOP = [sys.executable, "-m", "ctloop"]
MISTAKES: dict[str, list[str]] = {
    "mistake: loop replay nosuch": [*_CTLOOP, "loop", "replay", "nosuch"],
    "mistake: loop status nosuch": [*_CTLOOP, "loop", "status", "nosuch"],
    "mistake: loop replay (toml typo)": [*_CTLOOP, "loop", "replay", "typo"],
    "mistake: data validate nosuch": [*_CTLOOP, "data", "validate", "nosuch.parquet",
                                      "--schema", "schema.yaml"],
    "mistake: predict nosuch in out": [*_CTLOOP, "predict", "nosuch", "in.parquet",
                                       "out.parquet"],
    "mistake: runs show nosuch": [*_CTLOOP, "runs", "show", "nosuch"],
    "mistake: models show nosuch": [*_CTLOOP, "models", "show", "nosuch"],
}
_TOML = """[ctloop.loops.shop]
model = "shop"
data = "data/*.parquet"
label = "bought"
event_time = "ts"

[ctloop.loops.typo]
model = "typo"
data = "data/*.parquet"
label = "bought"
event_tme = "ts"
"""
LIGHT = ["ctloop --version", "ctloop --help", "ctloop runs --help", "ctloop run --help",
         "ctloop data --help"]


def _time(argv: list[str], cwd: Path, src: str | None = None, code: int = 0) -> float:
    env = dict(os.environ, PYTHONPATH=src) if src else None
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, timeout=120, env=env)
    elapsed = time.perf_counter() - start
    if done.returncode != code:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode()[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--before", help="a src folder to time as well, e.g. ../main/src")
    parser.add_argument("--no-mistakes", action="store_true",
                        help="leave out the error paths (a newcomer's mistakes)")
    args = parser.parse_args()
    plan: dict[str, tuple[list[str], str | None]] = {n: (a, None) for n, a in COMMANDS.items()}
    if not args.no_mistakes:
        plan.update({n: (a, None) for n, a in MISTAKES.items()})
    if args.before:
        src = str(Path(args.before).resolve())
        plan.update({f"before: {n}": (a, src) for n, a in COMMANDS.items()
                     if n in LIGHT and n != "ctloop --version"})  # new in this version
        if not args.no_mistakes:
            plan.update({f"before: {n}": (a, src) for n, a in MISTAKES.items()})
    samples: dict[str, list[float]] = {name: [] for name in plan}
    with tempfile.TemporaryDirectory(prefix="ctloop-bench-cli-") as tmp:
        project = Path(tmp)

        fresh = project / "newcomer"  # no store yet: `runs list` above creates one
        fresh.mkdir()
        (fresh / "ctloop.toml").write_text(_TOML)
        (fresh / "schema.yaml").write_text("columns: {}\n")

        def timed(name: str, argv: list[str], src: str | None) -> float:
            if "mistake:" in name:
                return _time(argv, fresh, src, code=2)
            return _time(argv, project, src)

        for name, (argv, src) in plan.items():  # warm the OS file cache once
            timed(name, argv, src)
        for _ in range(args.rounds):
            for name, (argv, src) in plan.items():
                samples[name].append(timed(name, argv, src))
    base = statistics.median(samples["python -c pass"])
    rows = []
    print(f"{'command':<40} {'median s':>9} {'min s':>7} {'x baseline':>11} {'ctloop adds s':>14}")
    for name, values in samples.items():
        median = statistics.median(values)
        rows.append({"command": name, "median_s": round(median, 4), "min_s": round(min(values), 4),
                     "ratio": round(median / base, 2), "overhead_s": round(median - base, 4)})
        print(f"{name:<40} {median:>9.3f} {min(values):>7.3f} {median / base:>11.1f} "
              f"{median - base:>14.3f}")
    slowest = max(statistics.median(samples[n]) for n in LIGHT)
    print(f"\nslowest light command: {slowest:.3f} s median "
          f"({'under' if slowest < 0.3 else 'over'} the 0.3 s goal on this machine, "
          f"baseline {base:.3f} s)")
    version = statistics.median(samples["ctloop --version"])
    for name in MISTAKES:
        if name in samples:
            print(f"{name}: {statistics.median(samples[name]) / version:.2f}x ctloop --version")
    for name in [*LIGHT, *MISTAKES]:
        if f"before: {name}" in samples:
            before = statistics.median(samples[f"before: {name}"])
            print(f"{name}: {before / statistics.median(samples[name]):.1f}x faster than before")
    OUT.mkdir(exist_ok=True)
    (OUT / "cli_startup.json").write_text(json.dumps({"rounds": args.rounds, "rows": rows},
                                                     indent=2))


if __name__ == "__main__":
    main()
