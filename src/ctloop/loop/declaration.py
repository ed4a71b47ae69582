"""A continuous-training loop, declared once: ``[ctloop.loops.NAME]`` or :class:`LoopSpec`.

Everything a loop needs to run by itself is here: where its spans land, which
columns are the event time, label and row id, the pinned schema, the trainer,
the training window, the holdout, the metric and the gate, what makes it
retrain, and the canary. Every key is checked when the loop is read, so a typo
fails with the loop, the key and the nearest valid key named, long before the
first span lands::

    [ctloop.loops.churn]
    model = "churn"
    data = "landing/*.parquet"
    event_time = "ts"
    label = "churned"
    schema = "schema.yaml"
    train = { flavor = "lightgbm", params = { n_estimators = 100 } }
    window = "auto"
    retrain_on = ["decay", "drift"]
    decay = { max_drop = 0.03 }
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctloop.core.durations import duration_seconds
from ctloop.core.errors import ConfigError, NotFound, UserInputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "FLAVORS",
    "RETRAIN_SIGNALS",
    "CanarySpec",
    "DecaySpec",
    "DriftSpec",
    "GateSpec",
    "LoopSpec",
    "SqlSource",
    "TrainSpec",
    "Window",
    "get_loop",
    "load_loops",
    "parse_loop",
    "resolve_task",
]

FLAVORS = {"lightgbm": "lightgbm", "sklearn": "hist_gradient_boosting", "xgboost": "xgboost",
           "logistic": "logistic", "catboost": "catboost"}
"""Trainer flavors and the ``fit_model`` algorithm each one uses."""

RETRAIN_SIGNALS = ("new_span", "schedule", "decay", "drift", "estimate")

_WINDOW = re.compile(r"^\s*(\d+)\s*spans?\s*$")


def _unknown(where: str, table: Mapping[str, Any], known: Sequence[str]) -> None:
    """One line naming the loop, the unknown key and the nearest valid one."""
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.5)
            hint = f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(known)}"
            raise ConfigError(f"{where}: unknown key {key!r}; {hint}")


def _names(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


@dataclass(frozen=True)
class Window:
    """Which valid spans a candidate trains on: the last ``spans``, ``seconds`` of event
    time, or ``auto`` (after a decay trigger, only the spans since the detected change)."""

    spans: int | None = None
    seconds: float | None = None
    auto: bool = False
    text: str = "3 spans"

    @classmethod
    def parse(cls, value: Any, where: str) -> Window:
        text = str(value).strip()
        if text == "auto":
            return cls(auto=True, text=text)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return cls(spans=value, text=f"{value} spans")
        if (m := _WINDOW.match(text)) and int(m.group(1)) > 0:
            return cls(spans=int(m.group(1)), text=text)
        if (seconds := duration_seconds(text)) is not None and seconds > 0:
            return cls(seconds=seconds, text=text)
        raise ConfigError(
            f"{where}: key 'window' must be \"N spans\", an event-time duration like \"60d\", "
            f"or \"auto\". Got {value!r}."
        )


@dataclass(frozen=True)
class TrainSpec:
    """The trainer: a flavor with parameters, or a user component ``file.py:component``."""

    flavor: str = "lightgbm"
    params: dict[str, Any] = field(default_factory=dict)
    features: tuple[str, ...] = ()  # empty: every column but label, event time and id
    feature_refs: tuple[str, ...] = ()  # feature-store refs joined where a span lacks them
    feature_store: str | None = None  # their definitions file (absolute); default: the catalog
    component: str | None = None  # "file.py:component" (absolute once parsed)
    task: str | None = None  # "binary" | "multiclass" | "regression" (``train.task``)
    # Columns the model accepts nulls in although training saw none (``train.nullable``);
    # the columns of ``feature_refs`` always may be missing (no value at that time).
    nullable: tuple[str, ...] = ()

    @property
    def algorithm(self) -> str:
        return FLAVORS[self.flavor]


@dataclass(frozen=True)
class GateSpec:
    """Promote only a candidate better than the champion by ``min_improvement`` on the
    loop's metric (the default is > 0, so an equal candidate is never promoted), above
    ``floor`` when given, and not worse by more than a slice rule allows. ``costs``
    (``{fn = 4, fp = 1}``) decide each model at its cost-minimising threshold (stored
    with the candidate) and ``min_recall`` refuses a candidate that recalls a class less
    at it (``ctloop.models.gate``)."""

    min_improvement: float = 0.001
    floor: float | None = None
    slices: tuple[dict[str, Any], ...] = ()
    serving: dict[str, Any] | None = None  # p99_ms, concurrency...: the infra check over HTTP
    min_recall: float | None = None
    costs: dict[str, float] | None = None

    def to_gate(self, metric: str) -> dict[str, Any]:
        """The ``ctloop.models.gate.GateConfig`` form of these rules."""
        gate: dict[str, Any] = {"changes": {metric: self.min_improvement},
                                "slices": [dict(s) for s in self.slices]}
        if self.floor is not None:
            gate["floors"] = {metric: self.floor}
        if self.serving is not None:
            gate["serving"] = dict(self.serving)
        if self.min_recall is not None:
            gate["min_recall"] = self.min_recall
        if self.costs is not None:
            gate["costs"] = dict(self.costs)
        return gate


@dataclass(frozen=True)
class DecaySpec:
    """Decay fires when the live metric falls ``max_drop`` below the baseline:
    ``"champion"`` (its evaluation on its holdout), ``"best_live"`` (the best live
    value it reached) or a number (an absolute floor)."""

    max_drop: float = 0.03
    baseline: str | float = "champion"
    min_labels: int = 200


@dataclass(frozen=True)
class DriftSpec:
    """Drift fires when at least ``share`` of the watched features drifted from the
    champion's own training data (``columns``: default every feature). ``thresholds =
    "stationary"`` judges each feature against the training data's own motion between
    span-sized chunks (seasons it already spans are not drift); ``"fixed"`` against the
    noise-floored distance alone (``ctloop.data.drift``)."""

    share: float = 0.5
    columns: tuple[str, ...] = ()
    min_rows: int = 100
    thresholds: str = "fixed"


@dataclass(frozen=True)
class CanarySpec:
    """A blessed candidate first serves ``share`` of the traffic as ``challenger``; after
    ``min_labels`` labelled requests it is promoted if its live metric is not worse than
    the champion's on the same period, else dropped."""

    share: float = 0.1
    min_labels: int = 200


