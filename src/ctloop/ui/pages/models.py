"""Models: versions with metrics and intervals, one version in full, compare, promote, roll back.

Promotion and rollback go through ``ModelRegistry`` exactly like ``ctloop
models promote/rollback``: the move is recorded in the alias history with the
signed-in person as actor (``NAME (ui)``) and the reason typed in the form.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import pandas as pd
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ctloop.core.errors import NotFound, UserInputError
from ctloop.core.jsontypes import as_object
from ctloop.metadata.base import ModelVersionRecord
from ctloop.models.evaluation_record import Evaluation
from ctloop.models.tasks import HIGHER_IS_BETTER, better_word, default_metric, normalize_task
from ctloop.registry import ROLLBACK_MARK
from ctloop.ui.forms import CSRF_TEXT, Forbidden, read_form
from ctloop.ui.state import UiState, identity_of, page, state_of

__all__ = ["router"]

router = APIRouter()


def _metric_names(evaluations: list[Evaluation]) -> list[str]:
    preferred = ["roc_auc", "log_loss", "accuracy", "macro_f1", "weighted_f1", "f1",
                 "precision", "recall", "rmse", "mae", "r2", "mape"]
    seen = {m for e in evaluations for m in e.overall.metrics}
    return [m for m in preferred if m in seen] + sorted(seen - set(preferred))


@router.get("/models", response_class=HTMLResponse)
def models_list(request: Request) -> HTMLResponse:
    return page(request, "models.html", {"models": state_of(request).registry().models()})


@router.get("/models/{name}", response_class=HTMLResponse)
def model_page(request: Request, name: str) -> HTMLResponse:
    state = state_of(request)
    registry = state.registry()
    versions = registry.versions(name)  # NotFound naming the known models
    aliases = state.store.get_aliases(name)
    by_version: dict[int, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(version, []).append(alias)
    history = list(reversed(state.store.alias_history(name)))
    can_roll = {a: len(registry.holders(name, a)) >= 2 for a in aliases}
    evaluations = {v.version: Evaluation.from_json(v.properties) for v in versions}
    return page(request, "model.html", {
        "name": name, "versions": list(reversed(versions)), "aliases": aliases,
        "by_version": by_version, "history": history, "evaluations": evaluations,
        "metrics": _metric_names(list(evaluations.values())),
        "rollback_mark": ROLLBACK_MARK, "can_roll": can_roll,
        "flash": request.query_params.get("done"),
    })


@router.get("/models/{name}/versions/{version}", response_class=HTMLResponse)
def version_page(request: Request, name: str, version: int) -> HTMLResponse:
    state = state_of(request)
    registry = state.registry()
    registry.versions(name)
    record = state.store.get_model_version(name, version)
    evaluation = Evaluation.from_json(record.properties)
    aliases = sorted(a for a, v in registry.aliases(name).items() if v == version)
    return page(request, "version.html", {
        "v": record, "ev": evaluation, "overall": evaluation.overall, "aliases": aliases,
        "lineage": record.properties.get("lineage") or {},
        "others": [x.version for x in registry.versions(name) if x.version != version],
        "better": {m: better_word(m) for m in HIGHER_IS_BETTER},
    })


def _evaluation_data(state: UiState, record: ModelVersionRecord) -> str | None:
    """The dataset the version's own evaluate step scored (its holdout), if recorded."""
    if not record.run_id:
        return None
    try:
        steps = state.store.get_steps(record.run_id)
    except NotFound:
        return None
    for step in steps:
        if step.component == "evaluate":
            for event in state.store.get_events(step_id=step.id):
                if event.kind == "input" and event.name == "data":
                    return str(event.artifact_id)
    return None


