"""parse_loop pinned before it is split: the whole LoopSpec (every field, with its type) of
each loop declaration the repository ships (docs/loop.md's full example, the ``ctloop init
--template loop`` and CI templates, the tests' churn loop) and of a SQL source, a feature
store trainer, a declared pipeline and the gate's threshold rules; and every error a bad
key or value gives, word for word, including which of several mistakes is named first."""

from __future__ import annotations

import re
import tomllib
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from ctloop.cli.ci_template import ci_files
from ctloop.cli.project import _loop_toml
from ctloop.core.errors import CtloopError
from ctloop.loop.declaration import parse_loop
from ctloop.testing.loops import churn_loop

DOCS = Path(__file__).resolve().parents[3] / "docs" / "loop.md"
BASE = {"model": "m", "data": "landing/*.parquet", "event_time": "ts", "label": "y"}


def _docs_example() -> dict[str, Any]:
    block = re.search(r"```toml\n(\[ctloop\.loops\.churn\].*?)```", DOCS.read_text(), re.S)
    assert block is not None
    return tomllib.loads(block.group(1))["ctloop"]["loops"]["churn"]  # type: ignore[no-any-return]


def _loops(text: str) -> dict[str, Any]:
    return tomllib.loads(text)["ctloop"]["loops"]  # type: ignore[no-any-return]


def _examples() -> dict[str, dict[str, Any]]:
    """Name -> ``[ctloop.loops.NAME]`` table."""
    return {
        "docs": _docs_example(),
        "init_template": _loops(_loop_toml("churn"))["churn"],
        "ci_template": _loops(ci_files("proj", "churn")["ctloop.toml"])["churn"],
        "churn_loop": tomllib.loads(churn_loop('window = "2 spans"', 'retrain_on = "drift"'))[
            "ctloop"]["loops"]["churn"],
        "sql": {**BASE, "data": {"url": "postgresql://u@h/db", "query": "select * from t",
                                 "watermark": "ts", "span": "1d"},
                "window": 4, "holdout": "0.2", "cooldown": "12h", "seed": "7",
                "description": 3, "task": "regression", "retrain_on": ["new_span", "decay"],
                "decay": {"max_drop": 2, "baseline": 0.5, "min_labels": 10}},
        "features": {**BASE, "train": {"flavor": "xgboost", "params": {"max_depth": 3},
                                       "features": ["a", 2], "feature_refs": ["v:f", "w"],
                                       "feature_store": "features.py", "task": "multiclass",
                                       "nullable": ["a"]},
                     "metric": "macro_f1", "pipeline": "pipe.py:retrain",
                     "drift": {"share": 1, "columns": ["a", "b"], "thresholds": "stationary"},
                     "canary": {"share": "0.5"}},
        "gate_rules": {**BASE, "task": "binary", "gate": {
            "min_improvement": 0, "floor": 1, "min_recall": 1, "costs": {"fn": 4, "fp": 1},
            "serving": {"p99_ms": 50},
            "slices": [{"column": "c", "metric": "roc_auc", "min_change": -0.1}]}},
        "train_task_only": {**BASE, "train": {"task": "binary"}, "canary": {}},
        "metric_only": {**BASE, "metric": "rmse", "schedule": "0 3 * * 1",
                        "retrain_on": "schedule", "id": "row"},
        "no_signals_but_schedule": {**BASE, "retrain_on": [], "schedule": "0 3 * * 1"},
        "no_signals": {**BASE, "retrain_on": [], "canary": None, "seed": 0, "id": None},
    }


def _types(value: Any) -> Any:
    """The type of every leaf: ``1`` and ``1.0`` are equal but not the same field."""
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return (type(value).__name__, [_types(v) for v in value])
    return type(value).__name__


def _rooted(value: Any, root: str) -> Any:
    """``value`` with the test's folder written ROOT."""
    if isinstance(value, dict):
        return {k: _rooted(v, root) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_rooted(v, root) for v in value)
    return value.replace(root, "ROOT") if isinstance(value, str) else value


def _spec(name: str, table: dict[str, Any], root: Path) -> dict[str, Any]:
    spec: dict[str, Any] = _rooted(asdict(parse_loop(name, table, root=root)), str(root))
    return spec


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    for name in ("trainer.py", "features.py", "pipe.py"):
        (tmp_path / name).write_text("x = 1\n")
    return tmp_path.resolve()


def test_every_example_declaration_is_pinned(root: Path) -> None:
    got = {name: _spec("churn", table, root) for name, table in _examples().items()}
    assert list(got) == list(PINNED)
    for name, spec in got.items():
        assert spec == PINNED[name], name
        assert _types(spec) == _types(PINNED[name]), name


