"""judge pinned on real flights (January, 3000 rows): the whole blessing of every case a
rule can meet, so splitting the function along its concerns keeps every verdict, number,
detail and summary as it was. Scores are read off real columns (departure delay ranks
arrival delay well), each candidate built to take one path: floors and changes both ways,
lower-is-better metrics, slices with a minimum size, min_recall, the class check (never
predicted, recall 0, turned off), costs, a metric undefined for the candidate (held) or
for the champion (skipped), the first model, and every error judge raises."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from ctloop.core.errors import UserInputError
from ctloop.examples.flights.data import flights
from ctloop.models.evaluation import evaluate_predictions
from ctloop.models.gate import GateConfig, judge, render_blessing

Case = tuple[str, str, dict[str, Any], dict[str, Any]]


@pytest.fixture(scope="module")
def january() -> pd.DataFrame:
    return flights([1]).sample(3000, random_state=0).reset_index(drop=True)


def _sigmoid(x: Any) -> np.ndarray:
    return np.asarray(1 / (1 + np.exp(-np.asarray(x, dtype=np.float64))))


def _scores(data: pd.DataFrame) -> dict[str, np.ndarray]:
    """Champion and candidates as scores of real columns (one path each)."""
    dep = data["dep_delay"].to_numpy(dtype=np.float64)
    champion = _sigmoid((dep - 15) / 10)
    lga = (data["origin"] == "LGA").to_numpy()
    negative = (data["delayed"] == 0).to_numpy()
    return {
        "champion": champion,
        "sharper": _sigmoid((dep - 12) / 6),
        "weak": _sigmoid((data["hour"].to_numpy(dtype=np.float64) - 14) / 3),
        "lga_reversed": np.where(lga, 1 - champion, champion),
        "timid": champion * 0.4,  # never decides "delayed" at 0.5
        # "delayed" decided only for early flights that were on time: recall 0
        "wrong": np.where(negative & (dep < -5), 0.9, 0.1),
    }


def _report(data: pd.DataFrame, scores: dict[str, np.ndarray], candidate: str,
            champion: str | None = "champion", **options: Any) -> dict[str, Any]:
    models = {"candidate": scores[candidate]}
    if champion is not None:
        models["champion"] = scores[champion]
    return evaluate_predictions(data, models, label="delayed", slice_columns=["origin",
                                "carrier"], n_boot=20, candidate="candidate",
                                baseline="champion" if champion else None, **options)


FULL = {"floors": {"roc_auc": 0.7, "log_loss": 0.6},
        "changes": {"roc_auc": -0.005, "log_loss": 0.0},
        "slices": [{"column": "origin", "metric": "roc_auc", "min_change": -0.02},
                   {"column": "carrier", "metric": "roc_auc", "min_change": -0.05,
                    "min_rows": 500}]}
COSTS = {"fn": 4, "fp": 1}
# name: (candidate, champion or "", gate table, evaluation options)
CASES: dict[str, Case] = {
    "better_but_log_loss_worse": ("sharper", "champion", FULL, {}),
    "weak_fails_everything": ("weak", "champion", FULL, {}),
    "worse_at_one_airport": ("lga_reversed", "champion", FULL, {}),
    "first_model": ("sharper", "", FULL, {}),
    "never_decides_delayed": ("timid", "champion", {"floors": {"roc_auc": 0.6},
                                                    "min_recall": 0.2}, {}),
    "class_check_off": ("timid", "champion", {"floors": {"roc_auc": 0.6},
                                              "keep_classes": False}, {}),
    "recall_zero": ("wrong", "champion", {"min_recall": 0.1, "changes": {"accuracy": -1.0}},
                    {}),
    "precision_floor": ("timid", "champion", {"floors": {"precision": 0.5},
                                              "changes": {"roc_auc": 0.0}}, {}),
    "costs_pass": ("sharper", "champion", {"floors": {"expected_cost": 0.5},
                                           "changes": {"expected_cost": 0.0},
                                           "min_recall": 0.3, "costs": COSTS},
                   {"costs": COSTS}),
    "costs_fail": ("weak", "champion", {"changes": {"expected_cost": 0.0}, "costs": COSTS},
                   {"costs": COSTS}),
}


def _blessing(data: pd.DataFrame, case: Case) -> dict[str, Any]:
    candidate, champion, gate, options = case
    report = _report(data, _scores(data), candidate, champion or None, **options)
    return judge(report, GateConfig.from_dict(gate), champion="champion" if champion else None)


def _one_class(data: pd.DataFrame) -> dict[str, Any]:
    """The on-time flights only: ROC AUC is undefined for both models."""
    on_time = data[data["delayed"] == 0].reset_index(drop=True)
    return _report(on_time, _scores(on_time), "sharper")


def _special(data: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Cases whose holdout or report is not the January sample as evaluated."""
    one_class = _one_class(data)
    held = {**FULL, "min_recall": 0.2}
    out = {
        "held_with_champion": judge(one_class, GateConfig.from_dict(held)),
        "held_first_model": judge(one_class, GateConfig.from_dict(
            {"changes": {"roc_auc": 0.0}}), champion=None),
        "held_and_failed": judge(one_class, GateConfig.from_dict(
            {"floors": {"roc_auc": 0.6, "accuracy": 0.99}})),
    }
    # A champion evaluated before precision was reported: the change rule is skipped.
    report = _report(data, _scores(data), "sharper")
    del report["models"]["champion"]["overall"]["metrics"]["precision"]
    out["champion_undefined"] = judge(report, GateConfig.from_dict(
        {"changes": {"precision": 0.0}, "keep_classes": True}))
    # Regression: lower-is-better rules, no class check, min_recall skipped.
    arr = data["arr_delay"].notna().to_numpy()
    flown = data[arr].reset_index(drop=True)
    dep = flown["dep_delay"].to_numpy(dtype=np.float64)
    regression = evaluate_predictions(
        flown, {"candidate": dep - 5, "champion": dep * 0.8}, label="arr_delay",
        task="regression", slice_columns=["origin"], n_boot=20, candidate="candidate",
        baseline="champion")
    out["regression"] = judge(regression, GateConfig.from_dict(
        {"floors": {"rmse": 20.0, "r2": 0.5}, "changes": {"mae": 0.0},
         "slices": [{"column": "origin", "metric": "rmse", "min_change": -1.0}],
         "min_recall": 0.5}))
    return out