@dataclass(frozen=True)
class SqlSource:
    """Spans from a SQL query: rows cut into spans of ``span`` event time by ``watermark``."""

    url: str
    query: str
    watermark: str
    span: float = 7 * 86400
    span_text: str = "7d"


@dataclass(frozen=True)
class LoopSpec:
    """One declared loop. Build it in Python or read it with :func:`load_loops`."""

    name: str
    model: str
    data: str | SqlSource  # a glob of landed files (absolute once parsed) or a SQL source
    event_time: str
    label: str
    id: str | None = None
    schema: str | None = None  # pinned schema file: a span failing it is quarantined
    train: TrainSpec = field(default_factory=TrainSpec)
    window: Window = field(default_factory=lambda: Window(spans=3))
    holdout: float = 0.25
    metric: str = "roc_auc"
    gate: GateSpec = field(default_factory=GateSpec)
    retrain_on: tuple[str, ...] = ("new_span",)
    schedule: str | None = None  # cron, in event time during replay
    cooldown: float = 0.0  # seconds of event time between two retrains
    decay: DecaySpec = field(default_factory=DecaySpec)
    drift: DriftSpec = field(default_factory=DriftSpec)
    canary: CanarySpec | None = None
    seed: int = 0
    pipeline: str | None = None  # a user pipeline ("file.py:name") instead of the standard one
    description: str = ""
    task: str | None = None  # binary | multiclass | regression; None: read off the label
    metric_given: bool = True  # False: ``metric`` is the default, chosen by the task

    def with_(self, **changes: Any) -> LoopSpec:
        return replace(self, **changes)

    @property
    def excluded(self) -> set[str]:
        """Columns that are never features."""
        return {c for c in (self.label, self.event_time, self.id) if c}

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-ready view (for ``ctloop loop status --json`` and run records)."""
        from dataclasses import asdict

        out = asdict(self)
        out["window"] = self.window.text
        return out


_TOP = _names(LoopSpec)
_TOP.remove("name")
_TOP.remove("metric_given")


def parse_loop(name: str, table: Mapping[str, Any], *, root: Path | None = None) -> LoopSpec:
    """Validate one ``[ctloop.loops.NAME]`` table; ``root`` anchors relative paths.

    The keys are read in a fixed order (the table's shape, what the model learns from,
    its task and metric, the gate, the triggers, the rollout, the pipeline), so of
    several mistakes the same one is always named first."""
    where = f"Loop {name!r}"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table of settings. Got {table!r}.")
    root = (root or Path.cwd()).resolve()
    _check_keys(where, table)
    values: dict[str, Any] = {"name": name, **_texts(table)}
    values.update(_learning(table, root, where))
    _task(values, table, where)
    _metric(values, where)
    if "gate" in table:
        values["gate"] = _gate(table["gate"], where)
    values.update(_triggers(values, table, where))
    values.update(_rollout(table, where))
    if values.get("pipeline"):
        values["pipeline"] = _ref(values["pipeline"], root, where, "pipeline")
    return LoopSpec(**values)


_REQUIRED = ("model", "data", "event_time", "label")
_TEXTS = ("model", "event_time", "label", "id", "schedule", "pipeline", "description", "metric",
          "task")


def _check_keys(where: str, table: Mapping[str, Any]) -> None:
    """No unknown key (the nearest valid one named), every required one given."""
    _unknown(where, table, _TOP)
    for key in _REQUIRED:
        if not table.get(key):
            raise ConfigError(f"{where}: key {key!r} is required (see docs/loop.md).")


def _texts(table: Mapping[str, Any]) -> dict[str, str]:
    """The keys that are plain text (names, columns, cron), as given."""
    return {key: str(table[key]) for key in _TEXTS if table.get(key) is not None}


def _learning(table: Mapping[str, Any], root: Path, where: str) -> dict[str, Any]:
    """What a candidate learns from: the spans, their pinned schema, the trainer, the
    window and the holdout."""
    values: dict[str, Any] = {"data": _data(table["data"], root, where)}
    if table.get("schema"):
        values["schema"] = str(_path(table["schema"], root))
    if "train" in table:
        values["train"] = _train(table["train"], root, where)
    if "window" in table:
        values["window"] = Window.parse(table["window"], where)
    if "holdout" in table:
        values["holdout"] = _share(table["holdout"], f"{where}: key 'holdout'", upper=0.9)
    return values


def _triggers(values: Mapping[str, Any], table: Mapping[str, Any],
              where: str) -> dict[str, Any]:
    """What makes the loop retrain: the signals, the schedule, the cooldown, and the
    decay and drift settings."""
    out: dict[str, Any] = {}
    signals = _retrain_on(table["retrain_on"], where) if "retrain_on" in table else None
    signals = _schedule(values.get("schedule"), signals, where)
    if signals is not None:
        out["retrain_on"] = signals
    if "cooldown" in table:
        from ctloop.triggers.definitions import parse_duration

        try:
            cooldown = parse_duration(table["cooldown"], f"{where}: key 'cooldown'")
        except UserInputError as exc:
            raise ConfigError(exc.message) from None
        out["cooldown"] = cooldown or 0.0
    if "decay" in table:
        out["decay"] = _sub(DecaySpec, table["decay"], f"{where}: decay")
        _check_decay(out["decay"], where)
    if "drift" in table:
        out["drift"] = _drift(table["drift"], where)
    return out


def _drift(value: Any, where: str) -> DriftSpec:
    drift: DriftSpec = _sub(DriftSpec, value, f"{where}: drift")
    if drift.thresholds not in ("fixed", "stationary"):
        raise ConfigError(f"{where}: key 'drift.thresholds' must be \"fixed\" or "
                          f"\"stationary\". Got {drift.thresholds!r}.")
    return replace(drift, share=_share(drift.share, f"{where}: key 'drift.share'"),
                   columns=tuple(drift.columns))


def _rollout(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    """How a blessed candidate goes live (the canary) and the seed it was trained with."""
    out: dict[str, Any] = {}
    if table.get("canary"):
        canary: CanarySpec = _sub(CanarySpec, table["canary"], f"{where}: canary")
        out["canary"] = replace(canary, share=_share(canary.share,
                                                     f"{where}: key 'canary.share'"))
    if "seed" in table:
        out["seed"] = _seed(table["seed"], where)
    return out


def _seed(value: object, where: str) -> int:
    """A whole number, also given as text ("7") or a whole float (7.0): the seed the
    candidate is trained with."""
    if not isinstance(value, bool):
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    raise ConfigError(f"{where}: key 'seed' must be a whole number, like 7. Got {value!r}.")


def _task(values: dict[str, Any], table: Mapping[str, Any], where: str) -> None:
    """``task`` (or ``train.task``): checked, the two agreeing; with no ``metric``
    declared, the task's headline metric."""
    from ctloop.models.tasks import check_task, metrics_for

    train = values.get("train")
    declared = [(k, v) for k, v in (("task", table.get("task")),
                                    ("train.task", train.task if train else None)) if v]
    for key, value in declared:
        try:
            check_task(str(value), where=f"{where}: key {key!r}")
        except UserInputError as exc:
            raise ConfigError(exc.message) from None
    if len({str(v) for _, v in declared}) > 1:
        raise ConfigError(f"{where}: key 'task' is {declared[0][1]!r} but 'train.task' is "
                          f"{declared[1][1]!r}; declare one.")
    if declared:
        values["task"] = str(declared[0][1])
        if "metric" not in values:
            values["metric"] = metrics_for(values["task"])[0]
    if "metric" not in values:
        values["metric_given"] = False


