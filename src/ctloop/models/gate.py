"""The model gate: decide whether a candidate may replace the champion ("blessing").

Three kinds of rule, all read from an evaluation report (``evaluate_models``):

- floor: an absolute bound on a metric (``roc_auc >= 0.70``, ``log_loss <= 0.5``);
- change: the candidate's improvement over the champion is at least a bound
  (``roc_auc change >= -0.005`` lets it be at most 0.005 worse);
- slice: the same, within every slice of a column with at least ``min_rows``
  rows, so a model better on average cannot be much worse for one airport.

"Improvement" is signed so that positive is better for every metric (for
log loss and errors it is champion minus candidate). The first model, with no
champion, is judged on floors only; change and slice rules are listed as
skipped. The blessing lists every rule with its numbers, pass or fail.

A fourth check guards the decisions themselves (on by default, ``keep_classes``): a
candidate that never predicts a class the champion predicts, or whose recall on a
class the champion recalls falls to 0, is refused whatever its ranking metric says
(a model can gain ROC AUC and never decide "delayed" at its threshold). It reads the
per-class tables of the evaluation; its verdict is the blessing's ``classes``.

Two rules guard the decision threshold, not only the ranking (off unless declared):

- ``min_recall``: every class with rows on the holdout is recalled at least this share
  at the candidate's decision threshold, so a candidate that never (or hardly ever)
  decides "delayed" is refused whatever its ROC AUC, with its recall, precision and F1;
- ``costs`` (``{fn = 4, fp = 1}``): what each outcome costs per row. The evaluation
  then decides each model at the threshold that minimises expected cost on the
  holdout (the trainer stores the candidate's, so it serves at it) and reports
  ``expected_cost``, which floors and changes can name.

A metric a rule needs that is undefined on the holdout (ROC AUC with one class) is
no failure with ``None`` in it and no silent pass: the candidate is **held** (not
blessed, ``held`` true, ``undefined`` naming the metrics), and the reason says so
("roc_auc is undefined on this holdout: one class ..."). A loop's bootstrap then
waits for a span it can evaluate on.

Every direction (``>=`` or ``<=``, "worse", "improvement") follows the metric's
(``ctloop.models.tasks.HIGHER_IS_BETTER``): for rmse, lower is better.

``expected_cost`` is a metric like the others (lower is better) when the
evaluation was given costs: ``changes = {expected_cost = 0.0}`` blesses only a
candidate that costs no more per row than the champion, each deciding at its
own threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ctloop.core.errors import UserInputError
from ctloop.models.metrics import COST_METRIC, Costs
from ctloop.models.tasks import HIGHER_IS_BETTER

__all__ = ["ChangeRule", "FloorRule", "GateConfig", "RecallRule", "SliceRule", "judge",
           "render_blessing"]


def _check_metric(metric: str) -> str:
    if metric not in HIGHER_IS_BETTER:
        raise UserInputError(
            f"Unknown metric {metric!r} in a gate rule; choose one of {sorted(HIGHER_IS_BETTER)}."
        )
    return metric


@dataclass(frozen=True)
class FloorRule:
    """``metric`` must be at least (or for lower-is-better metrics, at most) ``threshold``."""

    metric: str
    threshold: float

    @property
    def name(self) -> str:
        op = ">=" if HIGHER_IS_BETTER[self.metric] else "<="
        return f"{self.metric} {op} {self.threshold:g}"


@dataclass(frozen=True)
class ChangeRule:
    """Improvement of ``metric`` over the champion must be >= ``min_change`` (often negative)."""

    metric: str
    min_change: float

    @property
    def name(self) -> str:
        return f"{self.metric} change vs champion >= {self.min_change:g}{_direction(self.metric)}"


@dataclass(frozen=True)
class SliceRule:
    """In every slice of ``column`` with >= ``min_rows`` rows, improvement >= ``min_change``."""

    column: str
    metric: str
    min_change: float
    min_rows: int = 1

    @property
    def name(self) -> str:
        return (
            f"every {self.column} slice with >= {self.min_rows} rows: "
            f"{self.metric} change vs champion >= {self.min_change:g}{_direction(self.metric)}"
        )


@dataclass(frozen=True)
class RecallRule:
    """Every class with rows on the holdout is recalled at least ``min_recall`` at the
    candidate's decision threshold (the threshold's guard: a ranking metric cannot see
    a threshold that never decides a class)."""

    min_recall: float

    def __post_init__(self) -> None:
        if not 0 < self.min_recall <= 1:
            raise UserInputError(
                f"The gate's min_recall must be a share in (0, 1]. Got {self.min_recall!r}.")

    @property
    def name(self) -> str:
        return f"recall of every class >= {self.min_recall:g}"


def _direction(metric: str) -> str:
    """Nothing for higher-is-better metrics (the name reads as it always did); for the
    others, how a change is signed, so ``rmse change >= -0.5`` is not read backwards."""
    return "" if HIGHER_IS_BETTER[metric] else " (lower is better)"


@dataclass(frozen=True)
class GateConfig:
    """The rules a candidate must pass."""

    floors: tuple[FloorRule, ...] = ()
    changes: tuple[ChangeRule, ...] = ()
    slices: tuple[SliceRule, ...] = ()
    keep_classes: bool = True
    recall: RecallRule | None = None
    # What each decision costs per row ({"fn": 4, "fp": 1}): each model is evaluated at
    # its cost-minimising threshold, the candidate's stored with it (``Costs``' keys).
    costs: dict[str, float] | None = None
    # How the served candidate must behave (ServingBudget's table); judged over HTTP by
    # the infra check, not here: ``judge`` reads only the evaluation report.
    serving: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        from ctloop.models.servingtest import ServingBudget

        ServingBudget.from_table(self.serving)  # a bad rule fails when the gate is read
        rules: tuple[FloorRule | ChangeRule | SliceRule, ...] = (
            *self.floors, *self.changes, *self.slices)
        for rule in rules:
            _check_metric(rule.metric)
        if self.costs is not None:
            Costs.from_dict(self.costs)  # unknown keys or negative costs fail here

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateConfig:
        """From ``{"floors": {"roc_auc": 0.7}, "changes": {"roc_auc": -0.005},
        "slices": [{"column": "origin", "metric": "roc_auc", "min_change": -0.02,
        "min_rows": 1000}], "keep_classes": true, "min_recall": 0.2, "costs": {"fn": 4,
        "fp": 1}, "serving": {"p99_ms": 50}}`` (the form kept in ctloop.toml and step
        parameters); ``keep_classes = false`` turns off the class check.
        """
        unknown = set(data) - set(GATE_KEYS)
        if unknown:
            raise UserInputError(
                f"Unknown gate setting(s) {sorted(unknown)}; use {', '.join(GATE_KEYS)}."
            )
        keep = data.get("keep_classes", True)
        if not isinstance(keep, bool):
            raise UserInputError(f"The gate's keep_classes must be true or false. Got {keep!r}.")
        recall = data.get("min_recall")
        if recall is not None and (isinstance(recall, bool)
                                   or not isinstance(recall, int | float)):
            raise UserInputError(f"The gate's min_recall must be a number. Got {recall!r}.")
        costs = data.get("costs")
        try:
            return cls(
                floors=tuple(FloorRule(m, float(t)) for m, t in data.get("floors", {}).items()),
                changes=tuple(ChangeRule(m, float(t)) for m, t in data.get("changes", {}).items()),
                slices=tuple(SliceRule(**s) for s in data.get("slices", [])),
                keep_classes=keep,
                recall=None if recall is None else RecallRule(float(recall)),
                costs=None if costs is None else Costs.from_dict(costs).to_dict(),
                serving=data.get("serving"),
            )
        except TypeError as exc:
            raise UserInputError(
                f"A gate slice rule needs column, metric, min_change and optionally "
                f"min_rows: {exc}."
            ) from None

    def to_dict(self) -> dict[str, Any]:
        return {
            **({"serving": self.serving} if self.serving is not None else {}),
            "floors": {r.metric: r.threshold for r in self.floors},
            "changes": {r.metric: r.min_change for r in self.changes},
            "slices": [
                {
                    "column": r.column,
                    "metric": r.metric,
                    "min_change": r.min_change,
                    "min_rows": r.min_rows,
                }
                for r in self.slices
            ],
            "keep_classes": self.keep_classes,
            **({"min_recall": self.recall.min_recall} if self.recall is not None else {}),
            **({"costs": dict(self.costs)} if self.costs is not None else {}),
        }


GATE_KEYS = ("floors", "changes", "slices", "keep_classes", "min_recall", "costs", "serving")
"""Every key of a gate table (``GateConfig.from_dict``)."""


@dataclass
class _Verdict:
    rule: str
    kind: str
    metric: str
    status: str  # pass | fail | skipped | undefined (the candidate is held)
    detail: str
    numbers: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "kind": self.kind,
            "metric": self.metric,
            "status": self.status,
            "passed": self.status in ("pass", "skipped"),  # "undefined" holds, not passes
            "detail": self.detail,
            **self.numbers,
        }


def _value(block: dict[str, Any], metric: str) -> float | None:
    entry = block["metrics"].get(metric)
    return None if entry is None else entry["value"]


def _improvement(metric: str, cand: float, champ: float) -> float:
    return cand - champ if HIGHER_IS_BETTER[metric] else champ - cand


def _floor(rule: FloorRule, cand: dict[str, Any]) -> _Verdict:
    value = _value(cand["overall"], rule.metric)
    if value is None:
        return _undefined(rule.name, "floor", rule.metric, cand["overall"],
                          {"threshold": rule.threshold})
    ok = value >= rule.threshold if HIGHER_IS_BETTER[rule.metric] else value <= rule.threshold
    return _Verdict(
        rule.name,
        "floor",
        rule.metric,
        "pass" if ok else "fail",
        f"{rule.metric} = {value:.4f}",
        {"candidate": value, "threshold": rule.threshold},
    )


def _undefined(name: str, kind: str, metric: str, block: dict[str, Any],
               numbers: dict[str, Any]) -> _Verdict:
    """A rule whose metric the holdout cannot give for the candidate: it holds the
    candidate (never a pass, never a failure reported against ``None``)."""
    return _Verdict(name, kind, metric, "undefined",
                    f"{metric} is undefined on this holdout: {_why_undefined(block)}",
                    {"candidate": None, **numbers, "undefined": True})


def _why_undefined(block: dict[str, Any]) -> str:
    """Why a metric has no value on the holdout: one class (named, with its rows), no
    labelled rows, or (regression, constant labels) nothing to compare."""
    table = block.get("per_class") or {}
    present = [c for c, row in table.items() if row.get("support")]
    if table and len(present) < 2:
        if not present:
            return "no labelled rows"
        return (f"one class (only class {present[0]!r} of {len(table)}, "
                f"{table[present[0]]['support']} rows; it needs two to rank)")
    return "the labels or scores do not vary (e.g. one class, or a constant label)"


def _change(rule: ChangeRule, cand: dict[str, Any], champ: dict[str, Any]) -> _Verdict:
    c, b = _value(cand["overall"], rule.metric), _value(champ["overall"], rule.metric)
    if c is None:
        return _undefined(rule.name, "change", rule.metric, cand["overall"],
                          {"champion": b, "threshold": rule.min_change})
    if b is None:
        return _Verdict(
            rule.name,
            "change",
            rule.metric,
            "skipped",
            f"{rule.metric} is undefined for the champion on this holdout",
        )
    imp = _improvement(rule.metric, c, b)
    ok = imp >= rule.min_change
    return _Verdict(
        rule.name,
        "change",
        rule.metric,
        "pass" if ok else "fail",
        f"{rule.metric} {c:.4f} vs champion {b:.4f} (change {imp:+.4f}"
        f"{'' if HIGHER_IS_BETTER[rule.metric] else ', champion - candidate: lower is better'})",
        {"candidate": c, "champion": b, "change": imp, "threshold": rule.min_change},
    )


def _slice(rule: SliceRule, cand: dict[str, Any], champ: dict[str, Any]) -> _Verdict:
    cand_slices = cand["slices"].get(rule.column)
    if cand_slices is None:
        raise UserInputError(
            f"The gate has a slice rule on {rule.column!r} but the evaluation has no slices "
            f"for it; add {rule.column!r} to the evaluation's slice columns."
        )
    rows, failing = [], []
    for value, block in cand_slices.items():
        other = champ["slices"].get(rule.column, {}).get(value)
        if other is None or block["n"] < rule.min_rows:
            continue
        c, b = _value(block, rule.metric), _value(other, rule.metric)
        if c is None or b is None:
            continue
        imp = _improvement(rule.metric, c, b)
        row = {
            "slice": value,
            "n": block["n"],
            "candidate": c,
            "champion": b,
            "change": imp,
            "passed": imp >= rule.min_change,
        }
        rows.append(row)
        if not row["passed"]:
            failing.append(
                f"{rule.column}={value} ({rule.metric} {c:.4f} vs {b:.4f}, "
                f"change {imp:+.4f}, {block['n']} rows)"
            )
    detail = ("worse in " + "; ".join(failing)) if failing else f"{len(rows)} slices checked"
    return _Verdict(
        rule.name,
        "slice",
        rule.metric,
        "fail" if failing else "pass",
        detail,
        {
            "column": rule.column,
            "threshold": rule.min_change,
            "min_rows": rule.min_rows,
            "slices": rows,
        },
    )


def _classes(cand: dict[str, Any], champ: dict[str, Any] | None) -> dict[str, Any]:
    """The class check: no class the champion predicts is never predicted or never recalled."""
    ours = cand["overall"].get("per_class")
    theirs = champ["overall"].get("per_class") if champ else None
    if not ours or not theirs:
        why = "no champion" if champ is None else "not a classification evaluation"
        return {"status": "skipped", "passed": True, "detail": why, "problems": []}
    problems = []
    for name, row in theirs.items():
        mine = ours.get(name)
        if mine is None or not row.get("predicted"):
            continue
        if not mine.get("predicted"):
            problems.append({"class": name, "problem": "never_predicted",
                             "champion_predicted": row["predicted"]})
        elif mine.get("recall") == 0 and row.get("recall"):
            problems.append({"class": name, "problem": "recall_zero",
                             "champion_recall": row["recall"], "support": mine.get("support")})
    texts = [
        f"never predicts class {p['class']} (the champion predicts it for "
        f"{p['champion_predicted']} rows)" if p["problem"] == "never_predicted" else
        f"recall on class {p['class']} is 0 (champion {p['champion_recall']:.3f}, "
        f"{p['support']} rows)"
        for p in problems
    ]
    return {
        "status": "fail" if problems else "pass",
        "passed": not problems,
        "detail": "; ".join(texts) if texts else f"every class the champion predicts is "
                  f"predicted and recalled ({len(theirs)} classes)",
        "problems": problems,
    }


def _recall(rule: RecallRule, cand: dict[str, Any]) -> _Verdict:
    """Every class with rows on the holdout recalled at least ``min_recall`` at the
    candidate's threshold; a failure names the class with its recall, precision and F1."""
    table = cand["overall"].get("per_class")
    if not table:
        return _Verdict(rule.name, "recall", "recall", "skipped",
                        "not a classification evaluation")
    rows, low = [], []
    for name, row in table.items():
        if not row.get("support"):
            continue
        recall = float(row.get("recall") or 0.0)
        entry = {"class": name, "recall": recall, "precision": row.get("precision"),
                 "f1": row.get("f1"), "support": row["support"],
                 "predicted": row.get("predicted"), "passed": recall >= rule.min_recall}
        rows.append(entry)
        if not entry["passed"]:
            low.append(entry)

    detail = ("; ".join(
        f"class {e['class']}: recall {e['recall']:.3f}, precision {_num(e['precision'])}, "
        f"F1 {_num(e['f1'])} ({e['support']} rows, {e['predicted']} predicted)"
        for e in low) + " at its decision threshold") if low else (
        f"{len(rows)} classes recalled, lowest "
        f"{min((e['recall'] for e in rows), default=0.0):.3f}")
    return _Verdict(rule.name, "recall", "recall", "fail" if low else "pass", detail,
                    {"threshold": rule.min_recall, "classes": rows})


