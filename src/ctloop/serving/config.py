"""Serving configuration: the ``[ctloop.serving]`` table of ctloop.toml plus overrides.

    [ctloop.serving]
    models = ["flights"]          # default: every registered model holding `alias`
    alias = "champion"            # the route that answers by default
    canary = "challenger=10%"     # a random share of requests (by request id) to another alias
    ab = "challenger=50%"         # a sticky share, by a hash of the `ab_key` column
    ab_key = "tailnum"
    shadow = "challenger"         # scores every row in the background; logged, never returned
    reload_interval = 5           # seconds between registry polls (0: never)
    seed = 0                      # salts the split hashes
    prediction_log = "path/or/file://url"   # default .ctloop/predictions; "" turns it off
    features = "path/to/definitions.py"     # default: the feature catalog, if it has views
    max_body_bytes = 10_000_000   # larger bodies get 413, cut off while streaming
    max_json_depth = 32           # deeper JSON nesting gets 400
    coerce_types = false          # true: accept "44" for an integer column, 5 for a string one
    allow_nulls = false           # true: nulls even in columns never null in training
    missing_features = "reject"   # "flag": answer rows the online store cannot fill, flagged
    batch_wait_ms = 0             # how long a micro-batch may wait for company (0: one loop turn)
    batch_rows = 4096             # largest micro-batch
    model_threads = 1             # threads per predict call (LightGBM num_threads)
    compiled = "auto"             # LightGBM trees compiled to native code, cached with the
                                  # version (ctloop.models.compiled; the `compiled` extra).
                                  # "auto": the library answers at once, compiled code is
                                  # swapped in once built in the background; true: compile
                                  # before serving; false: never. Default: "auto", or the
                                  # environment's CTLOOP_SERVING_COMPILED (auto/true/false)
    public = ["health"]           # routes that need no key when keys are on: health, metrics, docs
    grpc_port = 8081              # also serve the v2 protocol over gRPC here (default: off;
                                  # 0: any free port); needs the `grpc` extra
    grpc_host = "127.0.0.1"       # gRPC interface for create_app (`ctloop serve`: its --host)
    [ctloop.serving.feature_refs]
    flights = ["weather:temp", "planes:seats"]   # else taken from the model's lineage
    [ctloop.serving.keys]         # API keys, stored hashed (``ctloop serve --hash-key``)
    ops = { hash = "sha256:9f86d0...", roles = ["admin"] }

Keys may also come from the environment, as JSON in ``CTLOOP_SERVING_KEYS``
(same shape as the table); when any key is configured, every route needs one.

A target (``challenger``) is an alias of the served model, a version
(``3``) or a full reference (``other@champion``, ``other:2``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, TypeAlias, TypedDict

from ctloop.core.errors import ConfigError

__all__ = ["COMPILED_ENV", "Compiled", "MissingFeatures", "ServingConfig", "Split", "parse_split"]

COMPILED_ENV = "CTLOOP_SERVING_COMPILED"
"""The default of ``compiled`` when ctloop.toml does not set it (the test suite sets
``false``: no background compiles on a loaded CI machine)."""

Compiled: TypeAlias = bool | Literal["auto"]
"""When a served model's trees are compiled: ``"auto"`` in the background while the library
answers, ``True`` before it serves, ``False`` never."""

_PUBLIC = frozenset({"health", "metrics", "docs"})

MissingFeatures = Literal["reject", "flag"]
"""What the service does with rows the online store cannot fill: refuse the request, or
answer them flagged."""


class SplitJson(TypedDict):
    target: str
    share: float
    key: str | None


@dataclass(frozen=True)
class Split:
    """A share of traffic sent to ``target``; sticky by ``key`` column when given."""

    target: str
    share: float  # 0..1
    key: str | None = None  # None: by request id (canary); a column: sticky (A/B)

    def describe(self) -> SplitJson:
        return {"target": self.target, "share": self.share, "key": self.key}


def parse_split(text: str, *, option: str = "--canary") -> tuple[str, float]:
    """``"challenger=10%"`` / ``"challenger=0.1"`` -> ``("challenger", 0.1)``."""
    target, sep, raw = str(text).partition("=")
    raw = raw.strip()
    try:
        if not sep or not target.strip():
            raise ValueError
        share = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
        if share > 1 and not raw.endswith("%"):
            share /= 100  # "challenger=10" means 10%
    except ValueError:
        raise ConfigError(
            f"The {option} value {text!r} must look like ALIAS=PCT, e.g. challenger=10%."
        ) from None
    if not 0 <= share <= 1:
        raise ConfigError(f"The {option} share in {text!r} must be between 0% and 100%.")
    return target.strip(), share


def compiled_default() -> Compiled:
    """``compiled`` when ctloop.toml does not set it: ``CTLOOP_SERVING_COMPILED``, else auto."""
    raw = os.environ.get(COMPILED_ENV, "").strip().lower()
    if not raw:
        return "auto"
    return _compiled({"true": True, "false": False}.get(raw, raw), f"{COMPILED_ENV}")


def _compiled(value: object, what: str) -> Compiled:
    if isinstance(value, bool):
        return value
    if value == "auto":
        return "auto"
    raise ConfigError(f'{what} must be true, false or "auto". Got {value!r}.')


@dataclass(frozen=True)
class ServingConfig:
    """What the prediction service serves and how it routes."""

    models: tuple[str, ...] = ()
    alias: str = "champion"
    canary: Split | None = None
    ab: Split | None = None
    shadow: str | None = None
    reload_interval: float = 5.0
    seed: int = 0
    prediction_log: str | None = None  # None: the default folder; "": off
    features: str | None = None
    feature_refs: dict[str, list[str]] = field(default_factory=dict)
    max_body_bytes: int = 10_000_000
    max_json_depth: int = 32
    coerce_types: bool = False
    allow_nulls: bool = False
    missing_features: MissingFeatures = "reject"
    batch_wait_ms: float = 0.0
    batch_rows: int = 4096
    model_threads: int = 1
    compiled: Compiled = field(default_factory=compiled_default)
    public: tuple[str, ...] = ("health",)
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    grpc_port: int | None = None  # None: no gRPC service
    grpc_host: str = "127.0.0.1"

    @property
    def splits(self) -> list[Split]:
        return [s for s in (self.canary, self.ab) if s is not None and s.share > 0]

    @classmethod
    def from_table(cls, table: Mapping[str, object] | None = None,
                   **overrides: object) -> ServingConfig:
        """From the ``[ctloop.serving]`` table; non-None ``overrides`` win (CLI options)."""
        raw = {**(table or {}), **{k: v for k, v in overrides.items() if v is not None}}
        known = {f.name for f in fields(cls)} | {"ab_key"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(
                f"Unknown keys {unknown} in the [ctloop.serving] table of ctloop.toml; "
                f"allowed: {', '.join(sorted(known))}."
            )
        config = cls(
            models=_names(raw.get("models", ()), "models"),
            alias=str(raw.get("alias", cls.alias)),
            canary=_split(raw["canary"], None, "canary") if raw.get("canary") else None,
            ab=_ab_split(raw),
            shadow=_text(raw, "shadow"),
            reload_interval=_number(raw, "reload_interval", cls.reload_interval),
            seed=_integer(raw, "seed", cls.seed),
            prediction_log=_text(raw, "prediction_log"),
            features=_text(raw, "features"),
            feature_refs=_feature_refs(raw.get("feature_refs")),
            max_body_bytes=_integer(raw, "max_body_bytes", cls.max_body_bytes),
            max_json_depth=_integer(raw, "max_json_depth", cls.max_json_depth),
            coerce_types=_flag(raw, "coerce_types"),
            allow_nulls=_flag(raw, "allow_nulls"),
            missing_features=_missing_features(raw.get("missing_features", "reject")),
            batch_wait_ms=_number(raw, "batch_wait_ms", cls.batch_wait_ms),
            batch_rows=_integer(raw, "batch_rows", cls.batch_rows),
            model_threads=_integer(raw, "model_threads", cls.model_threads),
            compiled=_compiled(raw["compiled"], "The serving setting 'compiled'")
            if "compiled" in raw else compiled_default(),
            public=_public(raw.get("public", cls.public)),
            keys=_keys(raw.get("keys")),
            grpc_port=None if raw.get("grpc_port") is None else _integer(raw, "grpc_port", 0),
            grpc_host=str(raw.get("grpc_host", cls.grpc_host)),
        )
        config.check()
        return config

    def check(self) -> None:
        """Raise ``ConfigError`` on a setting out of its range."""
        for key in ("max_body_bytes", "max_json_depth", "batch_rows", "model_threads"):
            if getattr(self, key) < 1:
                raise ConfigError(f"The serving setting {key!r} must be at least 1.")
        if self.grpc_port is not None and not 0 <= self.grpc_port <= 65535:
            raise ConfigError(
                f"The serving setting 'grpc_port' must be a port number (0 to 65535); "
                f"got {self.grpc_port}."
            )
        if self.canary and self.ab and self.canary.share + self.ab.share > 1:
            raise ConfigError("The canary and A/B shares add up to more than 100%.")

    def with_(self, **changes: Any) -> ServingConfig:
        return replace(self, **changes)


def _text(raw: Mapping[str, object], key: str) -> str | None:
    value = raw.get(key)
    return None if value is None else str(value)


def _number(raw: Mapping[str, object], key: str, default: float) -> float:
    """``raw[key]`` as a number (``int`` callers truncate), ``default`` when absent."""
    value = raw.get(key, default)
    if isinstance(value, int | float | str):
        try:
            return float(value) if isinstance(value, float | str) else value
        except ValueError:
            pass
    raise ConfigError(f"The serving setting {key!r} must be a number. Got {value!r}.")


def _integer(raw: Mapping[str, object], key: str, default: int) -> int:
    """``raw[key]`` as a whole number; ``5.5`` is refused, never truncated."""
    value = _number(raw, key, default)
    if isinstance(value, float) and not value.is_integer():
        raise ConfigError(f"The serving setting {key!r} must be a whole number. Got "
                          f"{raw.get(key)!r}.")
    return int(value)


def _flag(raw: Mapping[str, object], key: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError(f"The serving setting {key!r} must be true or false. Got {value!r}.")
    return value


def _names(value: object, key: str) -> tuple[str, ...]:
    """One name or a list of names."""
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list | tuple):
        raise ConfigError(f"The serving setting {key!r} must be a name or a list of names. "
                          f"Got {value!r}.")
    return tuple(str(v) for v in value)


def _ab_split(raw: Mapping[str, object]) -> Split | None:
    ab_key = raw.get("ab_key")
    if not raw.get("ab"):
        if ab_key:
            raise ConfigError("ab_key (--ab-key) is set but no A/B split (--ab ALIAS=PCT) is.")
        return None
    if not ab_key:
        raise ConfigError(
            "An A/B split needs the column that keeps it sticky: set ab_key "
            "(--ab-key COLUMN), e.g. tailnum."
        )
    return _split(raw["ab"], str(ab_key), "ab")


def _missing_features(value: object) -> MissingFeatures:
    if value == "reject" or value == "flag":
        return value
    raise ConfigError(
        "The serving setting 'missing_features' must be \"reject\" or \"flag\"; "
        f"got {value!r}."
    )


def _public(value: object) -> tuple[str, ...]:
    public = _names(value, "public")
    bad = sorted(set(public) - _PUBLIC)
    if bad:
        raise ConfigError(
            f"Unknown public route group(s) {bad} in [ctloop.serving]; "
            f"choose among {sorted(_PUBLIC)}."
        )
    return public


def _keys(value: object) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    from ctloop.serving.auth import parse_keys

    return parse_keys(value, "[ctloop.serving.keys]")


def _feature_refs(value: object) -> dict[str, list[str]]:
    refs = value or {}
    if not isinstance(refs, Mapping) or not all(isinstance(v, list | tuple)
                                                 for v in refs.values()):
        raise ConfigError("[ctloop.serving.feature_refs] must map model names to ref lists.")
    return {str(k): [str(r) for r in v] for k, v in refs.items()}


def _split(value: object, key: str | None, option: str) -> Split:
    if isinstance(value, Split):
        return value
    target, share = parse_split(str(value), option=f"--{option.replace('_', '-')}")
    return Split(target, share, key)
