"""compute_drift and stationary_thresholds pinned on real flights (January vs December).

Every verdict, threshold and score of one report that takes each path a feature can
(every method, an explicit threshold, ``none``, a noise-floored Jensen-Shannon over 98
airports, an excluded id, a datetime, weights) and of the reference's own motion, so
splitting the functions into steps keeps their answers to the digit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from ctloop.data.drift import compute_drift, stationary_thresholds
from ctloop.examples.flights.data import flights

COLUMNS = ["dep_delay", "distance", "hour", "air_time", "origin", "carrier", "dest", "flight",
           "time_hour"]
FOUND = "threshold from the reference's own motion (the furthest of its 4 chunks from the rest)"


@pytest.fixture(scope="module")
def months() -> tuple[pd.DataFrame, pd.DataFrame]:
    return flights([1])[COLUMNS], flights([12])[COLUMNS]


def _rows(report: Any) -> list[tuple[Any, ...]]:
    return [(f.column, f.type, f.method, f.threshold, f.score, f.drifted, f.n_reference,
             f.n_current, f.note, f.in_share, f.weight) for f in report.features]


def test_every_path_of_a_feature_is_pinned(months: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    jan, dec = months
    config: dict[str, dict[str, Any]] = {
        "dep_delay": {"method": "ks"}, "distance": {"method": "psi"},
        "origin": {"method": "linf", "threshold": 0.01},
        "carrier": {"method": "chisquare"}, "hour": {"method": "none"}}
    report = compute_drift(jan, dec, config=config, exclude=["flight", "time_hour"],
                           weights={"dep_delay": 2.0, "dest": 0.5, "origin": 1.0},
                           drift_share=0.3)
    n = (26398, 27020)
    a = pytest.approx
    assert _rows(report) == [
        ("dep_delay", "float", "ks", 0.05, a(5.915975914827954e-216), True, *n, "", True, 2.0),
        ("distance", "integer", "psi", 0.2, a(0.01724708446159534), False, *n, "", True, 0.0),
        ("hour", "integer", "none", None, None, False, *n, "not tested (drift method: none)",
         True, 0.0),
        ("air_time", "float", "wasserstein", 0.05, a(0.08962137442584818), True, *n, "", True,
         0.0),
        ("origin", "string", "linf", 0.01, a(0.02788186183048097), True, *n, "", True, 1.0),
        ("carrier", "string", "chisquare", 0.05, a(5.733141410081279e-15), True, *n, "", True,
         0.0),
        ("dest", "string", "jensenshannon", a(0.1809729953942724), a(0.11894317905273356),
         False, *n, "", True, 0.5),
        ("flight", "integer", "wasserstein", 0.05, a(0.11270999369756261), True, *n,
         "not in the share", False, 0.0),
        ("time_hour", "datetime", "auto", None, None, False, *n,
         "no drift test for datetime columns; not in the share", False, 0.0),
    ]
    assert report.share_drifted == a(0.8571428571428571) and report.dataset_drifted
    assert report["dep_delay"].measures == {
        "ks": a(0.13632055148642824), "ks_pvalue": a(5.915975914827954e-216),
        "wasserstein": a(6.301), "wasserstein_norm": a(0.17353795054612053),
        "psi": a(0.09475304881682377)}
    assert report["dest"].measures == {
        "chisquare": a(956.4089234992389), "chisquare_pvalue": a(2.473173540197244e-141),
        "jensenshannon": a(0.11894317905273356), "linf": a(0.009368885413957917),
        "categories": 98.0}


def test_the_references_own_motion_is_pinned(
        months: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    jan, dec = months
    features = COLUMNS[:7]
    settings = stationary_thresholds(
        jan, features, chunk_rows=len(dec) // 4,
        config={"hour": {"method": "none"}, "dep_delay": {"method": "ks"},
                "air_time": {"threshold": 0.5}})
    stationary = {"chunks": 4, "threshold_from": "stationary"}
    a = pytest.approx
    assert settings == {
        "dep_delay": {"method": "ks", "baseline": a(6.516519560391277e-70), **stationary},
        "distance": {"method": "wasserstein", "baseline": a(0.048924372217004096),
                     **stationary},
        "hour": {"method": "none"},
        "air_time": {"threshold": 0.5, "method": "wasserstein"},
        "origin": {"method": "jensenshannon", "baseline": a(0.01284113166879023),
                   **stationary},
        "carrier": {"method": "jensenshannon", "baseline": a(0.03462130990128817),
                    **stationary},
        "dest": {"method": "jensenshannon", "baseline": a(0.055752842375499614), **stationary},
    }
    report = compute_drift(jan[features], dec[features], config=settings)
    assert [(f.column, f.method, f.threshold, f.score, f.drifted, f.note)
            for f in report.features] == [
        ("dep_delay", "ks", a(6.516519560391277e-70), a(5.915975914827954e-216), True, FOUND),
        ("distance", "wasserstein", 0.05, a(0.08953209317634055), True, ""),
        ("hour", "none", None, None, False, "not tested (drift method: none)"),
        ("air_time", "wasserstein", 0.5, a(0.08962137442584818), False, ""),
        ("origin", "jensenshannon", 0.05, a(0.02571661583935291), False, ""),
        ("carrier", "jensenshannon", a(0.07116616072449199), a(0.037230664425928615), False,
         ""),
        ("dest", "jensenshannon", a(0.1809729953942724), a(0.11894317905273356), False, ""),
    ]


def test_columns_that_cannot_be_tested_say_why() -> None:
    ref = pd.DataFrame({"x": [1.0, 2.0, 3.0] * 50, "s": ["a", "b", "c"] * 50,
                        "n": [np.nan] * 150})
    cur = pd.DataFrame({"x": [np.inf] * 150, "s": [1, 2, 3] * 50, "n": [np.nan] * 150})
    report = compute_drift(ref, cur)
    assert [(f.column, f.method, f.drifted, f.n_reference, f.n_current, f.note)
            for f in report.features] == [
        ("x", "auto", True, 150, 150, "all 150 values of the current side are infinite"),
        ("s", "auto", False, 150, 150, "type changed from string to integer; not comparable"),
        ("n", "auto", False, 0, 0, "no values on one side"),
    ]