def _num(value: Any) -> str:
    return "undefined" if value is None else f"{float(value):.3f}"


CLASS_RULE = "keeps every class the champion predicts"


def judge(
    report: dict[str, Any],
    config: GateConfig,
    *,
    candidate: str = "candidate",
    champion: str | None = "champion",
) -> dict[str, Any]:
    """The blessing for ``candidate`` in an evaluation ``report``.

    Returns ``{"blessed", "held", "undefined", "candidate", "champion", "rules": [...],
    "failed": [...], "summary"}``; ``champion`` is None when the report has no such
    model. ``held`` (with ``undefined``, the metrics the holdout cannot give for the
    candidate) means the candidate could not be judged: not blessed, and no rule failed.
    """
    cand, champ = _models(report, candidate, champion)
    _check_costs(report, config)
    verdicts = _verdicts(config, cand, champ)
    classes = (_classes(cand, champ) if config.keep_classes else
               {"status": "skipped", "passed": True, "detail": "keep_classes = false",
                "problems": []})  # the class check, or why it did not run
    failures = _Failures.of(verdicts, classes)
    undefined = _undefined_metrics(config, cand)
    held = bool(undefined)
    blessed = not failures.rules and not held
    return {
        "blessed": blessed,
        "held": held,
        "undefined": undefined,
        "candidate": candidate,
        "champion": champion if champ else None,
        "rules": [v.to_dict() for v in verdicts],
        "classes": classes,
        "failed": failures.rules,
        "summary": _summary(blessed, undefined, failures.reasons, cand),
    }


