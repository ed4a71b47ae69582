"""Trigger definitions: which pipeline to start, with what, and when.

A trigger is read from a ``[ctloop.triggers.NAME]`` table of ``ctloop.toml``
or built in Python with :func:`make_trigger`. It names one pipeline, its
parameters (string values may hold ``{placeholders}`` filled from what fired
it, e.g. ``"{path}"`` for a new file), a cooldown, and exactly one condition::

    manual = true
    cron = "*/5 * * * *"
    new_data = "landing/*.parquet"
    degradation = { model = "delays", metric = "roc_auc", max_drop = 0.05, window = "7d" }
    drift = { model = "delays", reference = "data/train.parquet", share = 0.5 }

Everything is checked when the trigger is defined, so a typo fails at
``ctloop triggers list`` rather than at three in the morning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeAlias, TypedDict

from ctloop.core.durations import duration_seconds
from ctloop.core.errors import ConfigError, NotFound, UserInputError

if TYPE_CHECKING:
    from ctloop.core.settings import Settings
    from ctloop.pipeline.dsl import AnyPipeline

__all__ = [
    "KINDS",
    "CronTrigger",
    "DegradationTrigger",
    "DriftTrigger",
    "ManualTrigger",
    "MonitorTrigger",
    "NewDataTrigger",
    "TriggerDef",
    "TriggerKind",
    "fill_params",
    "load_triggers",
    "make_trigger",
    "parse_duration",
]

TriggerKind = Literal["manual", "cron", "new_data", "degradation", "drift"]
KINDS: tuple[TriggerKind, ...] = ("manual", "cron", "new_data", "degradation", "drift")
_COMMON = {"pipeline", "params", "cooldown", "enabled", "description"}
_CONDITION_KEYS = {
    "degradation": {"model", "metric", "max_drop", "baseline", "min_labels", "window", "log",
                    "version"},
    "drift": {"model", "reference", "share", "min_rows", "window", "log", "columns"},
}


@dataclass(frozen=True, kw_only=True)
class _Trigger:
    """What every trigger has: a name, the pipeline it starts and how."""

    name: str
    pipeline: str | AnyPipeline  # "path.py:name" (absolute path once parsed) or a PipelineDef
    params: dict[str, object] = field(default_factory=dict)
    cooldown: float = 0.0
    enabled: bool = True
    description: str = ""

    @property
    def pipeline_ref(self) -> str:
        if isinstance(self.pipeline, str):
            return self.pipeline
        return f"{self.pipeline.func.__module__}:{self.pipeline.func.__qualname__}"


@dataclass(frozen=True, kw_only=True)
class ManualTrigger(_Trigger):
    """Fires only when a person asks (``ctloop triggers fire NAME``)."""

    kind: Literal["manual"] = "manual"

    def describe(self) -> str:
        """The condition as a person would write it."""
        return "manual"


@dataclass(frozen=True, kw_only=True)
class CronTrigger(_Trigger):
    """Fires once when a time of the ``cron`` schedule has passed."""

    cron: str
    kind: Literal["cron"] = "cron"

    def describe(self) -> str:
        return f"cron {self.cron}"


@dataclass(frozen=True, kw_only=True)
class NewDataTrigger(_Trigger):
    """Fires once per new file matching ``pattern`` (an absolute glob)."""

    pattern: str
    kind: Literal["new_data"] = "new_data"

    def describe(self) -> str:
        return f"new_data {self.pattern}"


@dataclass(frozen=True, kw_only=True)
class _MonitorTrigger(_Trigger):
    """Fires when a monitor over the request log of ``model`` says so."""

    model: str
    window: float | None = None  # seconds of the log to read; None: all of it
    log: str | None = None  # the request log; None: the project's
    kind: Literal["degradation", "drift"]

    def describe(self) -> str:
        skip = {f.name for f in fields(_Trigger)} | {"kind"}
        inner = ", ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self)
                          if f.name not in skip and getattr(self, f.name) is not None)
        return f"{self.kind} {{{inner}}}"


@dataclass(frozen=True, kw_only=True)
class DegradationTrigger(_MonitorTrigger):
    """Fires when ``metric`` on labelled predictions dropped by more than ``max_drop``."""

    metric: str = "roc_auc"
    max_drop: float = 0.05
    baseline: float | None = None  # None: the version's recorded evaluation
    min_labels: int = 200
    version: int | None = None
    kind: Literal["degradation"] = "degradation"


@dataclass(frozen=True, kw_only=True)
class DriftTrigger(_MonitorTrigger):
    """Fires when at least ``share`` of the served features drifted from ``reference``."""

    reference: str  # training data or statistics JSON, an absolute path
    share: float = 0.5
    min_rows: int = 100
    columns: tuple[str, ...] | None = None
    kind: Literal["drift"] = "drift"


class _Common(TypedDict):
    """The settings of ``_Trigger``, read before the kind is known."""

    name: str
    pipeline: str | AnyPipeline
    params: dict[str, object]
    cooldown: float
    enabled: bool
    description: str


MonitorTrigger: TypeAlias = DegradationTrigger | DriftTrigger
TriggerDef: TypeAlias = ManualTrigger | CronTrigger | NewDataTrigger | MonitorTrigger
"""One validated trigger; ``kind`` tells which."""


def parse_duration(value: object, what: str) -> float | None:
    """Seconds from ``3600``, ``"90s"``, ``"30m"``, ``"24h"``, ``"7d"`` or ``"2w"``."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        parsed = duration_seconds(value, unit_required=False)
        if parsed is None:
            raise UserInputError(
                f"{what} must be seconds or a duration like '30m', '24h', '7d'. Got {value!r}."
            )
        seconds = parsed
    if seconds < 0:
        raise UserInputError(f"{what} must be >= 0. Got {value!r}.")
    return seconds