def _schedule(schedule: str | None, signals: tuple[str, ...] | None,
              where: str) -> tuple[str, ...] | None:
    """``schedule``: a cron expression, which adds ``schedule`` to ``retrain_on``
    (``signals``, None when not declared); the signals to keep."""
    if schedule is not None and "schedule" not in (signals or ()):
        signals = (*(("new_span",) if signals is None else signals), "schedule")
    if schedule:
        from croniter import croniter

        if not croniter.is_valid(schedule):
            raise ConfigError(f"{where}: key 'schedule' is not a cron expression: "
                              f"{schedule!r} (five fields, e.g. \"0 3 * * 1\").")
    elif "schedule" in (signals or ()):
        raise ConfigError(f"{where}: retrain_on has 'schedule' but key 'schedule' (a cron "
                          "expression) is missing.")
    return signals


def _metric(values: dict[str, Any], where: str) -> None:
    """``metric``: a metric ctloop knows (the nearest named), and one of the task's."""
    from ctloop.models.metrics import HIGHER_IS_BETTER
    from ctloop.models.tasks import TASKS, metrics_for

    metric = values.get("metric", "roc_auc")
    known = {*HIGHER_IS_BETTER, *(m for t in TASKS for m in metrics_for(t))}
    if metric not in known:
        close = difflib.get_close_matches(metric, sorted(known), n=1)
        raise ConfigError(f"{where}: key 'metric' names unknown metric {metric!r}"
                          + (f"; did you mean {close[0]!r}?" if close else "."))
    if values.get("task"):
        _check_metric(values["task"], metric, where)