BAD: list[tuple[str, Any]] = [
    ("not_a_table", 3),
    ("unknown_close", {**BASE, "windw": "3 spans"}),
    ("unknown_far", {**BASE, "zzz": 1}),
    ("missing_model", {k: v for k, v in BASE.items() if k != "model"}),
    ("empty_data", {**BASE, "data": ""}),
    ("missing_event_time", {k: v for k, v in BASE.items() if k != "event_time"}),
    ("missing_label", {k: v for k, v in BASE.items() if k != "label"}),
    ("data_list", {**BASE, "data": ["a", "b"]}),
    ("data_unknown", {**BASE, "data": {"url": "u", "querry": "q"}}),
    ("data_missing", {**BASE, "data": {"url": "u", "query": "q"}}),
    ("data_span_spans", {**BASE, "data": {"url": "u", "query": "q", "watermark": "w",
                                          "span": "3 spans"}}),
    ("data_span_text", {**BASE, "data": {"url": "u", "query": "q", "watermark": "w",
                                         "span": "weekly"}}),
    ("train_number", {**BASE, "train": 3}),
    ("train_ref_form", {**BASE, "train": "trainer.py"}),
    ("train_ref_missing", {**BASE, "train": "nowhere.py:fit"}),
    ("train_unknown", {**BASE, "train": {"flavour": "lightgbm"}}),
    ("train_flavor_close", {**BASE, "train": {"flavor": "lightgmb"}}),
    ("train_flavor_far", {**BASE, "train": {"flavor": "torch"}}),
    ("train_params", {**BASE, "train": {"params": [1, 2]}}),
    ("train_nullable_str", {**BASE, "train": {"nullable": "a"}}),
    ("train_nullable_empty", {**BASE, "train": {"nullable": ["a", ""]}}),
    ("train_refs_str", {**BASE, "train": {"feature_refs": "v:f"}}),
    ("train_refs_number", {**BASE, "train": {"feature_refs": ["v:f", 3]}}),
    ("train_store_missing", {**BASE, "train": {"feature_store": "nowhere.py"}}),
    ("window_text", {**BASE, "window": "three"}),
    ("window_zero", {**BASE, "window": 0}),
    ("window_bool", {**BASE, "window": True}),
    ("window_zero_spans", {**BASE, "window": "0 spans"}),
    ("holdout_high", {**BASE, "holdout": 0.95}),
    ("holdout_text", {**BASE, "holdout": "most"}),
    ("holdout_zero", {**BASE, "holdout": 0}),
    ("task_bad", {**BASE, "task": "ranking"}),
    ("train_task_bad", {**BASE, "train": {"task": "ranking"}}),
    ("task_disagree", {**BASE, "task": "binary", "train": {"task": "regression"}}),
    ("metric_close", {**BASE, "metric": "roc_aux"}),
    ("metric_far", {**BASE, "metric": "zzzzzz"}),
    ("metric_task", {**BASE, "task": "binary", "metric": "rmse"}),
    ("gate_number", {**BASE, "gate": 1}),
    ("gate_unknown", {**BASE, "gate": {"min_improvment": 0.1}}),
    ("gate_serving", {**BASE, "gate": {"serving": {"p99": 50}}}),
    ("gate_recall_zero", {**BASE, "gate": {"min_recall": 0}}),
    ("gate_recall_text", {**BASE, "gate": {"min_recall": "high"}}),
    ("gate_costs", {**BASE, "gate": {"costs": {"fn": 4, "false_alarm": 1}}}),
    ("gate_costs_negative", {**BASE, "gate": {"costs": {"fn": -1}}}),
    ("retrain_close", {**BASE, "retrain_on": ["dirft"]}),
    ("retrain_far", {**BASE, "retrain_on": "weekly"}),
    ("schedule_bad", {**BASE, "schedule": "every monday"}),
    ("schedule_missing", {**BASE, "retrain_on": ["schedule"]}),
    ("cooldown_bad", {**BASE, "cooldown": "a while"}),
    ("decay_number", {**BASE, "decay": 0.1}),
    ("decay_unknown", {**BASE, "decay": {"max_dorp": 0.1}}),
    ("decay_baseline", {**BASE, "decay": {"baseline": "best"}}),
    ("decay_negative", {**BASE, "decay": {"max_drop": -0.1}}),
    ("drift_unknown", {**BASE, "drift": {"shares": 0.1}}),
    ("drift_thresholds", {**BASE, "drift": {"thresholds": "moving"}}),
    ("drift_share", {**BASE, "drift": {"share": 0}}),
    ("canary_text", {**BASE, "canary": "yes"}),
    ("canary_unknown", {**BASE, "canary": {"min_label": 3}}),
    ("canary_share", {**BASE, "canary": {"share": 2}}),
    ("seed_text", {**BASE, "seed": "x"}),
    ("seed_fraction", {**BASE, "seed": 5.5}),
    ("seed_flag", {**BASE, "seed": True}),
    ("seed_dashes", {**BASE, "seed": "--7"}),
    ("pipeline_form", {**BASE, "pipeline": "pipe.py"}),
    ("pipeline_missing", {**BASE, "pipeline": "nowhere.py:retrain"}),
]


