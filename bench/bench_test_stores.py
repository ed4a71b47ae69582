"""What a unit test pays for its metadata store: a fresh SQLite file against the in-memory one.

    .venv/bin/python bench/bench_test_stores.py [--repeat 20]

Each round does what a registry or serving unit test's fixture and body do with
the store: open a fresh store (SQLite: create the file and run the migrations),
record a run with a step and a model artifact, register three versions, promote
one and read the champion back, then close it. The two stores alternate within
every round so load changes hit both; the medians and their ratio are printed
with the load average (the machine is shared: quote the ratio).
"""


from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ctloop.metadata import (
    ArtifactRecord,
    MetadataStore,
    RunRecord,
    StepRecord,
    new_id,
    open_metadata_store,
)
from ctloop.registry import ModelRegistry
from ctloop.testing.inmemory import InMemoryMetadataStore


def workload(store: MetadataStore) -> None:
    run = store.create_run(RunRecord(id=new_id(), pipeline="p", pipeline_version="v"))
    step = store.save_step(StepRecord(id=new_id(), run_id=run.id, name="train",
                                      component="train", component_version="c"))
    registry = ModelRegistry(store, actor="bench")
    for _ in range(3):
        model = store.add_artifact(ArtifactRecord(id=new_id(), type="Model", uri="file:///m",
                                                  sha256="ab" * 32, size=1,
                                                  producer_step_id=step.id))
        registry.register("m", model.id)
    store.move_alias("m", "champion", 2, actor="bench")
    assert registry.get("m@champion").version == 2


def sqlite_round(folder: Path) -> float:
    started = time.perf_counter()
    store = open_metadata_store(f"sqlite:///{folder / new_id()}.db")
    workload(store)
    store.close()
    return time.perf_counter() - started


def memory_round(_: Path) -> float:
    started = time.perf_counter()
    workload(InMemoryMetadataStore())
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    rounds: dict[str, Callable[[Path], float]] = {"sqlite": sqlite_round, "memory": memory_round}
    times: dict[str, list[float]] = {name: [] for name in rounds}
    with tempfile.TemporaryDirectory() as tmp:
        for fn in rounds.values():  # warm-up: imports, alembic's first load
            fn(Path(tmp))
        for i in range(args.repeat):
            order = list(rounds) if i % 2 == 0 else list(reversed(rounds))
            for name in order:
                times[name].append(rounds[name](Path(tmp)))
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, median in medians.items():
        print(f"{name:>7}: median {median * 1000:8.2f} ms per fixture+test ({args.repeat} rounds)")
    print(f"  ratio: sqlite / memory = {medians['sqlite'] / medians['memory']:.0f}x")


if __name__ == "__main__":
    main()
