"""A small generated history for trying a loop: weekly spans of a churn-like task.

``write_sample_spans`` writes one parquet file per span with a known story: a
concept change (the label's dependence on ``usage`` flips) at ``change_at``, a
covariate shift (``tenure`` and ``spend`` move) at ``shift_at``, and optionally
one defective span (a renamed column, negative values, an unknown plan).
Everything is seeded, so the same arguments write the same bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["sample_span", "write_sample_spans"]

PLANS = ["basic", "plus", "pro"]


def sample_span(index: int, rows: int = 800, *, change_at: int | None = None,
                shift_at: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Span ``index`` (a week starting 2024-01-01 plus ``index`` weeks)."""
    rng = np.random.default_rng([seed, index])
    start = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(weeks=index)
    shifted = shift_at is not None and index >= shift_at
    changed = change_at is not None and index >= change_at
    usage = rng.normal(0, 1, rows)
    tenure = rng.normal(2.5 if shifted else 0.0, 1, rows)
    spend = rng.normal(2.5 if shifted else 0.0, 1, rows)
    plan = rng.choice(PLANS, rows, p=[0.5, 0.3, 0.2])
    plan_effect = pd.Series(plan).map({"basic": 0.3, "plus": 0.0, "pro": -0.3}).to_numpy()
    logit = (-2.0 if changed else 2.0) * usage - 0.3 * tenure + plan_effect
    label = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    seconds = np.sort(rng.uniform(0, 7 * 86400 - 1, rows)).round(3)
    return pd.DataFrame({
        "customer": [f"w{index:02d}-{i:05d}" for i in range(rows)],
        "ts": (pd.to_datetime(start) + pd.to_timedelta(seconds, unit="s")).astype(
            "datetime64[ms, UTC]"),
        "usage": usage, "tenure": tenure, "spend": spend, "plan": plan, "churned": label,
    })


def write_sample_spans(folder: Path, spans: int = 8, rows: int = 800, *,
                       change_at: int | None = 3, shift_at: int | None = 6,
                       defective_at: int | None = None, seed: int = 0) -> list[Path]:
    """One ``week-NN.parquet`` per span in ``folder``; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(spans):
        frame = sample_span(index, rows, change_at=change_at, shift_at=shift_at, seed=seed)
        if index == defective_at:
            frame = frame.rename(columns={"spend": "spending"})
            frame.loc[frame.index % 20 == 0, "usage"] = np.nan
            frame.loc[frame.index % 30 == 0, "plan"] = "enterprise-trial"
        path = folder / f"week-{index:02d}.parquet"
        frame.to_parquet(path, index=False)
        paths.append(path)
    return paths