def _error(table: Any, root: Path) -> tuple[str, str]:
    with pytest.raises(Exception) as caught:
        parse_loop("churn", table, root=root)
    text = caught.value.message if isinstance(caught.value, CtloopError) else str(caught.value)
    return type(caught.value).__name__, text.replace(str(root), "ROOT")


def test_every_error_is_pinned_word_for_word(root: Path) -> None:
    got = {name: _error(table, root) for name, table in BAD}
    assert got == ERRORS


def test_which_mistake_is_named_first_is_pinned(root: Path) -> None:
    """Every key wrong at once, then put right one by one: the errors in the order read."""
    table: dict[str, Any] = dict(BAD_AT_ONCE)
    seen = []
    for key, good in GOOD.items():
        seen.append(_error(table, root)[1])
        if good is None:
            del table[key]
        else:
            table[key] = good
    assert parse_loop("churn", table, root=root).name == "churn"
    assert seen == ORDER


BAD_AT_ONCE: dict[str, Any] = {
    "model": "", "data": ["x"], "event_time": "ts", "label": "y", "schema": "s.yaml",
    "train": {"flavor": "torch"}, "window": "three", "holdout": 2, "task": "ranking",
    "metric": "zzzzzz", "gate": {"min_recall": 0}, "retrain_on": ["weekly"],
    "schedule": "every monday", "cooldown": "a while", "decay": {"max_drop": -1},
    "drift": {"thresholds": "moving"}, "canary": {"share": 2}, "seed": "x",
    "pipeline": "pipe.py", "zzz": 1}
# Put right in this order (None: remove the key).
GOOD: dict[str, Any] = {
    "zzz": None, "model": "m", "data": "landing/*.parquet", "train": {"flavor": "sklearn"},
    "window": "2 spans", "holdout": 0.2, "task": "binary", "metric": "roc_auc",
    "gate": {"min_recall": 0.1}, "retrain_on": ["decay"], "schedule": "0 3 * * 1",
    "cooldown": "1d", "decay": {"max_drop": 0.1}, "drift": {"thresholds": "fixed"},
    "canary": {"share": 0.5}, "seed": 1, "pipeline": "pipe.py:run"}