def _check_metric(task: str, metric: str, where: str) -> None:
    from ctloop.models.tasks import check_metric

    try:
        check_metric(task, metric, where=f"{where}: key 'metric'")  # type: ignore[arg-type]
    except UserInputError as exc:
        raise ConfigError(exc.message) from None


def resolve_task(spec: LoopSpec, labels: pd.Series) -> LoopSpec:
    """``spec`` with its task: the declared one, else read off the spans' ``labels``
    (two values binary, strings or few integers multiclass, other numbers regression),
    and the metric checked against it (the task's headline metric when none is
    declared). Idempotent."""
    from ctloop.models.tasks import infer_task, metrics_for

    if spec.task is not None and spec.metric_given:
        return spec
    task = spec.task or infer_task(labels)
    metric = spec.metric if spec.metric_given else metrics_for(task)[0]  # type: ignore[arg-type]
    where = f"Loop {spec.name!r}"
    try:
        _check_metric(task, metric, where)
    except ConfigError as exc:
        raise ConfigError(f"{exc.message} (the task {task!r} is read off the label "
                          f"{spec.label!r}; declare key 'task' if that is wrong)") from None
    return replace(spec, task=task, metric=metric, metric_given=True)


def _path(value: Any, root: Path) -> Path:
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else root / path