def _approx(value: Any) -> Any:
    """``value`` with every float compared to 1e-9 relative (the evaluation's last digit
    may differ on another machine; the blessing's structure and texts may not)."""
    if isinstance(value, dict):
        return {k: _approx(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_approx(v) for v in value]
    if isinstance(value, float):
        return pytest.approx(value, rel=1e-9, abs=1e-12)
    return value


def test_every_blessing_is_pinned(january: pd.DataFrame) -> None:
    got = {name: _blessing(january, case) for name, case in CASES.items()}
    got.update(_special(january))
    assert list(got) == list(PINNED)
    for name, blessing in got.items():
        assert blessing == _approx(PINNED[name]), name
        assert list(blessing) == list(PINNED[name]), name  # key order too (JSON output)
    assert render_blessing(got["held_and_failed"]).splitlines() == [
        "HELD (candidate vs champion)",
        "  [undefined] roc_auc >= 0.6: roc_auc is undefined on this holdout: one class (only "
        "class '0' of 2, 2347 rows; it needs two to rank)",
        "  [   fail] accuracy >= 0.99: accuracy = 0.9335",
        "  [   pass] keeps every class the champion predicts: every class the champion "
        "predicts is predicted and recalled (2 classes)",
    ]


def test_every_error_of_judge_is_pinned(january: pd.DataFrame) -> None:
    scores = _scores(january)
    report = _report(january, scores, "sharper")
    with pytest.raises(UserInputError) as caught:
        judge(report, GateConfig(), candidate="challenger")
    assert caught.value.message == (
        "The evaluation has no model 'challenger'; it has ['candidate', 'champion'].")
    with pytest.raises(UserInputError) as caught:
        judge(report, GateConfig.from_dict({"floors": {"expected_cost": 0.5}}))
    assert caught.value.message == (
        "The gate compares expected_cost but the evaluation was run without costs; declare "
        "them, e.g. costs = {fn = 5, fp = 1}, in the evaluation.")
    with pytest.raises(UserInputError) as caught:
        judge(report, GateConfig.from_dict(
            {"slices": [{"column": "dest", "metric": "roc_auc", "min_change": 0.0}]}))
    assert caught.value.message == (
        "The gate has a slice rule on 'dest' but the evaluation has no slices for it; add "
        "'dest' to the evaluation's slice columns.")
    # Without a champion the slice rule is skipped before its column is looked up.
    first = _report(january, scores, "sharper", None)
    assert judge(first, GateConfig.from_dict(
        {"slices": [{"column": "dest", "metric": "roc_auc", "min_change": 0.0}]}),
        champion=None)["rules"][0]["status"] == "skipped"


PINNED: dict[str, dict[str, Any]] = {'better_but_log_loss_worse': {'blessed': False,
                               'held': False,
                               'undefined': [],
                               'candidate': 'candidate',
                               'champion': 'champion',
                               'rules': [{'rule': 'roc_auc >= 0.7',
                                          'kind': 'floor',
                                          'metric': 'roc_auc',
                                          'status': 'pass',
                                          'passed': True,
                                          'detail': 'roc_auc = 0.8856',
                                          'candidate': 0.8855950478633895,
                                          'threshold': 0.7},
                                         {'rule': 'log_loss <= 0.6',
                                          'kind': 'floor',
                                          'metric': 'log_loss',
                                          'status': 'pass',
                                          'passed': True,
                                          'detail': 'log_loss = 0.3069',
                                          'candidate': 0.30692053362461663,
                                          'threshold': 0.6},
                                         {'rule': 'roc_auc change vs champion >= -0.005',
                                          'kind': 'change',
                                          'metric': 'roc_auc',
                                          'status': 'pass',
                                          'passed': True,
                                          'detail': 'roc_auc 0.8856 vs champion 0.8856 (change '
                                                    '+0.0000)',
                                          'candidate': 0.8855950478633895,
                                          'champion': 0.8855950478633895,
                                          'change': 0.0,
                                          'threshold': -0.005},
                                         {'rule': 'log_loss change vs champion >= 0 (lower is '
                                                  'better)',
                                          'kind': 'change',
                                          'metric': 'log_loss',
                                          'status': 'fail',
                                          'passed': False,
                                          'detail': 'log_loss 0.3069 vs champion 0.3032 (change '
                                                    '-0.0038, champion - candidate: lower is '
                                                    'better)',
                                          'candidate': 0.30692053362461663,
                                          'champion': 0.30316448998512735,
                                          'change': -0.0037560436394892815,
                                          'threshold': 0.0},
                                         {'rule': 'every origin slice with >= 1 rows: roc_auc '
                                                  'change vs champion >= -0.02',
                                          'kind': 'slice',
                                          'metric': 'roc_auc',
                                          'status': 'pass',
                                          'passed': True,
                                          'detail': '3 slices checked',
                                          'column': 'origin',
                                          'threshold': -0.02,
                                          'min_rows': 1,
                                          'slices': [{'slice': 'EWR',
                                                      'n': 1086,
                                                      'candidate': 0.876332327802916,
                                                      'champion': 0.876332327802916,
                                                      'change': 0.0,
                                                      'passed': True},
                                                     {'slice': 'JFK',
                                                      'n': 1039,
                                                      'candidate': 0.8731968148537577,
                                                      'champion': 0.8731968148537577,
                                                      'change': 0.0,
                                                      'passed': True},
                                                     {'slice': 'LGA',
                                                      'n': 875,
                                                      'candidate': 0.905322236448997,
                                                      'champion': 0.905322236448997,
                                                      'change': 0.0,
                                                      'passed': True}]},
                                         {'rule': 'every carrier slice with >= 500 rows: roc_auc '
                                                  'change vs champion >= -0.05',
                                          'kind': 'slice',
                                          'metric': 'roc_auc',
                                          'status': 'pass',
                                          'passed': True,
                                          'detail': '2 slices checked',
                                          'column': 'carrier',
                                          'threshold': -0.05,
                                          'min_rows': 500,
                                          'slices': [{'slice': 'B6',
                                                      'n': 525,
                                                      'candidate': 0.8829151989002492,
                                                      'champion': 0.8829151989002492,
                                                      'change': 0.0,
                                                      'passed': True},
                                                     {'slice': 'UA',
                                                      'n': 532,
                                                      'candidate': 0.7947567260656884,
                                                      'champion': 0.7947567260656884,
                                                      'change': 0.0,
                                                      'passed': True}]}],
                               'classes': {'status': 'pass',
                                           'passed': True,
                                           'detail': 'every class the champion predicts is '
                                                     'predicted and recalled (2 classes)',
                                           'problems': []},
                               'failed': ['log_loss change vs champion >= 0 (lower is better)'],
                               'summary': 'not blessed: failed log_loss change vs champion >= 0 '
                                          '(lower is better) (log_loss 0.3069 vs champion 0.3032 '
                                          '(change -0.0038, champion - candidate: lower is '
                                          'better))'},
 'weak_fails_everything': {'blessed': False,
                           'held': False,
                           'undefined': [],
                           'candidate': 'candidate',
                           'champion': 'champion',
                           'rules': [{'rule': 'roc_auc >= 0.7',
                                      'kind': 'floor',
                                      'metric': 'roc_auc',
                                      'status': 'fail',
                                      'passed': False,
                                      'detail': 'roc_auc = 0.5774',
                                      'candidate': 0.5774097590289907,
                                      'threshold': 0.7},
                                     {'rule': 'log_loss <= 0.6',
                                      'kind': 'floor',
                                      'metric': 'log_loss',
                                      'status': 'fail',
                                      'passed': False,
                                      'detail': 'log_loss = 0.8162',
                                      'candidate': 0.8161797445242196,
                                      'threshold': 0.6},
                                     {'rule': 'roc_auc change vs champion >= -0.005',
                                      'kind': 'change',
                                      'metric': 'roc_auc',
                                      'status': 'fail',
                                      'passed': False,
                                      'detail': 'roc_auc 0.5774 vs champion 0.8856 (change '
                                                '-0.3082)',
                                      'candidate': 0.5774097590289907,
                                      'champion': 0.8855950478633895,
                                      'change': -0.3081852888343988,
                                      'threshold': -0.005},
                                     {'rule': 'log_loss change vs champion >= 0 (lower is better)',
                                      'kind': 'change',
                                      'metric': 'log_loss',
                                      'status': 'fail',
                                      'passed': False,
                                      'detail': 'log_loss 0.8162 vs champion 0.3032 (change '
                                                '-0.5130, champion - candidate: lower is better)',
                                      'candidate': 0.8161797445242196,
                                      'champion': 0.30316448998512735,
                                      'change': -0.5130152545390922,
                                      'threshold': 0.0},
                                     {'rule': 'every origin slice with >= 1 rows: roc_auc change '
                                              'vs champion >= -0.02',
                                      'kind': 'slice',
                                      'metric': 'roc_auc',
                                      'status': 'fail',
                                      'passed': False,
                                      'detail': 'worse in origin=EWR (roc_auc 0.5935 vs 0.8763, '
                                                'change -0.2828, 1086 rows); origin=JFK (roc_auc '
                                                '0.5622 vs 0.8732, change -0.3110, 1039 rows); '
                                                'origin=LGA (roc_auc 0.5903 vs 0.9053, change '
                                                '-0.3150, 875 rows)',
                                      'column': 'origin',
                                      'threshold': -0.02,
                                      'min_rows': 1,
                                      'slices': [{'slice': 'EWR',
                                                  'n': 1086,
                                                  'candidate': 0.5935185185185186,
                                                  'champion': 0.876332327802916,
                                                  'change': -0.2828138092843975,
                                                  'passed': False},
                                                 {'slice': 'JFK',
                                                  'n': 1039,
                                                  'candidate': 0.5621834408298819,
                                                  'champion': 0.8731968148537577,
                                                  'change': -0.31101337402387574,
                                                  'passed': False},
                                                 {'slice': 'LGA',
                                                  'n': 875,
                                                  'candidate': 0.5903030303030303,
                                                  'champion': 0.905322236448997,
                                                  'change': -0.3150192061459667,
                                                  'passed': False}]},
                                     {'rule': 'every carrier slice with >= 500 rows: roc_auc '
                                              'change vs champion >= -0.05',
                                      'kind': 'slice',
                                      'metric': 'roc_auc',
                                      'status': 'fail',
                                      'passed': False,
                                      'detail': 'worse in carrier=B6 (roc_auc 0.5406 vs 0.8829, '
                                                'change -0.3424, 525 rows); carrier=UA (roc_auc '
                                                '0.5569 vs 0.7948, change -0.2379, 532 rows)',
                                      'column': 'carrier',
                                      'threshold': -0.05,
                                      'min_rows': 500,
                                      'slices': [{'slice': 'B6',
                                                  'n': 525,
                                                  'candidate': 0.5405640518944926,
                                                  'champion': 0.8829151989002492,
                                                  'change': -0.34235114700575653,
                                                  'passed': False},
                                                 {'slice': 'UA',
                                                  'n': 532,
                                                  'candidate': 0.5568985849056604,
                                                  'champion': 0.7947567260656884,
                                                  'change': -0.237858141160028,
                                                  'passed': False}]}],
                           'classes': {'status': 'pass',
                                       'passed': True,
                                       'detail': 'every class the champion predicts is predicted '
                                                 'and recalled (2 classes)',
                                       'problems': []},
                           'failed': ['roc_auc >= 0.7',
                                      'log_loss <= 0.6',
                                      'roc_auc change vs champion >= -0.005',
                                      'log_loss change vs champion >= 0 (lower is better)',
                                      'every origin slice with >= 1 rows: roc_auc change vs '
                                      'champion >= -0.02',
                                      'every carrier slice with >= 500 rows: roc_auc change vs '
                                      'champion >= -0.05'],
                           'summary': 'not blessed: failed roc_auc >= 0.7 (roc_auc = 0.5774); '
                                      'log_loss <= 0.6 (log_loss = 0.8162); roc_auc change vs '
                                      'champion >= -0.005 (roc_auc 0.5774 vs champion 0.8856 '
                                      '(change -0.3082)); log_loss change vs champion >= 0 (lower '
                                      'is better) (log_loss 0.8162 vs champion 0.3032 (change '
                                      '-0.5130, champion - candidate: lower is better)); every '
                                      'origin slice with >= 1 rows: roc_auc change vs champion >= '
                                      '-0.02 (worse in origin=EWR (roc_auc 0.5935 vs 0.8763, '
                                      'change -0.2828, 1086 rows); origin=JFK (roc_auc 0.5622 vs '
                                      '0.8732, change -0.3110, 1039 rows); origin=LGA (roc_auc '
                                      '0.5903 vs 0.9053, change -0.3150, 875 rows)); every '
                                      'carrier slice with >= 500 rows: roc_auc change vs champion '
                                      '>= -0.05 (worse in carrier=B6 (roc_auc 0.5406 vs 0.8829, '
                                      'change -0.3424, 525 rows); carrier=UA (roc_auc 0.5569 vs '
                                      '0.7948, change -0.2379, 532 rows))'},
 'worse_at_one_airport': {'blessed': False,
                          'held': False,
                          'undefined': [],
                          'candidate': 'candidate',
                          'champion': 'champion',
                          'rules': [{'rule': 'roc_auc >= 0.7',
                                     'kind': 'floor',
                                     'metric': 'roc_auc',
                                     'status': 'fail',
                                     'passed': False,
                                     'detail': 'roc_auc = 0.6734',
                                     'candidate': 0.6734021014086602,
                                     'threshold': 0.7},
                                    {'rule': 'log_loss <= 0.6',
                                     'kind': 'floor',
                                     'metric': 'log_loss',
                                     'status': 'fail',
                                     'passed': False,
                                     'detail': 'log_loss = 0.9000',
                                     'candidate': 0.900031156133428,
                                     'threshold': 0.6},
                                    {'rule': 'roc_auc change vs champion >= -0.005',
                                     'kind': 'change',
                                     'metric': 'roc_auc',
                                     'status': 'fail',
                                     'passed': False,
                                     'detail': 'roc_auc 0.6734 vs champion 0.8856 (change '
                                               '-0.2122)',
                                     'candidate': 0.6734021014086602,
                                     'champion': 0.8855950478633895,
                                     'change': -0.2121929464547293,
                                     'threshold': -0.005},
                                    {'rule': 'log_loss change vs champion >= 0 (lower is better)',
                                     'kind': 'change',
                                     'metric': 'log_loss',
                                     'status': 'fail',
                                     'passed': False,
                                     'detail': 'log_loss 0.9000 vs champion 0.3032 (change '
                                               '-0.5969, champion - candidate: lower is better)',
                                     'candidate': 0.900031156133428,
                                     'champion': 0.30316448998512735,
                                     'change': -0.5968666661483006,
                                     'threshold': 0.0},
                                    {'rule': 'every origin slice with >= 1 rows: roc_auc change '
                                             'vs champion >= -0.02',
                                     'kind': 'slice',
                                     'metric': 'roc_auc',
                                     'status': 'fail',
                                     'passed': False,
                                     'detail': 'worse in origin=LGA (roc_auc 0.0947 vs 0.9053, '
                                               'change -0.8106, 875 rows)',
                                     'column': 'origin',
                                     'threshold': -0.02,
                                     'min_rows': 1,
                                     'slices': [{'slice': 'EWR',
                                                 'n': 1086,
                                                 'candidate': 0.876332327802916,
                                                 'champion': 0.876332327802916,
                                                 'change': 0.0,
                                                 'passed': True},
                                                {'slice': 'JFK',
                                                 'n': 1039,
                                                 'candidate': 0.8731968148537577,
                                                 'champion': 0.8731968148537577,
                                                 'change': 0.0,
                                                 'passed': True},
                                                {'slice': 'LGA',
                                                 'n': 875,
                                                 'candidate': 0.09467776355100299,
                                                 'champion': 0.905322236448997,
                                                 'change': -0.810644472897994,
                                                 'passed': False}]},
                                    {'rule': 'every carrier slice with >= 500 rows: roc_auc '
                                             'change vs champion >= -0.05',
                                     'kind': 'slice',
                                     'metric': 'roc_auc',
                                     'status': 'fail',
                                     'passed': False,
                                     'detail': 'worse in carrier=B6 (roc_auc 0.7792 vs 0.8829, '
                                               'change -0.1037, 525 rows); carrier=UA (roc_auc '
                                               '0.7039 vs 0.7948, change -0.0909, 532 rows)',
                                     'column': 'carrier',
                                     'threshold': -0.05,
                                     'min_rows': 500,
                                     'slices': [{'slice': 'B6',
                                                 'n': 525,
                                                 'candidate': 0.7792336111349772,
                                                 'champion': 0.8829151989002492,
                                                 'change': -0.10368158776527192,
                                                 'passed': False},
                                                {'slice': 'UA',
                                                 'n': 532,
                                                 'candidate': 0.7038674877707897,
                                                 'champion': 0.7947567260656884,
                                                 'change': -0.0908892382948987,
                                                 'passed': False}]}],
                          'classes': {'status': 'pass',
                                      'passed': True,
                                      'detail': 'every class the champion predicts is predicted '
                                                'and recalled (2 classes)',
                                      'problems': []},
                          'failed': ['roc_auc >= 0.7',
                                     'log_loss <= 0.6',
                                     'roc_auc change vs champion >= -0.005',
                                     'log_loss change vs champion >= 0 (lower is better)',
                                     'every origin slice with >= 1 rows: roc_auc change vs '
                                     'champion >= -0.02',
                                     'every carrier slice with >= 500 rows: roc_auc change vs '
                                     'champion >= -0.05'],
                          'summary': 'not blessed: failed roc_auc >= 0.7 (roc_auc = 0.6734); '
                                     'log_loss <= 0.6 (log_loss = 0.9000); roc_auc change vs '
                                     'champion >= -0.005 (roc_auc 0.6734 vs champion 0.8856 '
                                     '(change -0.2122)); log_loss change vs champion >= 0 (lower '
                                     'is better) (log_loss 0.9000 vs champion 0.3032 (change '
                                     '-0.5969, champion - candidate: lower is better)); every '
                                     'origin slice with >= 1 rows: roc_auc change vs champion >= '
                                     '-0.02 (worse in origin=LGA (roc_auc 0.0947 vs 0.9053, '
                                     'change -0.8106, 875 rows)); every carrier slice with >= 500 '
                                     'rows: roc_auc change vs champion >= -0.05 (worse in '
                                     'carrier=B6 (roc_auc 0.7792 vs 0.8829, change -0.1037, 525 '
                                     'rows); carrier=UA (roc_auc 0.7039 vs 0.7948, change '
                                     '-0.0909, 532 rows))'},
 'first_model': {'blessed': True,
                 'held': False,
                 'undefined': [],
                 'candidate': 'candidate',
                 'champion': None,
                 'rules': [{'rule': 'roc_auc >= 0.7',
                            'kind': 'floor',
                            'metric': 'roc_auc',
                            'status': 'pass',
                            'passed': True,
                            'detail': 'roc_auc = 0.8856',
                            'candidate': 0.8855950478633895,
                            'threshold': 0.7},
                           {'rule': 'log_loss <= 0.6',
                            'kind': 'floor',
                            'metric': 'log_loss',
                            'status': 'pass',
                            'passed': True,
                            'detail': 'log_loss = 0.3069',
                            'candidate': 0.30692053362461663,
                            'threshold': 0.6},
                           {'rule': 'roc_auc change vs champion >= -0.005',
                            'kind': 'change',
                            'metric': 'roc_auc',
                            'status': 'skipped',
                            'passed': True,
                            'detail': 'no champion: the first model is judged on floors only'},
                           {'rule': 'log_loss change vs champion >= 0 (lower is better)',
                            'kind': 'change',
                            'metric': 'log_loss',
                            'status': 'skipped',
                            'passed': True,
                            'detail': 'no champion: the first model is judged on floors only'},
                           {'rule': 'every origin slice with >= 1 rows: roc_auc change vs '
                                    'champion >= -0.02',
                            'kind': 'slice',
                            'metric': 'roc_auc',
                            'status': 'skipped',
                            'passed': True,
                            'detail': 'no champion: the first model is judged on floors only'},
                           {'rule': 'every carrier slice with >= 500 rows: roc_auc change vs '
                                    'champion >= -0.05',
                            'kind': 'slice',
                            'metric': 'roc_auc',
                            'status': 'skipped',
                            'passed': True,
                            'detail': 'no champion: the first model is judged on floors only'}],
                 'classes': {'status': 'skipped',
                             'passed': True,
                             'detail': 'no champion',
                             'problems': []},
                 'failed': [],
                 'summary': 'blessed: all rules passed'},
 'never_decides_delayed': {'blessed': False,
                           'held': False,
                           'undefined': [],
                           'candidate': 'candidate',
                           'champion': 'champion',
                           'rules': [{'rule': 'roc_auc >= 0.6',
                                      'kind': 'floor',
                                      'metric': 'roc_auc',
                                      'status': 'pass',
                                      'passed': True,
                                      'detail': 'roc_auc = 0.8856',
                                      'candidate': 0.8855950478633895,
                                      'threshold': 0.6},
                                     {'rule': 'recall of every class >= 0.2',
                                      'kind': 'recall',
                                      'metric': 'recall',
                                      'status': 'fail',
                                      'passed': False,
                                      'detail': 'class 1: recall 0.000, precision undefined, F1 '
                                                '0.000 (653 rows, 0 predicted) at its decision '
                                                'threshold',
                                      'threshold': 0.2,
                                      'classes': [{'class': '0',
                                                   'recall': 1.0,
                                                   'precision': 0.7823333333333333,
                                                   'f1': 0.8778754441743033,
                                                   'support': 2347,
                                                   'predicted': 3000,
                                                   'passed': True},
                                                  {'class': '1',
                                                   'recall': 0.0,
                                                   'precision': None,
                                                   'f1': 0.0,
                                                   'support': 653,
                                                   'predicted': 0,
                                                   'passed': False}]}],
                           'classes': {'status': 'fail',
                                       'passed': False,
                                       'detail': 'never predicts class 1 (the champion predicts '
                                                 'it for 552 rows)',
                                       'problems': [{'class': '1',
                                                     'problem': 'never_predicted',
                                                     'champion_predicted': 552}]},
                           'failed': ['recall of every class >= 0.2',
                                      'keeps every class the champion predicts'],
                           'summary': 'not blessed: failed recall of every class >= 0.2 (class 1: '
                                      'recall 0.000, precision undefined, F1 0.000 (653 rows, 0 '
                                      'predicted) at its decision threshold); keeps every class '
                                      'the champion predicts (never predicts class 1 (the '
                                      'champion predicts it for 552 rows))'},
 'class_check_off': {'blessed': True,
                     'held': False,
                     'undefined': [],
                     'candidate': 'candidate',
                     'champion': 'champion',
                     'rules': [{'rule': 'roc_auc >= 0.6',
                                'kind': 'floor',
                                'metric': 'roc_auc',
                                'status': 'pass',
                                'passed': True,
                                'detail': 'roc_auc = 0.8856',
                                'candidate': 0.8855950478633895,
                                'threshold': 0.6}],
                     'classes': {'status': 'skipped',
                                 'passed': True,
                                 'detail': 'keep_classes = false',
                                 'problems': []},
                     'failed': [],
                     'summary': 'blessed: all rules passed'},
 'recall_zero': {'blessed': False,
                 'held': False,
                 'undefined': [],
                 'candidate': 'candidate',
                 'champion': 'champion',
                 'rules': [{'rule': 'accuracy change vs champion >= -1',
                            'kind': 'change',
                            'metric': 'accuracy',
                            'status': 'pass',
                            'passed': True,
                            'detail': 'accuracy 0.5707 vs champion 0.8950 (change -0.3243)',
                            'candidate': 0.5706666666666667,
                            'champion': 0.895,
                            'change': -0.32433333333333336,
                            'threshold': -1.0},
                           {'rule': 'recall of every class >= 0.1',
                            'kind': 'recall',
                            'metric': 'recall',
                            'status': 'fail',
                            'passed': False,
                            'detail': 'class 1: recall 0.000, precision 0.000, F1 0.000 (653 '
                                      'rows, 635 predicted) at its decision threshold',
                            'threshold': 0.1,
                            'classes': [{'class': '0',
                                         'recall': 0.7294418406476353,
                                         'precision': 0.7238900634249471,
                                         'f1': 0.7266553480475382,
                                         'support': 2347,
                                         'predicted': 2365,
                                         'passed': True},
                                        {'class': '1',
                                         'recall': 0.0,
                                         'precision': 0.0,
                                         'f1': 0.0,
                                         'support': 653,
                                         'predicted': 635,
                                         'passed': False}]}],
                 'classes': {'status': 'fail',
                             'passed': False,
                             'detail': 'recall on class 1 is 0 (champion 0.681, 653 rows)',
                             'problems': [{'class': '1',
                                           'problem': 'recall_zero',
                                           'champion_recall': 0.6814701378254211,
                                           'support': 653}]},
                 'failed': ['recall of every class >= 0.1',
                            'keeps every class the champion predicts'],
                 'summary': 'not blessed: failed recall of every class >= 0.1 (class 1: recall '
                            '0.000, precision 0.000, F1 0.000 (653 rows, 635 predicted) at its '
                            'decision threshold); keeps every class the champion predicts (recall '
                            'on class 1 is 0 (champion 0.681, 653 rows))'},
 'precision_floor': {'blessed': False,
                     'held': False,
                     'undefined': [],
                     'candidate': 'candidate',
                     'champion': 'champion',
                     'rules': [{'rule': 'precision >= 0.5',
                                'kind': 'floor',
                                'metric': 'precision',
                                'status': 'fail',
                                'passed': False,
                                'detail': 'precision = 0.0000',
                                'candidate': 0.0,
                                'threshold': 0.5},
                               {'rule': 'roc_auc change vs champion >= 0',
                                'kind': 'change',
                                'metric': 'roc_auc',
                                'status': 'pass',
                                'passed': True,
                                'detail': 'roc_auc 0.8856 vs champion 0.8856 (change +0.0000)',
                                'candidate': 0.8855950478633895,
                                'champion': 0.8855950478633895,
                                'change': 0.0,
                                'threshold': 0.0}],
                     'classes': {'status': 'fail',
                                 'passed': False,
                                 'detail': 'never predicts class 1 (the champion predicts it for '
                                           '552 rows)',
                                 'problems': [{'class': '1',
                                               'problem': 'never_predicted',
                                               'champion_predicted': 552}]},
                     'failed': ['precision >= 0.5', 'keeps every class the champion predicts'],
                     'summary': 'not blessed: failed precision >= 0.5 (precision = 0.0000); keeps '
                                'every class the champion predicts (never predicts class 1 (the '
                                'champion predicts it for 552 rows))'},
 'costs_pass': {'blessed': True,
                'held': False,
                'undefined': [],
                'candidate': 'candidate',
                'champion': 'champion',
                'rules': [{'rule': 'expected_cost <= 0.5',
                           'kind': 'floor',
                           'metric': 'expected_cost',
                           'status': 'pass',
                           'passed': True,
                           'detail': 'expected_cost = 0.3050',
                           'candidate': 0.305,
                           'threshold': 0.5},
                          {'rule': 'expected_cost change vs champion >= 0 (lower is better)',
                           'kind': 'change',
                           'metric': 'expected_cost',
                           'status': 'pass',
                           'passed': True,
                           'detail': 'expected_cost 0.3050 vs champion 0.3050 (change +0.0000, '
                                     'champion - candidate: lower is better)',
                           'candidate': 0.305,
                           'champion': 0.305,
                           'change': 0.0,
                           'threshold': 0.0},
                          {'rule': 'recall of every class >= 0.3',
                           'kind': 'recall',
                           'metric': 'recall',
                           'status': 'pass',
                           'passed': True,
                           'detail': '2 classes recalled, lowest 0.761',
                           'threshold': 0.3,
                           'classes': [{'class': '0',
                                        'recall': 0.876011930123562,
                                        'precision': 0.9294755877034359,
                                        'f1': 0.9019521824961615,
                                        'support': 2347,
                                        'predicted': 2212,
                                        'passed': True},
                                       {'class': '1',
                                        'recall': 0.7611026033690659,
                                        'precision': 0.6307106598984772,
                                        'f1': 0.6897987508674531,
                                        'support': 653,
                                        'predicted': 788,
                                        'passed': True}]}],
                'classes': {'status': 'pass',
                            'passed': True,
                            'detail': 'every class the champion predicts is predicted and '
                                      'recalled (2 classes)',
                            'problems': []},
                'failed': [],
                'summary': 'blessed: all rules passed'},
 'costs_fail': {'blessed': False,
                'held': False,
                'undefined': [],
                'candidate': 'candidate',
                'champion': 'champion',
                'rules': [{'rule': 'expected_cost change vs champion >= 0 (lower is better)',
                           'kind': 'change',
                           'metric': 'expected_cost',
                           'status': 'fail',
                           'passed': False,
                           'detail': 'expected_cost 0.7167 vs champion 0.3050 (change -0.4117, '
                                     'champion - candidate: lower is better)',
                           'candidate': 0.7166666666666667,
                           'champion': 0.305,
                           'change': -0.4116666666666667,
                           'threshold': 0.0}],
                'classes': {'status': 'pass',
                            'passed': True,
                            'detail': 'every class the champion predicts is predicted and '
                                      'recalled (2 classes)',
                            'problems': []},
                'failed': ['expected_cost change vs champion >= 0 (lower is better)'],
                'summary': 'not blessed: failed expected_cost change vs champion >= 0 (lower is '
                           'better) (expected_cost 0.7167 vs champion 0.3050 (change -0.4117, '
                           'champion - candidate: lower is better))'},
 'held_with_champion': {'blessed': False,
                        'held': True,
                        'undefined': ['roc_auc'],
                        'candidate': 'candidate',
                        'champion': 'champion',
                        'rules': [{'rule': 'roc_auc >= 0.7',
                                   'kind': 'floor',
                                   'metric': 'roc_auc',
                                   'status': 'undefined',
                                   'passed': False,
                                   'detail': 'roc_auc is undefined on this holdout: one class '
                                             "(only class '0' of 2, 2347 rows; it needs two to "
                                             'rank)',
                                   'candidate': None,
                                   'threshold': 0.7,
                                   'undefined': True},
                                  {'rule': 'log_loss <= 0.6',
                                   'kind': 'floor',
                                   'metric': 'log_loss',
                                   'status': 'pass',
                                   'passed': True,
                                   'detail': 'log_loss = 0.2017',
                                   'candidate': 0.20166405026531556,
                                   'threshold': 0.6},
                                  {'rule': 'roc_auc change vs champion >= -0.005',
                                   'kind': 'change',
                                   'metric': 'roc_auc',
                                   'status': 'undefined',
                                   'passed': False,
                                   'detail': 'roc_auc is undefined on this holdout: one class '
                                             "(only class '0' of 2, 2347 rows; it needs two to "
                                             'rank)',
                                   'candidate': None,
                                   'champion': None,
                                   'threshold': -0.005,
                                   'undefined': True},
                                  {'rule': 'log_loss change vs champion >= 0 (lower is better)',
                                   'kind': 'change',
                                   'metric': 'log_loss',
                                   'status': 'pass',
                                   'passed': True,
                                   'detail': 'log_loss 0.2017 vs champion 0.2209 (change +0.0193, '
                                             'champion - candidate: lower is better)',
                                   'candidate': 0.20166405026531556,
                                   'champion': 0.22091818181342673,
                                   'change': 0.019254131548111175,
                                   'threshold': 0.0},
                                  {'rule': 'every origin slice with >= 1 rows: roc_auc change vs '
                                           'champion >= -0.02',
                                   'kind': 'slice',
                                   'metric': 'roc_auc',
                                   'status': 'pass',
                                   'passed': True,
                                   'detail': '0 slices checked',
                                   'column': 'origin',
                                   'threshold': -0.02,
                                   'min_rows': 1,
                                   'slices': []},
                                  {'rule': 'every carrier slice with >= 500 rows: roc_auc change '
                                           'vs champion >= -0.05',
                                   'kind': 'slice',
                                   'metric': 'roc_auc',
                                   'status': 'pass',
                                   'passed': True,
                                   'detail': '0 slices checked',
                                   'column': 'carrier',
                                   'threshold': -0.05,
                                   'min_rows': 500,
                                   'slices': []},
                                  {'rule': 'recall of every class >= 0.2',
                                   'kind': 'recall',
                                   'metric': 'recall',
                                   'status': 'pass',
                                   'passed': True,
                                   'detail': '1 classes recalled, lowest 0.934',
                                   'threshold': 0.2,
                                   'classes': [{'class': '0',
                                                'recall': 0.9335321687260333,
                                                'precision': 1.0,
                                                'f1': 0.9656236227412958,
                                                'support': 2347,
                                                'predicted': 2191,
                                                'passed': True}]}],
                        'classes': {'status': 'pass',
                                    'passed': True,
                                    'detail': 'every class the champion predicts is predicted and '
                                              'recalled (2 classes)',
                                    'problems': []},
                        'failed': [],
                        'summary': 'held: roc_auc is undefined on this holdout: one class (only '
                                   "class '0' of 2, 2347 rows; it needs two to rank); the "
                                   'candidate cannot be judged on it'},
 'held_first_model': {'blessed': False,
                      'held': True,
                      'undefined': ['roc_auc'],
                      'candidate': 'candidate',
                      'champion': None,
                      'rules': [{'rule': 'roc_auc change vs champion >= 0',
                                 'kind': 'change',
                                 'metric': 'roc_auc',
                                 'status': 'skipped',
                                 'passed': True,
                                 'detail': 'no champion: the first model is judged on floors '
                                           'only'}],
                      'classes': {'status': 'skipped',
                                  'passed': True,
                                  'detail': 'no champion',
                                  'problems': []},
                      'failed': [],
                      'summary': 'held: roc_auc is undefined on this holdout: one class (only '
                                 "class '0' of 2, 2347 rows; it needs two to rank); the candidate "
                                 'cannot be judged on it'},
 'held_and_failed': {'blessed': False,
                     'held': True,
                     'undefined': ['roc_auc'],
                     'candidate': 'candidate',
                     'champion': 'champion',
                     'rules': [{'rule': 'roc_auc >= 0.6',
                                'kind': 'floor',
                                'metric': 'roc_auc',
                                'status': 'undefined',
                                'passed': False,
                                'detail': 'roc_auc is undefined on this holdout: one class (only '
                                          "class '0' of 2, 2347 rows; it needs two to rank)",
                                'candidate': None,
                                'threshold': 0.6,
                                'undefined': True},
                               {'rule': 'accuracy >= 0.99',
                                'kind': 'floor',
                                'metric': 'accuracy',
                                'status': 'fail',
                                'passed': False,
                                'detail': 'accuracy = 0.9335',
                                'candidate': 0.9335321687260333,
                                'threshold': 0.99}],
                     'classes': {'status': 'pass',
                                 'passed': True,
                                 'detail': 'every class the champion predicts is predicted and '
                                           'recalled (2 classes)',
                                 'problems': []},
                     'failed': ['accuracy >= 0.99'],
                     'summary': 'held: roc_auc is undefined on this holdout: one class (only '
                                "class '0' of 2, 2347 rows; it needs two to rank); the candidate "
                                'cannot be judged on it. Also failed accuracy >= 0.99 (accuracy = '
                                '0.9335)'},
 'champion_undefined': {'blessed': True,
                        'held': False,
                        'undefined': [],
                        'candidate': 'candidate',
                        'champion': 'champion',
                        'rules': [{'rule': 'precision change vs champion >= 0',
                                   'kind': 'change',
                                   'metric': 'precision',
                                   'status': 'skipped',
                                   'passed': True,
                                   'detail': 'precision is undefined for the champion on this '
                                             'holdout'}],
                        'classes': {'status': 'pass',
                                    'passed': True,
                                    'detail': 'every class the champion predicts is predicted and '
                                              'recalled (2 classes)',
                                    'problems': []},
                        'failed': [],
                        'summary': 'blessed: all rules passed'},
 'regression': {'blessed': True,
                'held': False,
                'undefined': [],
                'candidate': 'candidate',
                'champion': 'champion',
                'rules': [{'rule': 'rmse <= 20',
                           'kind': 'floor',
                           'metric': 'rmse',
                           'status': 'pass',
                           'passed': True,
                           'detail': 'rmse = 16.3736',
                           'candidate': 16.37355591596808,
                           'threshold': 20.0},
                          {'rule': 'r2 >= 0.5',
                           'kind': 'floor',
                           'metric': 'r2',
                           'status': 'pass',
                           'passed': True,
                           'detail': 'r2 = 0.8230',
                           'candidate': 0.8230283380408683,
                           'threshold': 0.5},
                          {'rule': 'mae change vs champion >= 0 (lower is better)',
                           'kind': 'change',
                           'metric': 'mae',
                           'status': 'pass',
                           'passed': True,
                           'detail': 'mae 12.1760 vs champion 13.7785 (change +1.6025, champion - '
                                     'candidate: lower is better)',
                           'candidate': 12.176,
                           'champion': 13.778533333333336,
                           'change': 1.6025333333333354,
                           'threshold': 0.0},
                          {'rule': 'every origin slice with >= 1 rows: rmse change vs champion >= '
                                   '-1 (lower is better)',
                           'kind': 'slice',
                           'metric': 'rmse',
                           'status': 'pass',
                           'passed': True,
                           'detail': '3 slices checked',
                           'column': 'origin',
                           'threshold': -1.0,
                           'min_rows': 1,
                           'slices': [{'slice': 'EWR',
                                       'n': 1086,
                                       'candidate': 17.176126950409238,
                                       'champion': 19.446748368286343,
                                       'change': 2.2706214178771056,
                                       'passed': True},
                                      {'slice': 'JFK',
                                       'n': 1039,
                                       'candidate': 16.90308102741751,
                                       'champion': 18.95025553371432,
                                       'change': 2.047174506296809,
                                       'passed': True},
                                      {'slice': 'LGA',
                                       'n': 875,
                                       'candidate': 14.620220830851261,
                                       'champion': 15.738113882274094,
                                       'change': 1.1178930514228327,
                                       'passed': True}]},
                          {'rule': 'recall of every class >= 0.5',
                           'kind': 'recall',
                           'metric': 'recall',
                           'status': 'skipped',
                           'passed': True,
                           'detail': 'not a classification evaluation'}],
                'classes': {'status': 'skipped',
                            'passed': True,
                            'detail': 'not a classification evaluation',
                            'problems': []},
                'failed': [],
                'summary': 'blessed: all rules passed'}}