PINNED: dict[str, dict[str, Any]] = {'docs': {'name': 'churn',
          'model': 'churn',
          'data': 'ROOT/landing/*.parquet',
          'event_time': 'ts',
          'label': 'churned',
          'id': 'customer',
          'schema': 'ROOT/schema.yaml',
          'train': {'flavor': 'lightgbm',
                    'params': {'n_estimators': 200},
                    'features': (),
                    'feature_refs': (),
                    'feature_store': None,
                    'component': None,
                    'task': None,
                    'nullable': ()},
          'window': {'spans': None, 'seconds': None, 'auto': True, 'text': 'auto'},
          'holdout': 0.25,
          'metric': 'roc_auc',
          'gate': {'min_improvement': 0.001,
                   'floor': 0.7,
                   'slices': (),
                   'serving': None,
                   'min_recall': None,
                   'costs': None},
          'retrain_on': ('decay', 'drift', 'schedule'),
          'schedule': '0 3 * * 1',
          'cooldown': 604800.0,
          'decay': {'max_drop': 0.03, 'baseline': 'champion', 'min_labels': 200},
          'drift': {'share': 0.5,
                    'columns': ('usage', 'tenure'),
                    'min_rows': 100,
                    'thresholds': 'fixed'},
          'canary': {'share': 0.1, 'min_labels': 500},
          'seed': 0,
          'pipeline': None,
          'description': '',
          'task': 'binary',
          'metric_given': True},
 'init_template': {'name': 'churn',
                   'model': 'churn',
                   'data': 'ROOT/landing/*.parquet',
                   'event_time': 'ts',
                   'label': 'churned',
                   'id': 'customer',
                   'schema': None,
                   'train': {'flavor': 'lightgbm',
                             'params': {'n_estimators': 50},
                             'features': (),
                             'feature_refs': (),
                             'feature_store': None,
                             'component': None,
                             'task': None,
                             'nullable': ()},
                   'window': {'spans': None, 'seconds': None, 'auto': True, 'text': 'auto'},
                   'holdout': 0.25,
                   'metric': 'roc_auc',
                   'gate': {'min_improvement': 0.001,
                            'floor': None,
                            'slices': (),
                            'serving': None,
                            'min_recall': None,
                            'costs': None},
                   'retrain_on': ('decay', 'drift'),
                   'schedule': None,
                   'cooldown': 0.0,
                   'decay': {'max_drop': 0.1, 'baseline': 'champion', 'min_labels': 200},
                   'drift': {'share': 0.5,
                             'columns': ('usage', 'tenure', 'spend'),
                             'min_rows': 100,
                             'thresholds': 'fixed'},
                   'canary': None,
                   'seed': 0,
                   'pipeline': None,
                   'description': '',
                   'task': None,
                   'metric_given': False},
 'ci_template': {'name': 'churn',
                 'model': 'churn',
                 'data': 'ROOT/landing/*.parquet',
                 'event_time': 'ts',
                 'label': 'churned',
                 'id': 'customer',
                 'schema': None,
                 'train': {'flavor': 'lightgbm',
                           'params': {},
                           'features': (),
                           'feature_refs': (),
                           'feature_store': None,
                           'component': 'ROOT/trainer.py:train_model',
                           'task': None,
                           'nullable': ()},
                 'window': {'spans': None, 'seconds': None, 'auto': True, 'text': 'auto'},
                 'holdout': 0.25,
                 'metric': 'roc_auc',
                 'gate': {'min_improvement': 0.001,
                          'floor': None,
                          'slices': (),
                          'serving': None,
                          'min_recall': None,
                          'costs': None},
                 'retrain_on': ('decay',),
                 'schedule': None,
                 'cooldown': 0.0,
                 'decay': {'max_drop': 0.1, 'baseline': 'champion', 'min_labels': 200},
                 'drift': {'share': 0.5, 'columns': (), 'min_rows': 100, 'thresholds': 'fixed'},
                 'canary': None,
                 'seed': 0,
                 'pipeline': None,
                 'description': '',
                 'task': None,
                 'metric_given': False},
 'churn_loop': {'name': 'churn',
                'model': 'churn',
                'data': 'ROOT/landing/*.parquet',
                'event_time': 'ts',
                'label': 'churned',
                'id': None,
                'schema': None,
                'train': {'flavor': 'lightgbm',
                          'params': {},
                          'features': (),
                          'feature_refs': (),
                          'feature_store': None,
                          'component': None,
                          'task': None,
                          'nullable': ()},
                'window': {'spans': 2, 'seconds': None, 'auto': False, 'text': '2 spans'},
                'holdout': 0.25,
                'metric': 'roc_auc',
                'gate': {'min_improvement': 0.001,
                         'floor': None,
                         'slices': (),
                         'serving': None,
                         'min_recall': None,
                         'costs': None},
                'retrain_on': ('drift',),
                'schedule': None,
                'cooldown': 0.0,
                'decay': {'max_drop': 0.03, 'baseline': 'champion', 'min_labels': 200},
                'drift': {'share': 0.5, 'columns': (), 'min_rows': 100, 'thresholds': 'fixed'},
                'canary': None,
                'seed': 0,
                'pipeline': None,
                'description': '',
                'task': None,
                'metric_given': False},
 'sql': {'name': 'churn',
         'model': 'm',
         'data': {'url': 'postgresql://u@h/db',
                  'query': 'select * from t',
                  'watermark': 'ts',
                  'span': 86400.0,
                  'span_text': '1d'},
         'event_time': 'ts',
         'label': 'y',
         'id': None,
         'schema': None,
         'train': {'flavor': 'lightgbm',
                   'params': {},
                   'features': (),
                   'feature_refs': (),
                   'feature_store': None,
                   'component': None,
                   'task': None,
                   'nullable': ()},
         'window': {'spans': 4, 'seconds': None, 'auto': False, 'text': '4 spans'},
         'holdout': 0.2,
         'metric': 'rmse',
         'gate': {'min_improvement': 0.001,
                  'floor': None,
                  'slices': (),
                  'serving': None,
                  'min_recall': None,
                  'costs': None},
         'retrain_on': ('new_span', 'decay'),
         'schedule': None,
         'cooldown': 43200.0,
         'decay': {'max_drop': 2, 'baseline': 0.5, 'min_labels': 10},
         'drift': {'share': 0.5, 'columns': (), 'min_rows': 100, 'thresholds': 'fixed'},
         'canary': None,
         'seed': 7,
         'pipeline': None,
         'description': '3',
         'task': 'regression',
         'metric_given': True},
 'features': {'name': 'churn',
              'model': 'm',
              'data': 'ROOT/landing/*.parquet',
              'event_time': 'ts',
              'label': 'y',
              'id': None,
              'schema': None,
              'train': {'flavor': 'xgboost',
                        'params': {'max_depth': 3},
                        'features': ('a', '2'),
                        'feature_refs': ('v:f', 'w'),
                        'feature_store': 'ROOT/features.py',
                        'component': None,
                        'task': 'multiclass',
                        'nullable': ('a',)},
              'window': {'spans': 3, 'seconds': None, 'auto': False, 'text': '3 spans'},
              'holdout': 0.25,
              'metric': 'macro_f1',
              'gate': {'min_improvement': 0.001,
                       'floor': None,
                       'slices': (),
                       'serving': None,
                       'min_recall': None,
                       'costs': None},
              'retrain_on': ('new_span',),
              'schedule': None,
              'cooldown': 0.0,
              'decay': {'max_drop': 0.03, 'baseline': 'champion', 'min_labels': 200},
              'drift': {'share': 1.0,
                        'columns': ('a', 'b'),
                        'min_rows': 100,
                        'thresholds': 'stationary'},
              'canary': {'share': 0.5, 'min_labels': 200},
              'seed': 0,
              'pipeline': 'ROOT/pipe.py:retrain',
              'description': '',
              'task': 'multiclass',
              'metric_given': True},
 'gate_rules': {'name': 'churn',
                'model': 'm',
                'data': 'ROOT/landing/*.parquet',
                'event_time': 'ts',
                'label': 'y',
                'id': None,
                'schema': None,
                'train': {'flavor': 'lightgbm',
                          'params': {},
                          'features': (),
                          'feature_refs': (),
                          'feature_store': None,
                          'component': None,
                          'task': None,
                          'nullable': ()},
                'window': {'spans': 3, 'seconds': None, 'auto': False, 'text': '3 spans'},
                'holdout': 0.25,
                'metric': 'roc_auc',
                'gate': {'min_improvement': 0.0,
                         'floor': 1.0,
                         'slices': ({'column': 'c', 'metric': 'roc_auc', 'min_change': -0.1},),
                         'serving': {'p99_ms': 50},
                         'min_recall': 1.0,
                         'costs': {'fn': 4.0, 'fp': 1.0, 'tp': 0.0, 'tn': 0.0}},
                'retrain_on': ('new_span',),
                'schedule': None,
                'cooldown': 0.0,
                'decay': {'max_drop': 0.03, 'baseline': 'champion', 'min_labels': 200},
                'drift': {'share': 0.5, 'columns': (), 'min_rows': 100, 'thresholds': 'fixed'},
                'canary': None,
                'seed': 0,
                'pipeline': None,
                'description': '',
                'task': 'binary',
                'metric_given': True},
 'train_task_only': {'name': 'churn',
                     'model': 'm',
                     'data': 'ROOT/landing/*.parquet',
                     'event_time': 'ts',
                     'label': 'y',
                     'id': None,
                     'schema': None,
                     'train': {'flavor': 'lightgbm',
                               'params': {},
                               'features': (),
                               'feature_refs': (),
                               'feature_store': None,
                               'component': None,
                               'task': 'binary',
                               'nullable': ()},
                     'window': {'spans': 3, 'seconds': None, 'auto': False, 'text': '3 spans'},
                     'holdout': 0.25,
                     'metric': 'roc_auc',
                     'gate': {'min_improvement': 0.001,
                              'floor': None,
                              'slices': (),
                              'serving': None,
                              'min_recall': None,
                              'costs': None},
                     'retrain_on': ('new_span',),
                     'schedule': None,
                     'cooldown': 0.0,
                     'decay': {'max_drop': 0.03, 'baseline': 'champion', 'min_labels': 200},
                     'drift': {'share': 0.5,
                               'columns': (),
                               'min_rows': 100,
                               'thresholds': 'fixed'},
                     'canary': None,
                     'seed': 0,
                     'pipeline': None,
                     'description': '',
                     'task': 'binary',
                     'metric_given': True},
 'metric_only': {'name': 'churn',
                 'model': 'm',
                 'data': 'ROOT/landing/*.parquet',
                 'event_time': 'ts',
                 'label': 'y',
                 'id': 'row',
                 'schema': None,
                 'train': {'flavor': 'lightgbm',
                           'params': {},
                           'features': (),
                           'feature_refs': (),
                           'feature_store': None,
                           'component': None,
                           'task': None,
                           'nullable': ()},
                 'window': {'spans': 3, 'seconds': None, 'auto': False, 'text': '3 spans'},
                 'holdout': 0.25,
                 'metric': 'rmse',
                 'gate': {'min_improvement': 0.001,
                          'floor': None,
                          'slices': (),
                          'serving': None,
                          'min_recall': None,
                          'costs': None},
                 'retrain_on': ('schedule',),
                 'schedule': '0 3 * * 1',
                 'cooldown': 0.0,
                 'decay': {'max_drop': 0.03, 'baseline': 'champion', 'min_labels': 200},
                 'drift': {'share': 0.5, 'columns': (), 'min_rows': 100, 'thresholds': 'fixed'},
                 'canary': None,
                 'seed': 0,
                 'pipeline': None,
                 'description': '',
                 'task': None,
                 'metric_given': True},
 'no_signals_but_schedule': {'name': 'churn',
                             'model': 'm',
                             'data': 'ROOT/landing/*.parquet',
                             'event_time': 'ts',
                             'label': 'y',
                             'id': None,
                             'schema': None,
                             'train': {'flavor': 'lightgbm',
                                       'params': {},
                                       'features': (),
                                       'feature_refs': (),
                                       'feature_store': None,
                                       'component': None,
                                       'task': None,
                                       'nullable': ()},
                             'window': {'spans': 3,
                                        'seconds': None,
                                        'auto': False,
                                        'text': '3 spans'},
                             'holdout': 0.25,
                             'metric': 'roc_auc',
                             'gate': {'min_improvement': 0.001,
                                      'floor': None,
                                      'slices': (),
                                      'serving': None,
                                      'min_recall': None,
                                      'costs': None},
                             'retrain_on': ('schedule',),
                             'schedule': '0 3 * * 1',
                             'cooldown': 0.0,
                             'decay': {'max_drop': 0.03,
                                       'baseline': 'champion',
                                       'min_labels': 200},
                             'drift': {'share': 0.5,
                                       'columns': (),
                                       'min_rows': 100,
                                       'thresholds': 'fixed'},
                             'canary': None,
                             'seed': 0,
                             'pipeline': None,
                             'description': '',
                             'task': None,
                             'metric_given': False},
 'no_signals': {'name': 'churn',
                'model': 'm',
                'data': 'ROOT/landing/*.parquet',
                'event_time': 'ts',
                'label': 'y',
                'id': None,
                'schema': None,
                'train': {'flavor': 'lightgbm',
                          'params': {},
                          'features': (),
                          'feature_refs': (),
                          'feature_store': None,
                          'component': None,
                          'task': None,
                          'nullable': ()},
                'window': {'spans': 3, 'seconds': None, 'auto': False, 'text': '3 spans'},
                'holdout': 0.25,
                'metric': 'roc_auc',
                'gate': {'min_improvement': 0.001,
                         'floor': None,
                         'slices': (),
                         'serving': None,
                         'min_recall': None,
                         'costs': None},
                'retrain_on': (),
                'schedule': None,
                'cooldown': 0.0,
                'decay': {'max_drop': 0.03, 'baseline': 'champion', 'min_labels': 200},
                'drift': {'share': 0.5, 'columns': (), 'min_rows': 100, 'thresholds': 'fixed'},
                'canary': None,
                'seed': 0,
                'pipeline': None,
                'description': '',
                'task': None,
                'metric_given': False}}