def _ref(value: str, root: Path, where: str, key: str) -> str:
    target, _, attr = value.rpartition(":")
    if not target or not attr:
        raise ConfigError(f"{where}: key {key!r} must be \"file.py:name\". Got {value!r}.")
    path = _path(target, root)
    if not path.is_file():
        raise NotFound(f"{where}: key {key!r}: file {target!r} does not exist (looked for "
                       f"{path}).")
    return f"{path}:{attr}"


def _data(value: Any, root: Path, where: str) -> str | SqlSource:
    if isinstance(value, str):
        return str(_path(value, root))
    if isinstance(value, Mapping):
        _unknown(f"{where}: data", value, ["url", "query", "watermark", "span"])
        missing = [k for k in ("url", "query", "watermark") if not value.get(k)]
        if missing:
            raise ConfigError(f"{where}: data needs key {missing[0]!r} for a SQL source "
                              "(url, query, watermark, span).")
        span_text = str(value.get("span", "7d"))
        window = Window.parse(span_text, f"{where}: data")
        if window.seconds is None:
            raise ConfigError(f"{where}: key 'data.span' must be a duration like \"7d\". "
                              f"Got {span_text!r}.")
        return SqlSource(url=str(value["url"]), query=str(value["query"]),
                         watermark=str(value["watermark"]), span=window.seconds,
                         span_text=span_text)
    raise ConfigError(f"{where}: key 'data' must be a glob of landed files or a table "
                      f"{{ url, query, watermark, span }}. Got {value!r}.")


def _train(value: Any, root: Path, where: str) -> TrainSpec:
    if isinstance(value, str):
        return TrainSpec(component=_ref(value, root, where, "train"))
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: key 'train' must be a table {{ flavor, params, features }} "
                          f"or \"file.py:component\". Got {value!r}.")
    _unknown(f"{where}: train", value, ["flavor", "params", "features", "feature_refs",
                                        "feature_store", "task", "nullable"])
    flavor = str(value.get("flavor", "lightgbm"))
    if flavor not in FLAVORS:
        close = difflib.get_close_matches(flavor, list(FLAVORS), n=1)
        raise ConfigError(f"{where}: key 'train.flavor' is {flavor!r}; "
                          + (f"did you mean {close[0]!r}?" if close
                             else f"use one of {', '.join(FLAVORS)}."))
    params = value.get("params", {}) or {}
    if not isinstance(params, Mapping):
        raise ConfigError(f"{where}: key 'train.params' must be a table. Got {params!r}.")
    nullable = value.get("nullable", ()) or ()
    if isinstance(nullable, str) or not all(isinstance(c, str) and c for c in nullable):
        raise ConfigError(f"{where}: key 'train.nullable' must be a list of column names. "
                          f"Got {nullable!r}.")
    return TrainSpec(flavor=flavor, params=dict(params),
                     features=tuple(str(f) for f in value.get("features", ()) or ()),
                     nullable=tuple(nullable),
                     task=str(value["task"]) if value.get("task") else None,
                     **_feature_keys(value, root, where))


def _feature_keys(value: Mapping[str, Any], root: Path, where: str) -> dict[str, Any]:
    """``train.feature_refs`` (a list of "view:feature" or "view") and ``train.feature_store``
    (the definitions file; without it the refs come from the project's feature catalog)."""
    refs = value.get("feature_refs", ()) or ()
    if isinstance(refs, str) or not all(isinstance(r, str) and r for r in refs):
        raise ConfigError(f"{where}: key 'train.feature_refs' must be a list of "
                          f"\"view:feature\" references. Got {refs!r}.")
    out: dict[str, Any] = {"feature_refs": tuple(refs)}
    if value.get("feature_store"):
        path = _path(value["feature_store"], root)
        if not path.is_file():
            raise NotFound(f"{where}: key 'train.feature_store': file "
                           f"{value['feature_store']!r} does not exist (looked for {path}).")
        out["feature_store"] = str(path)
    return out


