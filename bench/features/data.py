"""Synthetic data shared by the ctloop and Feast sides of the feature-store benchmark.

Written as parquet (readable by both virtual environments):
    drivers.parquet   online view: 10,000 drivers x 10 days, 10 float features
    weather.parquet   hourly view: 100 locations x 90 days x 24 h, 5 features
    daily.parquet     daily view: 10,000 drivers x 90 days, 3 features
    planes.parquet    static view: 5,000 planes, 3 features (one fixed timestamp)
    entities_<n>.parquet  n entity rows (driver_id, location_id, plane_id, event_timestamp)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

START = pd.Timestamp("2024-01-01")
DAYS = 90
N_DRIVERS, N_LOCATIONS, N_PLANES = 10_000, 100, 5_000


def _floats(rng: np.random.Generator, n: int, k: int, prefix: str) -> dict[str, np.ndarray]:
    return {f"{prefix}{i}": rng.normal(size=n) for i in range(k)}


def generate(folder: Path, entity_sizes: list[int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    if not (folder / "drivers.parquet").exists():
        ids = np.repeat(np.arange(N_DRIVERS), 10)
        days = np.tile(np.arange(10), N_DRIVERS)
        pd.DataFrame(
            {
                "driver_id": ids,
                "event_timestamp": START + pd.to_timedelta(days, unit="D"),
                **_floats(rng, len(ids), 10, "f"),
            }
        ).to_parquet(folder / "drivers.parquet", index=False)
    if not (folder / "weather.parquet").exists():
        hours = DAYS * 24
        loc = np.repeat(np.arange(N_LOCATIONS), hours)
        h = np.tile(np.arange(hours), N_LOCATIONS)
        pd.DataFrame(
            {
                "location_id": loc,
                "event_timestamp": START + pd.to_timedelta(h, unit="h"),
                **_floats(rng, len(loc), 5, "w"),
            }
        ).to_parquet(folder / "weather.parquet", index=False)
    if not (folder / "daily.parquet").exists():
        ids = np.repeat(np.arange(N_DRIVERS), DAYS)
        days = np.tile(np.arange(DAYS), N_DRIVERS)
        pd.DataFrame(
            {
                "driver_id": ids,
                "event_timestamp": START + pd.to_timedelta(days, unit="D"),
                **_floats(rng, len(ids), 3, "d"),
            }
        ).to_parquet(folder / "daily.parquet", index=False)
    if not (folder / "planes.parquet").exists():
        pd.DataFrame(
            {
                "plane_id": np.arange(N_PLANES),
                "event_timestamp": pd.Timestamp("2000-01-01"),
                **_floats(rng, N_PLANES, 3, "p"),
            }
        ).to_parquet(folder / "planes.parquet", index=False)
    for n in entity_sizes:
        path = folder / f"entities_{n}.parquet"
        if path.exists():
            continue
        r = np.random.default_rng(n)
        pd.DataFrame(
            {
                "driver_id": r.integers(0, N_DRIVERS, n),
                "location_id": r.integers(0, N_LOCATIONS, n),
                "plane_id": r.integers(0, N_PLANES, n),
                "event_timestamp": START
                + pd.to_timedelta(r.integers(3600, DAYS * 86_400, n), unit="s"),
            }
        ).to_parquet(path, index=False)
