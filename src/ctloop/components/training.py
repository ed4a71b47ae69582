"""Standard components for the model half of the loop: train, evaluate, infra check, push.

Thin wrappers: the work is done by ``ctloop.models`` (fit, evaluate, gate,
infra check) and ``ctloop.registry`` (register, promote), which are usable and
tested without pipelines. The evaluate step scores the candidate and the
current champion on the same rows and writes the blessing; push registers
every candidate but moves the alias only for a blessed one, and only if the
champion is still the one it was compared with (compare-and-set).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, TypedDict

from ctloop.core.errors import NotFound, ValidationFailed
from ctloop.core.jsontypes import JSONValue
from ctloop.pipeline import Dataset, Input, Metrics, Model, Output, component

if TYPE_CHECKING:
    from ctloop.models import LoadedModel

__all__ = ["EvaluateSummary", "InfraSummary", "PushSummary", "TrainSummary", "evaluate",
           "infra_check", "push", "train"]


class TrainSummary(TypedDict):
    """What ``train`` returns (the step's outputs in the metadata store)."""

    rows: int
    training_seconds: float
    params: dict[str, JSONValue]
    seed: int
    task: str
    classes: JSONValue
    model_sha256: str


class EvaluateSummary(TypedDict):
    """What ``evaluate`` returns: the gate's verdict in short."""

    blessed: bool
    failed: list[str]
    champion_version: int | None
    summary: str
    held: JSONValue


class InfraSummary(TypedDict):
    """What ``infra_check`` returns: its timings."""

    latency_ms: float
    load_ms: float


class PushSummary(TypedDict):
    """What ``push`` returns: the version registered and whether the alias moved to it."""

    version: int
    promoted: bool
    alias: str
    blessed: bool

_SUMMARY_FILE = "training-summary.json"


@component(version="4")
def train(
    data: Input[Dataset],
    model: Output[Model],
    label: str,
    features: list[str],
    algorithm: str = "lightgbm",
    params: dict[str, object] | None = None,
    seed: int = 0,
    task: str | None = None,
    metric: str | None = None,
    classes: list[str | int] | None = None,
    holdout: Input[Dataset] | None = None,
    costs: dict[str, float] | None = None,
    outliers: bool = True,
    nullable: list[str] | None = None,
) -> TrainSummary:
    """Fit a model on ``data``; the seed and full parameters are recorded.

    Stored with the model (``ctloop.models.calibration.finalize_model``): an
    outlier detector on its inputs (``outliers``) and, given a ``holdout``, a
    calibration for label-free estimates and, with ``costs``, the
    cost-minimising decision threshold.

    Args:
        data: the training table (a parquet ``Dataset``).
        model: the fitted model, saved with its flavor, signature and metadata.
        label: the column to predict.
        features: the columns the model reads, in order.
        algorithm: ``logistic``, ``hist_gradient_boosting``, ``lightgbm``, ``xgboost`` or
            the dotted name of any scikit-learn classifier or regressor
            (``sklearn.ensemble.RandomForestClassifier``).
        params: overrides of the algorithm's default hyper-parameters.
        seed: the random seed (recorded with the model).
        task: ``binary``, ``multiclass`` or ``regression``; inferred from the label and
            ``metric`` when absent (``classification`` reads as binary).
        metric: the loop's metric, checked against the task (``rmse`` on a string
            label is refused) and used to infer it.
        classes: the class labels, when declared; each must have rows
            (``NotTrainable`` otherwise).
        holdout: labelled rows not trained on (e.g. the evaluation set), to fit the
            calibration and choose the cost-aware decision threshold on.
        costs: cost per row of each outcome, ``{"fn": 5, "fp": 1}``; with a holdout,
            the threshold minimising expected cost is stored with the model.
        outliers: fit and store an outlier detector on the model's inputs.
        nullable: features that may be missing when the model serves although ``data``
            has no gap in them (a feature with gaps in ``data`` is nullable anyway).

    Returns the model's metadata: algorithm, full parameters, rows and training time.
    """
    from ctloop.core.hashing import stable_json
    from ctloop.models import fit_model

    frame = data.read()
    trained = fit_model(
        frame,
        label=label,
        features=list(features),
        algorithm=algorithm,
        params=params,
        seed=seed,
        task=task,
        metric=metric,
        classes=classes,
        nullable=nullable or (),
    )
    manifest = trained.save(model.path)
    if outliers or holdout is not None:
        from ctloop.models.calibration import finalize_model

        finalize_model(
            model.path, holdout.read() if holdout is not None else frame.head(0),
            label=label, costs=costs if holdout is not None else None,
            calibrate=holdout is not None, training=frame if outliers else None,
            outlier_features=features,
        )
    (model.path / _SUMMARY_FILE).write_text(stable_json(trained.data_summary))
    model.metadata.update(
        {
            "flavor": manifest["flavor"],
            "task": trained.task,
            "label": label,
            "algorithm": algorithm,
            "model_sha256": manifest["sha256"],
            "signature": manifest["signature"],
            "training_data": {"id": data.id, "sha256": data.sha256, "rows": trained.n_rows},
        }
    )
    return {
        "rows": trained.n_rows,
        "training_seconds": round(trained.training_seconds, 3),
        "params": trained.params,
        "seed": seed,
        "task": trained.task,
        "classes": manifest["signature"].get("classes"),
        "model_sha256": manifest["sha256"],
    }


def _champion(model_name: str, alias: str) -> tuple[LoadedModel | None, int | None]:
    from ctloop.pipeline.context import open_stores
    from ctloop.registry import ModelRegistry

    store, artifacts = open_stores()
    try:
        registry = ModelRegistry(store)
        try:
            record = registry.get(f"{model_name}@{alias}")
        except NotFound:
            return None, None
        return registry.load(
            f"{model_name}:{record.version}", artifacts
        ), record.version
    finally:
        store.close()


@component(version="1", cache=False)
def evaluate(
    candidate: Input[Model],
    data: Input[Dataset],
    evaluation: Output[Metrics],
    blessing: Output[Metrics],
    model_name: str,
    gate: dict[str, object],
    slice_columns: list[str] | None = None,
    alias: str = "champion",
    threshold: float = 0.5,
    n_boot: int = 200,
    seed: int = 0,
    costs: dict[str, float] | None = None,
) -> EvaluateSummary:
    """Evaluate the candidate and the current champion on ``data``; judge with the gate.

    With ``costs`` ({"fn": 5, "fp": 1}) each model decides at its cost-aware
    threshold and ``expected_cost`` is compared. Not cached: the champion it
    compares with can change between runs.

    Args:
        candidate: the model just trained.
        data: the holdout both models are scored on.
        evaluation: metrics of each model, overall and per slice, with bootstrap intervals.
        blessing: the gate's verdict (blessed or not, and the failed rules).
        model_name: the registered model whose ``alias`` holds the champion.
        gate: the rules, e.g. ``{"floors": {"roc_auc": 0.7}, "changes": {"roc_auc":
            -0.005}, "slices": [{"column": "origin", "metric": "roc_auc",
            "min_change": -0.02, "min_rows": 1000}]}``.
        slice_columns: columns whose values define the slices to compare on.
        alias: the alias of the champion (default ``champion``).
        threshold: probability cut-off for the threshold metrics.
        n_boot: bootstrap resamples for the confidence intervals.
        seed: random seed of the bootstrap.
        costs: cost per row of each outcome (``{"fn": 5, "fp": 1}``): each model then
            decides at its cost-aware threshold and ``expected_cost`` can be gated
            (default: the gate's own ``costs``).

    Returns whether the candidate was blessed, the failed rules, the gate's one-line
    summary (why, in the metric's direction; an undefined metric says so) and the
    champion version it was judged against.
    """
    from ctloop.models import GateConfig, evaluate_models, judge, load_model

    config = GateConfig.from_dict(gate)
    models = {"candidate": load_model(candidate.path)}
    champion, champion_version = _champion(model_name, alias)
    if champion is not None:
        models["champion"] = champion
    report = evaluate_models(
        models,
        data.read(),
        label=str(models["candidate"].manifest["metadata"].get("label", "")),
        slice_columns=slice_columns or [],
        threshold=threshold,
        n_boot=n_boot,
        seed=seed,
        costs=costs if costs is not None else config.costs,
    )
    verdict = judge(report, config)
    verdict["champion_version"] = champion_version
    verdict["gate"] = config.to_dict()
    evaluation.write(report)
    blessing.write(verdict)
    overall = report["models"]["candidate"]["overall"]["metrics"]
    evaluation.metadata.update({k: v["value"] for k, v in overall.items()})
    return {
        "blessed": verdict["blessed"],
        "failed": verdict["failed"],
        "champion_version": champion_version,
        "summary": verdict["summary"],
        "held": verdict["held"],
    }


@component(version="1")
def infra_check(
    model: Input[Model],
    data: Input[Dataset],
    report: Output[Metrics],
    sample_rows: int = 100,
    max_latency_ms: float = 1000.0,
    serving: dict[str, object] | None = None,
) -> InfraSummary:
    """Load the model in a fresh process as the server would and predict sample rows.

    Args:
        model: the model to check.
        data: rows to predict (the first ``sample_rows`` are used).
        report: the checks, their details and timings.
        sample_rows: how many rows to predict.
        max_latency_ms: the slowest acceptable prediction of the sample.
        serving: the gate's serving rule (``{"p99_ms": 50, "concurrency": 8}``): also serve
            the model for real and check its HTTP answers, p99 and error rate.

    Fails the step (``ValidationFailed``) when a check fails.
    """
    from ctloop.models import infra_check as check

    result = check(model.path, data.read().head(sample_rows), max_latency_ms=max_latency_ms,
                   serving=serving)
    report.write(result)
    if not result["passed"]:
        failed = [c["detail"] for c in result["checks"] if not c["passed"]]
        raise ValidationFailed(f"The model failed its infra check: {'; '.join(failed)}.")
    return {"latency_ms": result["latency_ms"], "load_ms": result["load_ms"]}


@component(version="1", cache=False)
def push(
    model: Input[Model],
    evaluation: Input[Metrics],
    blessing: Input[Metrics],
    model_name: str,
    alias: str = "champion",
    reason: str = "",
) -> PushSummary:
    """Register the model; move ``alias`` to it only if it was blessed.

    The move is a compare-and-set against the champion the gate compared with,
    so a champion changed meanwhile makes this step fail instead of promoting
    a model judged against the wrong baseline.

    Args:
        model: the model to register.
        evaluation: the ``evaluate`` step's metrics (stored with the version).
        blessing: the ``evaluate`` step's verdict.
        model_name: the registered model to add a version to.
        alias: the alias to move when blessed (default ``champion``).
        reason: kept in the alias history.
    """
    from ctloop.pipeline.context import open_stores
    from ctloop.registry import ModelRegistry

    report = json.loads(evaluation.path.read_text())
    verdict = json.loads(blessing.path.read_text())
    candidate = report["models"]["candidate"]
    properties = {
        "evaluation": {
            "overall": candidate["overall"],
            "slices": candidate["slices"],
            "label": report["label"],
            "n_rows": report["n_rows"],
        },
        "blessing": verdict,
        "flavor": model.metadata.get("flavor"),
        "signature": model.metadata.get("signature"),
        "training_data": model.metadata.get("training_data"),
    }
    store, _ = open_stores()
    try:
        registry = ModelRegistry(store)
        record = registry.register(
            model_name,
            model.id,
            properties=properties,
            tags={"blessed": str(verdict["blessed"]).lower()},
        )
        promoted = False
        if verdict["blessed"]:
            registry.promote(
                model_name,
                record.version,
                alias=alias,
                reason=reason or verdict["summary"],
                # The compare-and-set guards the alias the gate compared with; a blessed
                # challenger (a canary) takes its alias whoever held it.
                expected_version=verdict.get("champion_version") if alias == "champion" else ...,
            )
            promoted = True
    finally:
        store.close()
    return {
        "version": record.version,
        "promoted": promoted,
        "alias": alias,
        "blessed": verdict["blessed"],
    }
