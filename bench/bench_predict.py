"""Benchmark: `ctloop predict` on a 1M-row parquet file vs `LoadedModel.predict` in one pass.

Both sides score the same flights rows with the same LightGBM model (one
OpenMP thread) and write the rows plus a score column to parquet:

- baseline: read the whole file into pandas, ``LoadedModel.predict`` once,
  ``DataFrame.to_parquet`` — the fastest plain way, holding everything at once;
- ctloop: ``ctloop predict NAME INPUT OUTPUT --no-progress`` as a user runs it
  (verified model load, chunked Arrow streaming, the service's validation,
  score + decision, atomic write, a run with lineage in the metadata store).

Each run is its own process, so peak memory is that process's high-water RSS
(VmHWM), imports included.
Runs are interleaved and repeated; the ratios are what to quote on a shared
machine. Run by hand:

    .venv/bin/python bench/bench_predict.py               # 1,000,000 rows, 3 rounds
    .venv/bin/python bench/bench_predict.py --rows 200000 --rounds 2   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

FEATURES = ["origin", "carrier", "hour", "distance", "dep_delay", "month", "day"]

# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the parent (this script).
_PEAK = """
def PEAK():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
"""

_BASELINE = _PEAK + """
import json, sys, time
import pandas as pd
from threadpoolctl import threadpool_limits
from ctloop.models.flavors import load_model
threadpool_limits(1)
started = time.perf_counter()
model = load_model(sys.argv[1])
frame = pd.read_parquet(sys.argv[2])
frame["score"] = model.predict(frame)
frame.to_parquet(sys.argv[3])
seconds = time.perf_counter() - started
rss = PEAK()
print(json.dumps({"seconds": seconds, "rows": len(frame), "peak_rss": rss}))
"""

_CTLOOP = _PEAK + """
import json, sys, time
from threadpoolctl import threadpool_limits
from ctloop.cli.main import main
threadpool_limits(1)
started = time.perf_counter()
code = main(["predict", "bench", sys.argv[1], sys.argv[2], "--overwrite", "--no-progress",
             "--chunk-rows", sys.argv[3], "--json"])
seconds = time.perf_counter() - started
rss = PEAK()
print(json.dumps({"seconds": seconds, "code": code, "peak_rss": rss}), file=sys.stderr)
"""


def _setup(root: Path, rows: int) -> tuple[Path, Path]:
    """A project with one registered champion, and the input file."""
    import pandas as pd

    from ctloop.artifacts import open_artifact_store
    from ctloop.examples.flights.data import flights
    from ctloop.metadata import ArtifactRecord, new_id, open_metadata_store
    from ctloop.models import fit_model
    from ctloop.registry import ModelRegistry

    all_flights = flights()
    fit_model(
        all_flights.sample(50_000, random_state=0),
        label="delayed",
        features=FEATURES,
        algorithm="lightgbm",
        params={"n_estimators": 100, "n_jobs": 1},
    ).save(root / "model")
    data = all_flights.sample(rows, replace=True, random_state=1)  # every column, as users keep
    source = root / "input.parquet"
    pd.DataFrame(data).reset_index(drop=True).to_parquet(source, row_group_size=100_000)
    os.chdir(root)
    store, artifacts = open_metadata_store(), open_artifact_store()
    stored = artifacts.put(root / "model")
    art = store.add_artifact(
        ArtifactRecord(new_id(), "Model", stored.uri, stored.sha256, stored.size)
    )
    registry = ModelRegistry(store, actor="bench")
    registry.register("bench", art.id)
    registry.promote("bench", 1)
    store.close()
    return root / "model", source


def _run(code: str, *args: str, cwd: Path) -> dict[str, float]:
    """Run a snippet in a fresh process; its last stderr line (ctloop) or stdout line is JSON."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, check=True
    )
    stream = proc.stderr if code is _CTLOOP else proc.stdout
    return json.loads(stream.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunk-rows", type=int, default=65_536)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        root = Path(tmp)
        model, source = _setup(root, args.rows)
        print(
            f"{args.rows:,} rows, {source.stat().st_size / 2**20:.0f} MiB parquet; "
            f"LightGBM 100 trees; {args.rounds} interleaved rounds"
        )
        base: list[dict[str, float]] = []
        ours: list[dict[str, float]] = []
        for i in range(args.rounds):
            base.append(_run(_BASELINE, str(model), str(source), str(root / "b.parquet"), cwd=root))
            ours.append(
                _run(_CTLOOP, str(source), str(root / "c.parquet"), str(args.chunk_rows), cwd=root)
            )
            assert ours[-1]["code"] == 0
            print(
                f"round {i + 1}: baseline {base[-1]['seconds']:.2f} s "
                f"{base[-1]['peak_rss'] / 2**20:.0f} MiB | ctloop predict "
                f"{ours[-1]['seconds']:.2f} s {ours[-1]['peak_rss'] / 2**20:.0f} MiB"
            )
        b_s = statistics.median(r["seconds"] for r in base)
        o_s = statistics.median(r["seconds"] for r in ours)
        b_m = statistics.median(r["peak_rss"] for r in base)
        o_m = statistics.median(r["peak_rss"] for r in ours)
        print(
            f"median rows/s: baseline {args.rows / b_s:,.0f}, ctloop predict "
            f"{args.rows / o_s:,.0f} (ctloop/baseline throughput {b_s / o_s:.2f}x)"
        )
        print(
            f"median peak RSS: baseline {b_m / 2**20:.0f} MiB, ctloop predict "
            f"{o_m / 2**20:.0f} MiB (ctloop/baseline memory {o_m / b_m:.2f}x)"
        )


if __name__ == "__main__":
    main()