ERRORS: dict[str, tuple[str, str]] = (
{'not_a_table': ('ConfigError', "Loop 'churn' must be a table of settings. Got 3."),
 'unknown_close': ('ConfigError', "Loop 'churn': unknown key 'windw'; did you mean 'window'?"),
 'unknown_far': ('ConfigError',
                 "Loop 'churn': unknown key 'zzz'; valid keys: model, data, event_time, label, "
                 'id, schema, train, window, holdout, metric, gate, retrain_on, schedule, '
                 'cooldown, decay, drift, canary, seed, pipeline, description, task'),
 'missing_model': ('ConfigError', "Loop 'churn': key 'model' is required (see docs/loop.md)."),
 'empty_data': ('ConfigError', "Loop 'churn': key 'data' is required (see docs/loop.md)."),
 'missing_event_time': ('ConfigError',
                        "Loop 'churn': key 'event_time' is required (see docs/loop.md)."),
 'missing_label': ('ConfigError', "Loop 'churn': key 'label' is required (see docs/loop.md)."),
 'data_list': ('ConfigError',
               "Loop 'churn': key 'data' must be a glob of landed files or a table { url, query, "
               "watermark, span }. Got ['a', 'b']."),
 'data_unknown': ('ConfigError',
                  "Loop 'churn': data: unknown key 'querry'; did you mean 'query'?"),
 'data_missing': ('ConfigError',
                  "Loop 'churn': data needs key 'watermark' for a SQL source (url, query, "
                  'watermark, span).'),
 'data_span_spans': ('ConfigError',
                     'Loop \'churn\': key \'data.span\' must be a duration like "7d". Got \'3 '
                     "spans'."),
 'data_span_text': ('ConfigError',
                    'Loop \'churn\': data: key \'window\' must be "N spans", an event-time '
                    'duration like "60d", or "auto". Got \'weekly\'.'),
 'train_number': ('ConfigError',
                  "Loop 'churn': key 'train' must be a table { flavor, params, features } or "
                  '"file.py:component". Got 3.'),
 'train_ref_form': ('ConfigError',
                    'Loop \'churn\': key \'train\' must be "file.py:name". Got \'trainer.py\'.'),
 'train_ref_missing': ('NotFound',
                       "Loop 'churn': key 'train': file 'nowhere.py' does not exist (looked for "
                       'ROOT/nowhere.py).'),
 'train_unknown': ('ConfigError',
                   "Loop 'churn': train: unknown key 'flavour'; did you mean 'flavor'?"),
 'train_flavor_close': ('ConfigError',
                        "Loop 'churn': key 'train.flavor' is 'lightgmb'; did you mean "
                        "'lightgbm'?"),
 'train_flavor_far': ('ConfigError',
                      "Loop 'churn': key 'train.flavor' is 'torch'; use one of lightgbm, sklearn, "
                      'xgboost, logistic, catboost.'),
 'train_params': ('ConfigError', "Loop 'churn': key 'train.params' must be a table. Got [1, 2]."),
 'train_nullable_str': ('ConfigError',
                        "Loop 'churn': key 'train.nullable' must be a list of column names. Got "
                        "'a'."),
 'train_nullable_empty': ('ConfigError',
                          "Loop 'churn': key 'train.nullable' must be a list of column names. Got "
                          "['a', '']."),
 'train_refs_str': ('ConfigError',
                    'Loop \'churn\': key \'train.feature_refs\' must be a list of "view:feature" '
                    "references. Got 'v:f'."),
 'train_refs_number': ('ConfigError',
                       "Loop 'churn': key 'train.feature_refs' must be a list of "
                       '"view:feature" references. Got [\'v:f\', 3].'),
 'train_store_missing': ('NotFound',
                         "Loop 'churn': key 'train.feature_store': file 'nowhere.py' does not "
                         'exist (looked for ROOT/nowhere.py).'),
 'window_text': ('ConfigError',
                 'Loop \'churn\': key \'window\' must be "N spans", an event-time duration like '
                 '"60d", or "auto". Got \'three\'.'),
 'window_zero': ('ConfigError',
                 'Loop \'churn\': key \'window\' must be "N spans", an event-time duration like '
                 '"60d", or "auto". Got 0.'),
 'window_bool': ('ConfigError',
                 'Loop \'churn\': key \'window\' must be "N spans", an event-time duration like '
                 '"60d", or "auto". Got True.'),
 'window_zero_spans': ('ConfigError',
                       'Loop \'churn\': key \'window\' must be "N spans", an event-time duration '
                       'like "60d", or "auto". Got \'0 spans\'.'),
 'holdout_high': ('ConfigError',
                  "Loop 'churn': key 'holdout' must be a share in (0, 0.9]. Got 0.95."),
 'holdout_text': ('ConfigError',
                  "Loop 'churn': key 'holdout' must be a share in (0, 0.9]. Got 'most'."),
 'holdout_zero': ('ConfigError',
                  "Loop 'churn': key 'holdout' must be a share in (0, 0.9]. Got 0."),
 'task_bad': ('ConfigError',
              "Loop 'churn': key 'task' must be one of binary, multiclass, regression; got "
              "'ranking'."),
 'train_task_bad': ('ConfigError',
                    "Loop 'churn': key 'train.task' must be one of binary, multiclass, "
                    "regression; got 'ranking'."),
 'task_disagree': ('ConfigError',
                   "Loop 'churn': key 'task' is 'binary' but 'train.task' is 'regression'; "
                   'declare one.'),
 'metric_close': ('ConfigError',
                  "Loop 'churn': key 'metric' names unknown metric 'roc_aux'; did you mean "
                  "'roc_auc'?"),
 'metric_far': ('ConfigError', "Loop 'churn': key 'metric' names unknown metric 'zzzzzz'."),
 'metric_task': ('ConfigError',
                 "Loop 'churn': key 'metric' 'rmse' does not apply to a binary task; use one of "
                 'roc_auc, log_loss, accuracy, precision, recall, f1.'),
 'gate_number': ('ConfigError', "Loop 'churn': gate must be a table. Got 1."),
 'gate_unknown': ('ConfigError',
                  "Loop 'churn': gate: unknown key 'min_improvment'; did you mean "
                  "'min_improvement'?"),
 'gate_serving': ('ConfigError',
                  "Loop 'churn': key 'gate.serving': Unknown key(s) ['p99'] in the gate's serving "
                  'rule; allowed: p99_ms, max_error_rate, concurrency, seconds, rows.'),
 'gate_recall_zero': ('ConfigError',
                      "Loop 'churn': key 'gate': The gate's min_recall must be a share in (0, 1]. "
                      'Got 0.0.'),
 'gate_recall_text': ('ConfigError',
                      "Loop 'churn': key 'gate': The gate's min_recall must be a number. Got "
                      "'high'."),
 'gate_costs': ('ConfigError',
                "Loop 'churn': key 'gate': costs take fn, fp, tp and tn only. Got "
                "['false_alarm']."),
 'gate_costs_negative': ('ConfigError',
                         "Loop 'churn': key 'gate': A wrong decision must cost more than the "
                         "right one (fn > tp and fp > tn). Got {'fn': -1}."),
 'retrain_close': ('ConfigError',
                   "Loop 'churn': key 'retrain_on' has unknown signal 'dirft'; did you mean "
                   "'drift'?"),
 'retrain_far': ('ConfigError',
                 "Loop 'churn': key 'retrain_on' has unknown signal 'weekly'; use any of "
                 'new_span, schedule, decay, drift, estimate.'),
 'schedule_bad': ('ConfigError',
                  "Loop 'churn': key 'schedule' is not a cron expression: 'every monday' (five "
                  'fields, e.g. "0 3 * * 1").'),
 'schedule_missing': ('ConfigError',
                      "Loop 'churn': retrain_on has 'schedule' but key 'schedule' (a cron "
                      'expression) is missing.'),
 'cooldown_bad': ('ConfigError',
                  "Loop 'churn': key 'cooldown' must be seconds or a duration like '30m', '24h', "
                  "'7d'. Got 'a while'."),
 'decay_number': ('ConfigError', "Loop 'churn': decay must be a table. Got 0.1."),
 'decay_unknown': ('ConfigError',
                   "Loop 'churn': decay: unknown key 'max_dorp'; did you mean 'max_drop'?"),
 'decay_baseline': ('ConfigError',
                    'Loop \'churn\': key \'decay.baseline\' must be "champion", "best_live" or a '
                    "number (an absolute floor). Got 'best'."),
 'decay_negative': ('ConfigError', "Loop 'churn': key 'decay.max_drop' must be >= 0. Got -0.1."),
 'drift_unknown': ('ConfigError',
                   "Loop 'churn': drift: unknown key 'shares'; did you mean 'share'?"),
 'drift_thresholds': ('ConfigError',
                      'Loop \'churn\': key \'drift.thresholds\' must be "fixed" or "stationary". '
                      "Got 'moving'."),
 'drift_share': ('ConfigError',
                 "Loop 'churn': key 'drift.share' must be a share in (0, 1]. Got 0."),
 'canary_text': ('ConfigError', "Loop 'churn': canary must be a table. Got 'yes'."),
 'canary_unknown': ('ConfigError',
                    "Loop 'churn': canary: unknown key 'min_label'; did you mean 'min_labels'?"),
 'canary_share': ('ConfigError',
                  "Loop 'churn': key 'canary.share' must be a share in (0, 1]. Got 2."),
 'seed_text': ('ConfigError',
              "Loop 'churn': key 'seed' must be a whole number, like 7. Got 'x'."),
 'seed_fraction': ('ConfigError',
                  "Loop 'churn': key 'seed' must be a whole number, like 7. Got 5.5."),
 'seed_dashes': ('ConfigError',
                 "Loop 'churn': key 'seed' must be a whole number, like 7. Got '--7'."),
 'seed_flag': ('ConfigError',
              "Loop 'churn': key 'seed' must be a whole number, like 7. Got True."),
 'pipeline_form': ('ConfigError',
                   'Loop \'churn\': key \'pipeline\' must be "file.py:name". Got \'pipe.py\'.'),
 'pipeline_missing': ('NotFound',
                      "Loop 'churn': key 'pipeline': file 'nowhere.py' does not exist (looked for "
                      'ROOT/nowhere.py).')})
