"""Models: flavors (save/load), signatures, training, metrics, slices, the gate, infra check.

Pure library code: nothing here knows about pipelines or the registry.
"""

from ctloop.models.evaluation import evaluate_models, evaluate_predictions
from ctloop.models.flavors import (
    FLAVORS,
    LoadedModel,
    ModelEnvironmentWarning,
    load_model,
    read_manifest,
    save_model,
)
from ctloop.models.gate import ChangeRule, FloorRule, GateConfig, SliceRule, judge, render_blessing
from ctloop.models.infra import infra_check
from ctloop.models.metrics import metrics_with_ci
from ctloop.models.signature import Signature
from ctloop.models.training import ALGORITHMS, TrainedModel, fit_model

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
