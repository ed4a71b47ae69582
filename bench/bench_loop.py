"""Benchmark: the flights year replayed through the declared loop, and what one fit costs.

Two parts, run by hand:

1. **fit**: a 200-tree LightGBM model on three months of flights, interleaved and
   repeated: a plain ``LGBMClassifier`` (library defaults, every core; and on one
   thread, the like-for-like floor of ours),
   ``fit_model`` on two threads and ``fit_model`` as it is (one thread, ``deterministic``,
   row-wise histograms). Each is fitted twice on the same rows to show whether the model
   file is identical.
2. **replay**: ``ctloop demo --months 2-12`` (bootstrap on January, then every month
   served over HTTP, labelled, monitored, retrained, gated) in a fresh project. Wall
   time per span and in total against the floor: the sum of the model fits (the
   ``train`` steps) of the same run; the infra checks (a fresh child per candidate)
   are reported beside it. Building the month files from the feature store happens
   once before the replay and is timed apart (a live loop gets them landed).

    .venv/bin/python bench/bench_loop.py
    .venv/bin/python bench/bench_loop.py --repeats 1 --months 2-6   # quick
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics as pystats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


def _fit_rows() -> tuple[Any, Any, Any]:
    from ctloop.examples.flights.demo import LABEL, model_features
    from ctloop.examples.flights.features import training_set

    frame = training_set([1, 2, 3]).to_pandas()
    return frame, model_features(), LABEL


def _sha(model: Any) -> str:
    return hashlib.sha256(model.booster_.model_to_string().encode()).hexdigest()[:12]


def bench_fit(repeats: int, trees: int) -> dict[str, Any]:
    import lightgbm as lgb

    from ctloop.models import fit_model
    from ctloop.models.flavors import as_categories
    from ctloop.models.signature import Signature

    frame, features, label = _fit_rows()
    signature = Signature.from_frame(frame, features, {"name": label, "type": "probability"})
    x = as_categories(signature.prepare(frame, what="rows"))
    y = frame[label].to_numpy()

    def plain(**params: Any) -> tuple[float, str]:
        started = time.perf_counter()
        model = lgb.LGBMClassifier(n_estimators=trees, random_state=0, verbose=-1,
                                   **params).fit(x, y)
        return time.perf_counter() - started, _sha(model)

    def ours(**params: Any) -> tuple[float, str]:
        trained = fit_model(frame, label=label, features=features, algorithm="lightgbm",
                            params={"n_estimators": trees, **params})
        return trained.training_seconds, _sha(trained.model)

    cases = {"plain LGBMClassifier": plain,
             "plain LGBMClassifier, one thread": lambda: plain(n_jobs=1),
             "fit_model, two threads": lambda: ours(n_jobs=2),
             "fit_model (one thread, deterministic)": lambda: ours()}
    times: dict[str, list[float]] = {k: [] for k in cases}
    hashes: dict[str, set[str]] = {k: set() for k in cases}
    for _ in range(repeats):
        for name, case in cases.items():  # interleaved, so load hits all alike
            for _twice in range(2):
                seconds, sha = case()
                times[name].append(seconds)
                hashes[name].add(sha)
    base = pystats.median(times["plain LGBMClassifier"])
    out = {}
    for name in cases:
        median = pystats.median(times[name])
        out[name] = {"median_s": round(median, 2), "vs_plain": round(median / base, 2),
                     "identical_models": len(hashes[name]) == 1}
        print(f"  {name:42s} median {median:6.2f} s  x{median / base:5.2f} of plain  "
              f"identical twice: {len(hashes[name]) == 1}")
    return out


def bench_replay(months: range) -> dict[str, Any]:
    from ctloop.core.settings import load_settings
    from ctloop.examples.flights.demo import write_spans
    from ctloop.metadata import open_metadata_store

    with tempfile.TemporaryDirectory(prefix="ctloop-bench-loop-") as tmp:
        os.chdir(tmp)
        settings = load_settings()
        started = time.perf_counter()
        folder = settings.home / "demo"
        write_spans(folder / "archive", folder / "spans", range(months.start - 1, months.stop))
        prepare = time.perf_counter() - started
        marks: dict[str, float] = {}
        phases: list[tuple[str, float]] = []  # (phase, when it began), in order

        def on_phase(span: str, phase: str) -> None:
            marks.setdefault(span, time.perf_counter())
            phases.append((phase, time.perf_counter()))

        from ctloop.examples.flights.demo import run_demo

        started = time.perf_counter()
        result = run_demo(settings, months=months, on_phase=on_phase)
        total = time.perf_counter() - started
        store = open_metadata_store(settings.metadata_url)
        fits = infra = 0.0
        for run in store.list_runs(limit=1000):
            if run.pipeline != "loop_train":
                continue
            for step in store.get_steps(run.id):
                if step.started_at and step.ended_at:
                    seconds = (step.ended_at - step.started_at).total_seconds()
                    fits += seconds if step.name == "train" else 0.0
                    infra += seconds if step.name == "infra_check" else 0.0
        store.close()
        ends = [*list(marks.values())[1:], started + total]
        per_span = {s: round(end - t, 2) for (s, t), end in zip(marks.items(), ends,
                                                                  strict=True)}
        promoted = [s.span for s in result.spans if s.promoted]
        by_phase: dict[str, float] = {}
        for (phase, began), (_, ended) in zip(phases, [*phases[1:], ("end", started + total)],
                                              strict=True):
            by_phase[phase] = by_phase.get(phase, 0.0) + ended - began
    print(f"  spans built from the feature store: {prepare:.1f} s (once, before the replay)")
    for span, seconds in per_span.items():
        print(f"  {span}: {seconds:6.2f} s")
    print(f"  replay total {total:.1f} s for {len(per_span)} spans; model fits {fits:.1f} s "
          f"(x{total / max(fits, 1e-9):.1f} of the fits); infra checks {infra:.1f} s; "
          f"promoted on {', '.join(promoted)}")
    print("  wall time by phase (training includes the fits and infra checks): " + ", ".join(
        f"{k} {v:.1f} s" for k, v in sorted(by_phase.items(), key=lambda kv: -kv[1])))
    return {"prepare_s": round(prepare, 1), "total_s": round(total, 1),
            "fits_s": round(fits, 1), "infra_checks_s": round(infra, 1),
            "total_vs_fits": round(total / max(fits, 1e-9), 2), "per_span_s": per_span,
            "promoted": promoted, "by_phase_s": {k: round(v, 1) for k, v in by_phase.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--months", default="2-12")
    parser.add_argument("--skip-fit", action="store_true")
    args = parser.parse_args()
    lo, _, hi = args.months.partition("-")
    results: dict[str, Any] = {"python": sys.version.split()[0], "cpus": os.cpu_count(),
                               "load_avg": os.getloadavg()}
    if not args.skip_fit:
        print(f"fit: {args.trees} trees, flights Jan-Mar, {args.repeats} interleaved rounds")
        results["fit"] = bench_fit(args.repeats, args.trees)
    print(f"replay: flights months {args.months} through the loop")
    results["replay"] = bench_replay(range(int(lo), int(hi or lo) + 1))
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_loop.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {OUT / 'bench_loop.json'}")


if __name__ == "__main__":
    main()