def make_trigger(
    name: str,
    pipeline: str | AnyPipeline,
    *,
    params: Mapping[str, object] | None = None,
    cooldown: float | str = 0,
    enabled: bool = True,
    description: str = "",
    root: Path | None = None,
    **condition: object,
) -> TriggerDef:
    """A trigger from Python: ``make_trigger("nightly", "p.py:train", cron="0 3 * * *")``."""
    table = {"pipeline": pipeline, "params": dict(params or {}), "cooldown": cooldown,
             "enabled": enabled, "description": description, **condition}
    return parse_trigger(name, table, root=root)


def parse_trigger(name: str, table: object, *, root: Path | None = None) -> TriggerDef:
    """Validate one ``[ctloop.triggers.NAME]`` table; ``root`` anchors relative paths."""
    where = f"Trigger {name!r}"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table of settings. Got {table!r}.")
    root = (root or Path.cwd()).resolve()
    unknown = set(table) - _COMMON - set(KINDS)
    if unknown:
        raise ConfigError(
            f"{where} has unknown settings {sorted(unknown)}. Conditions are one of "
            f"{', '.join(KINDS)}; other settings: {', '.join(sorted(_COMMON))}."
        )
    kinds = [k for k in KINDS if k in table and table[k] is not None and table[k] is not False]
    if not kinds:
        raise ConfigError(
            f"{where} has no condition. Add exactly one of: {', '.join(KINDS)} "
            "(e.g. cron = \"0 3 * * *\" or manual = true)."
        )
    if len(kinds) > 1:
        raise ConfigError(
            f"{where} has {len(kinds)} conditions ({', '.join(kinds)}); a trigger has exactly "
            "one. Split it into one trigger per condition."
        )
    kind = kinds[0]
    if "pipeline" not in table or not table["pipeline"]:
        raise ConfigError(f"{where} names no pipeline. Add pipeline = \"path/to/file.py:name\".")
    params = table.get("params", {}) or {}
    if not isinstance(params, Mapping):
        raise ConfigError(f"{where}: params must be a table. Got {params!r}.")
    common: _Common = {
        "name": name,
        "pipeline": _check_pipeline(table["pipeline"], root, where),
        "params": {str(k): v for k, v in params.items()},
        "cooldown": parse_duration(table.get("cooldown", 0), f"{where}: cooldown") or 0.0,
        "enabled": bool(table.get("enabled", True)),
        "description": str(table.get("description", "")),
    }
    return _with_condition(common, kind, table[kind], root, where)


def _check_pipeline(pipeline: object, root: Path, where: str) -> str | AnyPipeline:
    from ctloop.pipeline.dsl import PipelineDef
    from ctloop.pipeline.loader import split_ref

    if isinstance(pipeline, PipelineDef):
        return pipeline
    if not isinstance(pipeline, str):
        raise ConfigError(f"{where}: pipeline must be \"file.py:name\". Got {pipeline!r}.")
    target, name = split_ref(pipeline)
    if not (target.endswith(".py") or "/" in target):
        return pipeline  # a module path; the engine reports a missing module
    path = Path(target) if Path(target).is_absolute() else root / target
    if not path.is_file():
        raise NotFound(
            f"{where}: pipeline file {target!r} does not exist (looked for {path}). "
            "Fix the pipeline setting; relative paths start at the project folder."
        )
    return f"{path}:{name}" if name else str(path)


