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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ctloop.core.durations import duration_seconds
from ctloop.core.errors import ConfigError, NotFound, UserInputError

__all__ = [
    "KINDS",
    "TriggerDef",
    "fill_params",
    "load_triggers",
    "make_trigger",
    "parse_duration",
]

KINDS = ("manual", "cron", "new_data", "degradation", "drift")
_COMMON = {"pipeline", "params", "cooldown", "enabled", "description"}
_CONDITION_KEYS = {
    "degradation": {"model", "metric", "max_drop", "baseline", "min_labels", "window", "log",
                    "version"},
    "drift": {"model", "reference", "share", "min_rows", "window", "log", "columns"},
}


@dataclass(frozen=True)
class TriggerDef:
    """One validated trigger."""

    name: str
    pipeline: Any  # "path.py:name" (absolute path once parsed) or a PipelineDef
    kind: str
    condition: Any  # True | cron text | glob | dict of monitor settings
    params: dict[str, Any] = field(default_factory=dict)
    cooldown: float = 0.0
    enabled: bool = True
    description: str = ""

    def describe(self) -> str:
        """The condition as a person would write it."""
        if self.kind == "manual":
            return "manual"
        if self.kind in ("cron", "new_data"):
            return f"{self.kind} {self.condition}"
        inner = ", ".join(f"{k}={v}" for k, v in self.condition.items())
        return f"{self.kind} {{{inner}}}"

    @property
    def pipeline_ref(self) -> str:
        if isinstance(self.pipeline, str):
            return self.pipeline
        return f"{self.pipeline.func.__module__}:{self.pipeline.func.__qualname__}"


def parse_duration(value: Any, what: str) -> float | None:
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
    pipeline: Any,
    *,
    params: Mapping[str, Any] | None = None,
    cooldown: float | str = 0,
    enabled: bool = True,
    description: str = "",
    root: Path | None = None,
    **condition: Any,
) -> TriggerDef:
    """A trigger from Python: ``make_trigger("nightly", "p.py:train", cron="0 3 * * *")``."""
    table = {"pipeline": pipeline, "params": dict(params or {}), "cooldown": cooldown,
             "enabled": enabled, "description": description, **condition}
    return parse_trigger(name, table, root=root)


def parse_trigger(name: str, table: Mapping[str, Any], *, root: Path | None = None) -> TriggerDef:
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
    cooldown = parse_duration(table.get("cooldown", 0), f"{where}: cooldown") or 0.0
    return TriggerDef(
        name=name,
        pipeline=_check_pipeline(table["pipeline"], root, where),
        kind=kind,
        condition=_check_condition(kind, table[kind], root, where),
        params=dict(params),
        cooldown=cooldown,
        enabled=bool(table.get("enabled", True)),
        description=str(table.get("description", "")),
    )


def _check_pipeline(pipeline: Any, root: Path, where: str) -> Any:
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


def _check_condition(kind: str, value: Any, root: Path, where: str) -> Any:
    if kind == "manual":
        if value is not True:
            raise ConfigError(f"{where}: write manual = true. Got {value!r}.")
        return True
    if kind == "cron":
        from croniter import croniter

        if not isinstance(value, str) or not croniter.is_valid(value):
            raise UserInputError(
                f"{where}: {value!r} is not a valid cron expression. Use five fields, "
                "minute hour day month weekday, e.g. \"*/5 * * * *\" or \"0 3 * * 1\"."
            )
        return value
    if kind == "new_data":
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(
                f"{where}: new_data must be a glob like \"landing/*.parquet\". Got {value!r}."
            )
        pattern = Path(value)
        return str(pattern if pattern.is_absolute() else root / pattern)
    return _check_monitor(kind, value, root, where)


def _check_monitor(kind: str, value: Any, root: Path, where: str) -> dict[str, Any]:
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
    out = dict(value)
    out["window"] = parse_duration(value.get("window"), f"{where}: {kind}.window")
    if kind == "drift":
        ref = value.get("reference")
        if not ref:
            raise ConfigError(
                f"{where}: drift needs reference = \"path\" (training data or statistics JSON)."
            )
        path = Path(str(ref))
        out["reference"] = str(path if path.is_absolute() else root / path)
        share = float(value.get("share", 0.5))
        if not 0 < share <= 1:
            raise ConfigError(f"{where}: drift.share must be in (0, 1]. Got {share!r}.")
        out["share"] = share
    else:
        from ctloop.models.metrics import HIGHER_IS_BETTER

        metric = value.get("metric", "roc_auc")
        if metric not in HIGHER_IS_BETTER:
            raise ConfigError(
                f"{where}: unknown metric {metric!r}; use one of {', '.join(HIGHER_IS_BETTER)}."
            )
        out["metric"] = metric
        out["max_drop"] = float(value.get("max_drop", 0.05))
    if out.get("log"):
        log = Path(str(out["log"]))
        out["log"] = str(log if log.is_absolute() else root / log)
    return out


def load_triggers(settings: Any = None) -> list[TriggerDef]:
    """The triggers of ``ctloop.toml`` (``[ctloop.triggers.NAME]`` tables), in file order."""
    if settings is None:
        from ctloop.core.settings import load_settings

        settings = load_settings()
    tables = settings.extra.get("triggers", {})
    if not isinstance(tables, Mapping):
        raise ConfigError("[ctloop.triggers] must hold one table per trigger.")
    root = settings.project_root
    return [parse_trigger(name, table, root=root) for name, table in tables.items()]


class _Missing(dict[str, Any]):
    def __missing__(self, key: str) -> Any:
        raise KeyError(key)


def fill_params(trigger: TriggerDef, info: Mapping[str, Any]) -> dict[str, Any]:
    """The trigger's params with ``{placeholders}`` filled from ``info``."""
    values = _Missing(info)

    def fill(value: Any) -> Any:
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