@router.get("/models/{name}/compare", response_class=HTMLResponse)
def compare_versions(
    request: Request,
    name: str,
    a: Annotated[int, Query(ge=1)],
    b: Annotated[int, Query(ge=1)],
    data: Annotated[str | None, Query(description="Dataset artifact id")] = None,
) -> HTMLResponse:
    """Both versions scored on the same rows (by default version b's holdout), then compared."""
    from ctloop.models import evaluate_models

    state = state_of(request)
    registry = state.registry()
    va, vb = registry.get(f"{name}:{a}"), registry.get(f"{name}:{b}")
    data_id = data or _evaluation_data(state, vb) or _evaluation_data(state, va)
    report: dict[str, object] | None = None
    note = ""
    dataset = None
    if data_id is None:
        note = ("Neither version records the dataset it was evaluated on; showing the metrics "
                "each recorded on its own holdout.")
    else:
        dataset = state.store.get_artifact(data_id)
        if dataset.type != "Dataset":
            raise UserInputError(f"Artifact {dataset.id} is a {dataset.type}, not a Dataset.")
        path = state.artifacts.get(dataset.uri, dataset.sha256, name=dataset.id)
        frame = pd.read_parquet(path)
        models = {f"v{a}": registry.load(f"{name}:{a}", state.artifacts),
                  f"v{b}": registry.load(f"{name}:{b}", state.artifacts)}
        recorded_b = Evaluation.from_json(vb.properties)
        label = str(models[f"v{b}"].manifest.get("metadata", {}).get("label")
                    or recorded_b.label or "")
        if label not in frame.columns:
            raise UserInputError(
                f"The dataset {dataset.id[:12]} has no label column {label!r}; pick another "
                "evaluation dataset."
            )
        slices = list(recorded_b.slices)
        report = evaluate_models(models, frame, label=label,
                                 slice_columns=[c for c in slices if c in frame.columns],
                                 n_boot=100, candidate=f"v{b}", baseline=f"v{a}")
    recorded = registry.compare(name, a, b)
    task = normalize_task(str(report["task"])) if report else None
    scored = {side: Evaluation.from_json({"evaluation": as_object(report["models"])[f"v{v}"]})
              for side, v in (("a", a), ("b", b))} if report else {}
    return page(request, "model_compare.html", {
        "name": name, "a": va, "b": vb, "report": report, "recorded": recorded, "note": note,
        "scored": scored,
        "dataset": dataset, "headline": default_metric(task) if task else "roc_auc",
        "better": {m: better_word(m) for m in HIGHER_IS_BETTER},
    })


def _denied(request: Request) -> str | None:
    state, identity = state_of(request), identity_of(request)
    if state.policy.enabled and not identity.can_act:
        return ("Promoting and rolling back need the admin role; sign in with an admin API "
                "key.")
    return None


async def _form(request: Request) -> dict[str, str]:
    form = await read_form(request)
    if not state_of(request).policy.check_csrf(identity_of(request), form.get("csrf", "")):
        raise Forbidden(CSRF_TEXT)
    return form


@router.post("/models/{name}/promote")
async def promote(request: Request, name: str) -> Response:
    form = await _form(request)
    denied = _denied(request)
    if denied:
        raise Forbidden(denied)
    try:
        version = int(form.get("version", ""))
    except ValueError:
        raise UserInputError(
            f"The version to promote must be a number; got {form.get('version')!r}."
        ) from None
    alias = form.get("alias", "champion").strip() or "champion"
    registry = state_of(request).registry(identity_of(request))
    registry.promote(name, version, alias=alias, reason=form.get("reason", "").strip())
    done = quote(f"{alias} → version {version}")
    return RedirectResponse(f"/models/{quote(name)}?done={done}", status_code=303)


@router.post("/models/{name}/rollback")
async def rollback(request: Request, name: str) -> Response:
    form = await _form(request)
    denied = _denied(request)
    if denied:
        raise Forbidden(denied)
    alias = form.get("alias", "champion").strip() or "champion"
    registry = state_of(request).registry(identity_of(request))
    event = registry.rollback(name, alias=alias, reason=form.get("reason", "").strip())
    done = quote(f"{alias} rolled back to version {event.version}")
    return RedirectResponse(f"/models/{quote(name)}?done={done}", status_code=303)
