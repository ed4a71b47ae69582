"""Orchestration overhead of the engine: 100 no-op steps, local runner, SQLite.

Run by hand:  .venv/bin/python bench/bench_orchestration.py [--steps 100] [--workers 1]

Prints the first run, the fully cached rerun, and the per-step overhead
against calling the same functions directly, for two shapes: independent
no-op steps (no artifacts) and a chain whose steps pass a small artifact on.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from ctloop.core.settings import load_settings
from ctloop.pipeline import Input, Metrics, Output, component, pipeline
from ctloop.pipeline.api import make_engine


@component
def noop(i: int) -> None:
    """Does nothing; measures the engine alone."""


@component
def link(i: int, out: Output[Metrics], prev: Input[Metrics] | None = None) -> None:
    """Reads the previous small artifact (if any) and writes one."""
    value = prev.read()["i"] if prev is not None else 0
    out.write({"i": value + i})


def make_pipelines(n: int):  # type: ignore[no-untyped-def]
    @pipeline
    def flat():
        for i in range(n):
            noop(i=i)

    @pipeline
    def chain():
        prev = None
        for i in range(n):
            prev = link(i=i, prev=prev) if prev is not None else link(i=i)

    return flat, chain


def direct_flat(n: int) -> float:
    t = time.perf_counter()
    for i in range(n):
        noop.func(i=i)  # type: ignore[misc]
    return time.perf_counter() - t


def direct_chain(n: int, folder: Path) -> float:
    t = time.perf_counter()
    prev = None
    for i in range(n):
        out = Metrics(folder / f"m{i}.json")
        link.func(i=i, out=out, prev=prev)  # type: ignore[misc]
        prev = out
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    n = args.steps
    flat, chain = make_pipelines(n)
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        settings = load_settings(Path(tmp))
        engine = make_engine(settings, max_workers=args.workers)
        engine.store.list_runs(limit=1)  # open and migrate the database outside the timing
        rows = []
        for label, pipe, direct in (
            ("flat no-op", flat, lambda: direct_flat(n)),
            ("chain + artifact", chain, lambda: direct_chain(n, Path(tmp))),
        ):
            base = direct()
            t = time.perf_counter()
            first = engine.run(pipe)
            first_s = time.perf_counter() - t
            assert first.ok, first.run.error
            t = time.perf_counter()
            cached = engine.run(pipe)
            cached_s = time.perf_counter() - t
            assert {s.status for s in cached.steps.values()} == {"cached"}
            rows.append((label, base, first_s, cached_s))
    print(f"{n} steps, local runner, max_workers={args.workers}, SQLite metadata, "
          f"python {sys.version.split()[0]}")
    print(f"{'shape':<18} {'direct':>9} {'first run':>10} {'per step':>9} "
          f"{'cached rerun':>13} {'per step':>9}")
    for label, base, first_s, cached_s in rows:
        per = (first_s - base) / n * 1000
        print(f"{label:<18} {base*1000:>7.1f}ms {first_s:>9.3f}s {per:>7.2f}ms "
              f"{cached_s:>12.3f}s {cached_s / n * 1000:>7.2f}ms")


if __name__ == "__main__":
    main()