def _with_condition(common: _Common, kind: TriggerKind, value: object, root: Path,
                    where: str) -> TriggerDef:
    """The trigger of ``kind`` with the settings in ``common`` and its checked condition."""
    if kind == "manual":
        if value is not True:
            raise ConfigError(f"{where}: write manual = true. Got {value!r}.")
        return ManualTrigger(**common)
    if kind == "cron":
        from croniter import croniter

        if not isinstance(value, str) or not croniter.is_valid(value):
            raise UserInputError(
                f"{where}: {value!r} is not a valid cron expression. Use five fields, "
                "minute hour day month weekday, e.g. \"*/5 * * * *\" or \"0 3 * * 1\"."
            )
        return CronTrigger(cron=value, **common)
    if kind == "new_data":
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(
                f"{where}: new_data must be a glob like \"landing/*.parquet\". Got {value!r}."
            )
        return NewDataTrigger(pattern=_anchored(value, root), **common)
    return _check_monitor(common, kind, value, root, where)
def _anchored(path: str, root: Path) -> str:
    return str(Path(path) if Path(path).is_absolute() else root / path)


def _check_monitor(common: _Common, kind: TriggerKind, value: object, root: Path,
                   where: str) -> MonitorTrigger:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: {kind} must be a table like {{ model = \"NAME\", ... }}.")
    unknown = set(value) - _CONDITION_KEYS[kind]
    if unknown:
        raise ConfigError(
            f"{where}: {kind} has unknown settings {sorted(unknown)}; known: "
            f"{', '.join(sorted(_CONDITION_KEYS[kind]))}."
        )
    if not value.get("model"):
        raise ConfigError(f"{where}: {kind} needs model = \"NAME\" (the registered model).")
    model = str(value["model"])
    window = parse_duration(value.get("window"), f"{where}: {kind}.window")
    log = _anchored(str(value["log"]), root) if value.get("log") else None
    if kind == "drift":
        ref = value.get("reference")
        if not ref:
            raise ConfigError(
                f"{where}: drift needs reference = \"path\" (training data or statistics JSON)."
            )
        share = _number(value.get("share", 0.5), f"{where}: drift.share")
        if not 0 < share <= 1:
            raise ConfigError(f"{where}: drift.share must be in (0, 1]. Got {share!r}.")
        columns = value.get("columns")
        if columns is not None and (isinstance(columns, str)
                                    or not isinstance(columns, list | tuple)):
            raise ConfigError(f"{where}: drift.columns must be a list of column names. "
                              f"Got {columns!r}.")
        return DriftTrigger(
            model=model, window=window, log=log, reference=_anchored(str(ref), root),
            share=share, min_rows=int(_number(value.get("min_rows", 100), f"{where}: "
                                              "drift.min_rows")),
            columns=None if columns is None else tuple(str(c) for c in columns), **common)
    from ctloop.models.metrics import HIGHER_IS_BETTER

    metric = value.get("metric", "roc_auc")
    if metric not in HIGHER_IS_BETTER:
        raise ConfigError(
            f"{where}: unknown metric {metric!r}; use one of {', '.join(HIGHER_IS_BETTER)}."
        )
    baseline, version = value.get("baseline"), value.get("version")
    return DegradationTrigger(
        model=model, window=window, log=log, metric=str(metric),
        max_drop=_number(value.get("max_drop", 0.05), f"{where}: degradation.max_drop"),
        baseline=None if baseline is None else _number(baseline, f"{where}: "
                                                                 "degradation.baseline"),
        min_labels=int(_number(value.get("min_labels", 200), f"{where}: "
                                                              "degradation.min_labels")),
        version=None if version is None else int(_number(version, f"{where}: "
                                                                  "degradation.version")),
        **common)


def _number(value: object, what: str) -> float:
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            pass
    raise ConfigError(f"{what} must be a number. Got {value!r}.")


def load_triggers(settings: Settings | None = None) -> list[TriggerDef]:
    """The triggers of ``ctloop.toml`` (``[ctloop.triggers.NAME]`` tables), in file order."""
    if settings is None:
        from ctloop.core.settings import load_settings

        settings = load_settings()
    tables = settings.tables.triggers
    if not isinstance(tables, Mapping):
        raise ConfigError("[ctloop.triggers] must hold one table per trigger.")
    root = settings.project_root
    return [parse_trigger(str(name), table, root=root) for name, table in tables.items()]


class _Missing(dict[str, object]):
    def __missing__(self, key: str) -> object:
        raise KeyError(key)


def fill_params(trigger: TriggerDef, info: Mapping[str, object]) -> dict[str, object]:
    """The trigger's params with ``{placeholders}`` filled from ``info``."""
    values = _Missing(info)

    def fill(value: object) -> object:
        if isinstance(value, str) and "{" in value:
            try:
                return value.format_map(values)
            except (KeyError, IndexError, ValueError) as exc:
                raise UserInputError(
                    f"Trigger {trigger.name!r}: cannot fill {value!r} ({exc!r}). "
                    f"Placeholders available for a {trigger.kind} trigger: "
                    f"{', '.join('{' + k + '}' for k in sorted(info)) or 'none'}."
                ) from None
        if isinstance(value, Mapping):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value

    return {k: fill(v) for k, v in trigger.params.items()}
