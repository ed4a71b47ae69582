"""What a run came to, for the runs list: the gate's verdict or a quarantine, and its
headline metric.

A training run that ran to the end "succeeded" even when the gate refused its
candidate; the list must not show that run as a green success. Its outcome is
read from what its steps returned (the step that judged returns ``blessed``, the
push returns ``promoted``), never from step names, so a declared pipeline with
steps of its own reads the same (the rule ``loop/phases.py`` follows). An
ingest run whose ``validate`` step failed quarantined its data.

The headline metric is the one the gate judged (the first metric of the run's
``gate`` parameter), else the task's default metric, read from the ``Metrics``
artifact the evaluation wrote.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from ctloop.models.tasks import HIGHER_IS_BETTER, TASKS, default_metric

__all__ = ["Headline", "Outcome", "StepReturn", "headline_of", "outcome_of"]

Verdict = Literal["blessed", "refused", "quarantined"]


@dataclass(frozen=True)
class StepReturn:
    """One step of a run as the outcome needs it: its component, status and return value."""

    component: str
    status: str
    returned: Mapping[str, object]


@dataclass(frozen=True)
class Outcome:
    """The gate's verdict on a training run's candidate, or a quarantined ingest."""

    verdict: Verdict
    version: int | None = None  # the registered version (training runs)
    promoted: bool = False

    @property
    def note(self) -> str:
        """``v3 promoted`` / ``v3 not promoted`` / ``data kept out``: under the badge."""
        if self.verdict == "quarantined":
            return "data kept out"
        if self.version is None:
            return ""
        return f"v{self.version} promoted" if self.promoted else f"v{self.version} not promoted"


@dataclass(frozen=True)
class Headline:
    """The run's headline metric and its value on the holdout."""

    metric: str
    value: float

    @property
    def better(self) -> str:
        higher = HIGHER_IS_BETTER.get(self.metric)
        return "" if higher is None else ("higher is better" if higher else "lower is better")


def outcome_of(steps: Sequence[StepReturn]) -> Outcome | None:
    """The verdict of a run from its steps; None for a run that neither judged nor
    validated data (a plain pipeline, or a training run that failed before the gate)."""
    judged = next((s.returned for s in steps
                   if "blessed" in s.returned and "promoted" not in s.returned), None)
    pushed = next((s.returned for s in steps if "promoted" in s.returned), None)
    if judged is not None or pushed is not None:
        verdict = (judged or pushed or {}).get("blessed")
        version = (pushed or {}).get("version")
        return Outcome("blessed" if verdict is True else "refused",
                       version if isinstance(version, int) else None,
                       (pushed or {}).get("promoted") is True)
    if any(s.component == "validate" and s.status == "failed" for s in steps):
        return Outcome("quarantined")
    return None


def _gate_metric(gate: object) -> str | None:
    """The first metric a gate parameter names (``changes`` before ``floors``)."""
    if not isinstance(gate, Mapping):
        return None
    for key in ("changes", "floors"):
        rules = gate.get(key)
        if isinstance(rules, Mapping) and rules:
            return str(next(iter(rules)))
    return None


def headline_of(parameters: Mapping[str, object],
                metrics: Sequence[Mapping[str, object]]) -> Headline | None:
    """The headline metric among the ``Metrics`` artifacts' properties of one run."""
    for props in metrics:
        task = props.get("task")
        if not isinstance(task, str):
            continue  # not an evaluation (a blessing, an infra report)
        wanted = [_gate_metric(parameters.get("gate")), _default(task)]
        wanted += [m for m in HIGHER_IS_BETTER if m in props]
        for metric in wanted:
            value = props.get(metric) if metric else None
            if isinstance(value, int | float) and not isinstance(value, bool):
                return Headline(str(metric), float(value))
    return None


def _default(task: str) -> str | None:
    return default_metric(task) if task in TASKS else None
