"""Drift thresholds from the reference's own motion (``stationary_thresholds``): a batch
no further from the reference than its own parts are from each other is not drift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctloop.core.errors import UserInputError
from ctloop.data.drift import MIN_CHUNKS, compute_drift, stationary_thresholds


def _wandering(rng: np.random.Generator, chunks: int = 6, rows: int = 2000) -> pd.DataFrame:
    """Six 'months' whose level wanders by about one sd (weather regimes), in time order,
    and a category whose mix moves a little from month to month."""
    levels = rng.normal(0, 1, chunks)
    temp = np.concatenate([rng.normal(level, 1, rows) for level in levels])
    mix = [rng.dirichlet(np.full(3, 30)) for _ in range(chunks)]
    kind = np.concatenate([rng.choice(["a", "b", "c"], rows, p=p) for p in mix])
    return pd.DataFrame({"temp": temp, "kind": kind})


def test_thresholds_are_the_furthest_chunk_from_the_rest() -> None:
    rng = np.random.default_rng(0)
    reference = _wandering(rng)
    settings = stationary_thresholds(reference, ["temp", "kind"], chunk_rows=2000)
    assert settings["temp"]["method"] == "wasserstein"
    assert settings["kind"]["method"] == "jensenshannon"
    # Oracle: each of the six months against the other five, by hand (the function merges
    # the other chunks' sketches, so the two agree within the sketches' rank error).
    furthest = {"temp": 0.0, "kind": 0.0}
    for k in range(6):
        part = reference.iloc[k * 2000:(k + 1) * 2000]
        rest = reference.drop(index=part.index)
        for column, method in (("temp", "wasserstein"), ("kind", "jensenshannon")):
            score = compute_drift(rest, part, columns=[column],
                                  config={column: {"method": method}})[column].score
            assert score is not None
            furthest[column] = max(furthest[column], score)
    for column in ("temp", "kind"):
        assert settings[column]["chunks"] == 6
        assert settings[column]["baseline"] == pytest.approx(furthest[column], rel=0.01)


def test_a_batch_within_the_references_motion_is_not_drift_one_beyond_it_is() -> None:
    rng = np.random.default_rng(1)
    reference = _wandering(rng)
    settings = stationary_thresholds(reference, ["temp"], chunk_rows=2000)
    usual = reference["temp"].iloc[:2000].mean()  # a month like the first one again
    like_before = pd.DataFrame({"temp": rng.normal(usual, 1, 2000)})
    fixed = compute_drift(reference, like_before, columns=["temp"])
    calibrated = compute_drift(reference, like_before, columns=["temp"], config=settings)
    assert fixed["temp"].drifted and not calibrated["temp"].drifted
    assert "reference's own motion" in calibrated["temp"].note
    beyond = pd.DataFrame({"temp": rng.normal(reference["temp"].max(), 1, 2000)})
    assert compute_drift(reference, beyond, columns=["temp"], config=settings)["temp"].drifted


def test_a_stationary_reference_keeps_the_noise_floor_and_its_sensitivity() -> None:
    rng = np.random.default_rng(2)
    reference = pd.DataFrame({"x": rng.normal(0, 1, 12_000)})  # iid: no motion of its own
    settings = stationary_thresholds(reference, ["x"], chunk_rows=2000)
    shifted = pd.DataFrame({"x": rng.normal(0.15, 1, 2000)})
    plain = compute_drift(reference, shifted, columns=["x"])["x"]
    calibrated = compute_drift(reference, shifted, columns=["x"], config=settings)["x"]
    assert calibrated.threshold == pytest.approx(plain.threshold)  # the floor is higher
    assert calibrated.drifted and calibrated.note == ""


def test_small_references_explicit_thresholds_and_bad_sizes() -> None:
    tiny = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0]})
    assert stationary_thresholds(tiny, ["x"], chunk_rows=10) == {"x": {"method": "wasserstein"}}
    reference = _wandering(np.random.default_rng(3))
    kept = stationary_thresholds(reference, ["temp"], chunk_rows=1_000_000,
                                 config={"temp": {"method": "psi", "threshold": 0.3}})
    assert kept == {"temp": {"method": "psi", "threshold": 0.3}}  # one chosen by a person
    one_month = stationary_thresholds(reference, ["temp"], chunk_rows=1_000_000)
    assert one_month["temp"]["chunks"] == MIN_CHUNKS  # never fewer parts than that
    with pytest.raises(UserInputError, match=r"chunk_rows must be >= 1\. Got 0"):
        stationary_thresholds(reference, ["temp"], chunk_rows=0)
