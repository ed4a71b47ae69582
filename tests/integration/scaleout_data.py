"""Partitioned test data and the single-machine oracle for the scale-out statistics tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctloop.data import DatasetStatistics

# KLL k=200: ~1.3% normalised rank error (99% confidence); the data tests allow 3%.
RANK_TOLERANCE = 0.03


def make_partitions(folder: Path, partitions: int = 6, rows: int = 20_000) -> pd.DataFrame:
    """Partitions with different distributions each, nulls, NaN and categories."""
    rng = np.random.default_rng(7)
    frames = []
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(partitions):
        price = rng.lognormal(3 + i * 0.1, 0.5, rows)
        price[rng.random(rows) < 0.02] = np.nan
        df = pd.DataFrame(
            {
                "price": price,
                "qty": rng.integers(-5, 50 + i, rows),
                "carrier": rng.choice(
                    np.array(["UA", "AA", "DL", "B6", None], dtype=object), rows,
                    p=[0.3, 0.3, 0.2, 0.1, 0.1]
                ),
                "late": rng.random(rows) < 0.1 + i * 0.02,
            }
        )
        df.to_parquet(folder / f"part-{i:03d}.parquet", index=False)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def assert_equivalent(got: DatasetStatistics, want: DatasetStatistics, frame: pd.DataFrame) -> None:
    assert got.rows == want.rows == len(frame)
    assert list(got.columns) == list(want.columns)
    for name, col in want.columns.items():
        mine = got[name]
        assert (mine.type, mine.count, mine.missing) == (col.type, col.count, col.missing), name
        if col.numeric is not None:
            a, b = mine.numeric, col.numeric
            assert a is not None
            assert (a.finite, a.nan, a.inf, a.zeros, a.negative) == (
                b.finite,
                b.nan,
                b.inf,
                b.zeros,
                b.negative,
            )
            assert (a.min, a.max) == (b.min, b.max)
            assert a.mean == pytest.approx(b.mean, rel=1e-12)
            assert a.std == pytest.approx(b.std, rel=1e-9)
            clean = frame[name].dropna().to_numpy(dtype=float)
            ranks = [0.01, 0.25, 0.5, 0.75, 0.99]
            for rank, q in zip(ranks, a.quantiles(ranks), strict=True):
                assert abs(np.mean(clean <= q) - rank) < RANK_TOLERANCE, (name, rank)
        if col.categorical is not None:
            assert mine.categorical is not None
            assert mine.categorical.frequencies() == col.categorical.frequencies()