def _gate(value: Any, where: str) -> GateSpec:
    gate: GateSpec = _sub(GateSpec, value, f"{where}: gate")
    if gate.serving is not None:
        from ctloop.models.servingtest import ServingBudget

        try:
            ServingBudget.from_table(gate.serving)
        except UserInputError as exc:
            raise ConfigError(f"{where}: key 'gate.serving': {exc.message}") from None
    if gate.min_recall is not None or gate.costs is not None:
        from ctloop.models.gate import GateConfig

        try:  # the gate's own checks: a share in (0, 1], costs fn/fp/tp/tn >= 0
            checked = GateConfig.from_dict({k: v for k, v in (
                ("min_recall", gate.min_recall), ("costs", gate.costs)) if v is not None})
        except UserInputError as exc:
            raise ConfigError(f"{where}: key 'gate': {exc.message}") from None
        gate = replace(gate, costs=checked.costs,
                       min_recall=checked.recall.min_recall if checked.recall else None)
    return replace(gate, min_improvement=float(gate.min_improvement),
                   floor=None if gate.floor is None else float(gate.floor),
                   slices=tuple(dict(s) for s in gate.slices))


def _retrain_on(value: Any, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else list(value or [])
    for item in items:
        if item not in RETRAIN_SIGNALS:
            close = difflib.get_close_matches(str(item), RETRAIN_SIGNALS, n=1)
            raise ConfigError(f"{where}: key 'retrain_on' has unknown signal {item!r}; "
                              + (f"did you mean {close[0]!r}?" if close
                                 else f"use any of {', '.join(RETRAIN_SIGNALS)}."))
    return tuple(items)


def _check_decay(decay: DecaySpec, where: str) -> None:
    base = decay.baseline
    if isinstance(base, str) and base not in ("champion", "best_live"):
        raise ConfigError(f"{where}: key 'decay.baseline' must be \"champion\", \"best_live\" "
                          f"or a number (an absolute floor). Got {base!r}.")
    if decay.max_drop < 0:
        raise ConfigError(f"{where}: key 'decay.max_drop' must be >= 0. Got {decay.max_drop}.")


def _sub(cls: type, value: Any, where: str) -> Any:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a table. Got {value!r}.")
    _unknown(where, value, _names(cls))
    return cls(**dict(value))


def _share(value: Any, what: str, upper: float = 1.0) -> float:
    try:
        share = float(value)
    except (TypeError, ValueError):
        share = -1.0
    if not 0 < share <= upper:
        raise ConfigError(f"{what} must be a share in (0, {upper:g}]. Got {value!r}.")
    return share


def load_loops(settings: Any = None) -> dict[str, LoopSpec]:
    """The loops of ``ctloop.toml`` (``[ctloop.loops.NAME]`` tables), in file order."""
    if settings is None:
        from ctloop.core.settings import load_settings

        settings = load_settings()
    tables = settings.tables.loops
    if not isinstance(tables, Mapping):
        raise ConfigError("[ctloop.loops] must hold one table per loop.")
    root = settings.project_root
    return {name: parse_loop(name, table, root=root) for name, table in tables.items()}


def get_loop(name: str, settings: Any = None) -> LoopSpec:
    """One declared loop; an unknown name lists the loops that exist (read off the
    tables, before any loop is parsed: a wrong name answers without the model libraries)."""
    if settings is None:
        from ctloop.core.settings import load_settings

        settings = load_settings()
    tables = settings.tables.loops
    if not isinstance(tables, Mapping):
        return load_loops(settings)[name]  # the error for a malformed [ctloop.loops]
    if name in tables:  # only this one is parsed: another loop's mistake is not this one's
        return parse_loop(name, tables[name], root=settings.project_root)
    loops = list(tables)
    if not loops:
        from ctloop.core.settings import CONFIG_FILE, find_project_root

        root = find_project_root()
        if not (root / CONFIG_FILE).is_file():
            raise NotFound(f"No loop named {name!r}: there is no {CONFIG_FILE} in {root} or "
                           f"any folder above it. Run this in a project folder (one with a "
                           f"{CONFIG_FILE} declaring [ctloop.loops.{name}]), or start one "
                           "with `ctloop init NAME --template loop`.")
    close = difflib.get_close_matches(name, loops, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise NotFound(f"No loop named {name!r} in ctloop.toml.{hint} Loops: "
                   f"{', '.join(loops) or 'none'} (declare [ctloop.loops.{name}]).")
