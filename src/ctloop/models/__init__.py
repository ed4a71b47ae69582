"""Models: flavors (save/load), signatures, training, metrics, slices, the gate, infra check.

Pure library code: nothing here knows about pipelines or the registry. The
names below are imported on first use (PEP 562): loading a model to serve it
(``ctloop.models.flavors``) must not import training, evaluation and the gate,
or the libraries they need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ctloop.models.evaluation import evaluate_models, evaluate_predictions
    from ctloop.models.flavors import (
        FLAVORS,
        LoadedModel,
        ModelEnvironmentWarning,
        load_model,
        read_manifest,
        save_model,
    )
    from ctloop.models.gate import (
        ChangeRule,
        FloorRule,
        GateConfig,
        SliceRule,
        judge,
        render_blessing,
    )
    from ctloop.models.infra import infra_check
    from ctloop.models.metrics import metrics_with_ci
    from ctloop.models.signature import Signature
    from ctloop.models.training import ALGORITHMS, TrainedModel, fit_model

_LAZY = {
    "evaluate_models": "evaluation",
    "evaluate_predictions": "evaluation",
    "FLAVORS": "flavors",
    "LoadedModel": "flavors",
    "ModelEnvironmentWarning": "flavors",
    "load_model": "flavors",
    "read_manifest": "flavors",
    "save_model": "flavors",
    "ChangeRule": "gate",
    "FloorRule": "gate",
    "GateConfig": "gate",
    "SliceRule": "gate",
    "judge": "gate",
    "render_blessing": "gate",
    "infra_check": "infra",
    "metrics_with_ci": "metrics",
    "Signature": "signature",
    "ALGORITHMS": "training",
    "TrainedModel": "training",
    "fit_model": "training",
}

__all__ = [
    "ALGORITHMS",
    "FLAVORS",
    "ChangeRule",
    "FloorRule",
    "GateConfig",
    "LoadedModel",
    "ModelEnvironmentWarning",
    "Signature",
    "SliceRule",
    "TrainedModel",
    "evaluate_models",
    "evaluate_predictions",
    "fit_model",
    "infra_check",
    "judge",
    "load_model",
    "metrics_with_ci",
    "read_manifest",
    "render_blessing",
    "save_model",
]


def __getattr__(name: str) -> object:  # the names above are typed by TYPE_CHECKING
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ctloop.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"ctloop.models.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