def _models(report: dict[str, Any], candidate: str,
            champion: str | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The candidate's and the champion's blocks of the report (the champion's None
    without one: the first model)."""
    models = report.get("models", {})
    if candidate not in models:
        raise UserInputError(f"The evaluation has no model {candidate!r}; it has {sorted(models)}.")
    return models[candidate], models.get(champion) if champion else None


def _check_costs(report: dict[str, Any], config: GateConfig) -> None:
    """A rule on expected cost needs an evaluation that was given costs."""
    rules: tuple[FloorRule | ChangeRule | SliceRule, ...] = (
        *config.floors, *config.changes, *config.slices)
    if any(r.metric == COST_METRIC for r in rules) and not report.get("costs"):
        raise UserInputError(
            "The gate compares expected_cost but the evaluation was run without costs; "
            "declare them, e.g. costs = {fn = 5, fp = 1}, in the evaluation."
        )


_FIRST_MODEL = "no champion: the first model is judged on floors only"


def _verdicts(config: GateConfig, cand: dict[str, Any],
              champ: dict[str, Any] | None) -> list[_Verdict]:
    """One verdict per rule, in the order floors, changes, slices, recall; without a
    champion the rules against it are skipped."""
    verdicts = [_floor(r, cand) for r in config.floors]
    verdicts += [
        _change(r, cand, champ) if champ else
        _Verdict(r.name, "change", r.metric, "skipped", _FIRST_MODEL)
        for r in config.changes
    ]
    verdicts += [
        _slice(r, cand, champ) if champ else
        _Verdict(r.name, "slice", r.metric, "skipped", _FIRST_MODEL)
        for r in config.slices
    ]
    if config.recall is not None:
        verdicts.append(_recall(config.recall, cand))
    return verdicts


@dataclass(frozen=True)
class _Failures:
    """The rules that failed (the blessing's ``failed``) and each with its detail."""

    rules: list[str]
    reasons: list[str]

    @classmethod
    def of(cls, verdicts: list[_Verdict], classes: dict[str, Any]) -> _Failures:
        failed = [v for v in verdicts if v.status == "fail"]
        rules = [v.rule for v in failed]
        reasons = [f"{v.rule} ({v.detail})" for v in failed]
        if not classes["passed"]:
            rules.append(CLASS_RULE)
            reasons.append(f"{CLASS_RULE} ({classes['detail']})")
        return cls(rules, reasons)


def _undefined_metrics(config: GateConfig, cand: dict[str, Any]) -> list[str]:
    """Judged metrics the holdout cannot give for the candidate, whether or not a rule
    on them ran (without a champion, change rules are skipped but still need it)."""
    judged: list[str] = [r.metric for r in config.floors] + [r.metric for r in config.changes]
    return sorted({m for m in judged if _value(cand["overall"], m) is None})


def _summary(blessed: bool, undefined: list[str], reasons: list[str],
             cand: dict[str, Any]) -> str:
    """One sentence: blessed, held (why, and what also failed), or what failed."""
    if blessed:
        return "blessed: all rules passed"
    if undefined:
        why = _why_undefined(cand["overall"])
        return (f"held: {' and '.join(undefined)} "
                f"{'is' if len(undefined) == 1 else 'are'} undefined on this holdout: "
                f"{why}; the candidate cannot be judged on it"
                + (". Also failed " + "; ".join(reasons) if reasons else ""))
    return "not blessed: failed " + "; ".join(reasons)


def render_blessing(blessing: dict[str, Any]) -> str:
    """The blessing as lines of text for logs and the CLI."""
    lines = [
        ("BLESSED" if blessing["blessed"] else "HELD" if blessing.get("held") else
         "NOT BLESSED")
        + f" (candidate vs {blessing['champion'] or 'no champion'})"
    ]
    lines += [f"  [{r['status']:>7}] {r['rule']}: {r['detail']}" for r in blessing["rules"]]
    classes = blessing.get("classes")
    if classes and classes.get("status") != "skipped":
        lines.append(f"  [{classes['status']:>7}] {CLASS_RULE}: {classes['detail']}")
    return "\n".join(lines)