ORDER: list[str] = (
["Loop 'churn': unknown key 'zzz'; valid keys: model, data, event_time, label, id, schema, train, "
 'window, holdout, metric, gate, retrain_on, schedule, cooldown, decay, drift, canary, seed, '
 'pipeline, description, task',
 "Loop 'churn': key 'model' is required (see docs/loop.md).",
 "Loop 'churn': key 'data' must be a glob of landed files or a table { url, query, watermark, "
 "span }. Got ['x'].",
 "Loop 'churn': key 'train.flavor' is 'torch'; use one of lightgbm, sklearn, xgboost, logistic, "
 'catboost.',
 'Loop \'churn\': key \'window\' must be "N spans", an event-time duration like "60d", or "auto". '
 "Got 'three'.",
 "Loop 'churn': key 'holdout' must be a share in (0, 0.9]. Got 2.",
 "Loop 'churn': key 'task' must be one of binary, multiclass, regression; got 'ranking'.",
 "Loop 'churn': key 'metric' names unknown metric 'zzzzzz'.",
 "Loop 'churn': key 'gate': The gate's min_recall must be a share in (0, 1]. Got 0.0.",
 "Loop 'churn': key 'retrain_on' has unknown signal 'weekly'; use any of new_span, schedule, "
 'decay, drift, estimate.',
 "Loop 'churn': key 'schedule' is not a cron expression: 'every monday' (five fields, e.g. "
 '"0 3 * * 1").',
 "Loop 'churn': key 'cooldown' must be seconds or a duration like '30m', '24h', '7d'. Got 'a "
 "while'.",
 "Loop 'churn': key 'decay.max_drop' must be >= 0. Got -1.",
 'Loop \'churn\': key \'drift.thresholds\' must be "fixed" or "stationary". Got \'moving\'.',
 "Loop 'churn': key 'canary.share' must be a share in (0, 1]. Got 2.",
 "Loop 'churn': key 'seed' must be a whole number, like 7. Got 'x'.",
 'Loop \'churn\': key \'pipeline\' must be "file.py:name". Got \'pipe.py\'.'])
