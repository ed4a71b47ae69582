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
    compiled = false              # true: LightGBM trees compiled to native code, cached with
                                  # the version (ctloop.models.compiled; the `compiled` extra)
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

from dataclasses import dataclass, field, fields, replace
from typing import Any

from ctloop.core.errors import ConfigError

__all__ = ["ServingConfig", "Split", "parse_split"]

_PUBLIC = frozenset({"health", "metrics", "docs"})


@dataclass(frozen=True)
class Split:
    """A share of traffic sent to ``target``; sticky by ``key`` column when given."""

    target: str
    share: float  # 0..1
    key: str | None = None  # None: by request id (canary); a column: sticky (A/B)

    def describe(self) -> dict[str, Any]:
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
    missing_features: str = "reject"
    batch_wait_ms: float = 0.0
    batch_rows: int = 4096
    model_threads: int = 1
    compiled: bool = False
    public: tuple[str, ...] = ("health",)
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    grpc_port: int | None = None  # None: no gRPC service
    grpc_host: str = "127.0.0.1"

    @property
    def splits(self) -> list[Split]:
        return [s for s in (self.canary, self.ab) if s is not None and s.share > 0]

    @classmethod
    def from_table(cls, table: dict[str, Any] | None = None, **overrides: Any) -> ServingConfig:
        """From the ``[ctloop.serving]`` table; non-None ``overrides`` win (CLI options)."""
        raw = {**(table or {}), **{k: v for k, v in overrides.items() if v is not None}}
        known = {f.name for f in fields(cls)} | {"ab_key"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(
                f"Unknown keys {unknown} in the [ctloop.serving] table of ctloop.toml; "
                f"allowed: {', '.join(sorted(known))}."
            )
        values: dict[str, Any] = {}
        models = raw.get("models", ())
        values["models"] = (models,) if isinstance(models, str) else tuple(models)
        if "grpc_host" in raw:
            values["grpc_host"] = str(raw["grpc_host"])
        for key in ("alias", "shadow", "prediction_log", "features"):
            if key in raw:
                values[key] = None if raw[key] is None else str(raw[key])
        numbers = (("reload_interval", float), ("seed", int), ("max_body_bytes", int),
                   ("max_json_depth", int), ("batch_wait_ms", float), ("batch_rows", int),
                   ("model_threads", int), ("grpc_port", int))
        for key, kind in numbers:
            if key in raw:
                try:
                    values[key] = kind(raw[key])
                except (TypeError, ValueError):
                    raise ConfigError(
                        f"The serving setting {key!r} must be a number. Got {raw[key]!r}."
                    ) from None
        if raw.get("canary"):
            values["canary"] = _split(raw["canary"], None, "canary")
        if raw.get("ab"):
            ab_key = raw.get("ab_key")
            if not ab_key:
                raise ConfigError(
                    "An A/B split needs the column that keeps it sticky: set ab_key "
                    "(--ab-key COLUMN), e.g. tailnum."
                )
            values["ab"] = _split(raw["ab"], str(ab_key), "ab")
        elif raw.get("ab_key"):
            raise ConfigError("ab_key (--ab-key) is set but no A/B split (--ab ALIAS=PCT) is.")
        for key in ("coerce_types", "allow_nulls", "compiled"):
            if key in raw:
                if not isinstance(raw[key], bool):
                    raise ConfigError(
                        f"The serving setting {key!r} must be true or false. Got {raw[key]!r}."
                    )
                values[key] = raw[key]
        if "missing_features" in raw:
            if raw["missing_features"] not in ("reject", "flag"):
                raise ConfigError(
                    "The serving setting 'missing_features' must be \"reject\" or \"flag\"; "
                    f"got {raw['missing_features']!r}."
                )
            values["missing_features"] = raw["missing_features"]
        if "public" in raw:
            public = raw["public"]
            public = [public] if isinstance(public, str) else list(public)
            bad = sorted(set(public) - _PUBLIC)
            if bad:
                raise ConfigError(
                    f"Unknown public route group(s) {bad} in [ctloop.serving]; "
                    f"choose among {sorted(_PUBLIC)}."
                )
            values["public"] = tuple(public)
        if "keys" in raw:
            from ctloop.serving.auth import parse_keys

            values["keys"] = parse_keys(raw["keys"], "[ctloop.serving.keys]")
        refs = raw.get("feature_refs") or {}
        if not isinstance(refs, dict):
            raise ConfigError("[ctloop.serving.feature_refs] must map model names to ref lists.")
        values["feature_refs"] = {str(k): [str(r) for r in v] for k, v in refs.items()}
        config = cls(**values)
        for key in ("max_body_bytes", "max_json_depth", "batch_rows", "model_threads"):
            if getattr(config, key) < 1:
                raise ConfigError(f"The serving setting {key!r} must be at least 1.")
        if config.grpc_port is not None and not 0 <= config.grpc_port <= 65535:
            raise ConfigError(
                f"The serving setting 'grpc_port' must be a port number (0 to 65535); "
                f"got {config.grpc_port}."
            )
        if config.canary and config.ab and config.canary.share + config.ab.share > 1:
            raise ConfigError("The canary and A/B shares add up to more than 100%.")
        return config

    def with_(self, **changes: Any) -> ServingConfig:
        return replace(self, **changes)


def _split(value: Any, key: str | None, option: str) -> Split:
    if isinstance(value, Split):
        return value
    target, share = parse_split(str(value), option=f"--{option.replace('_', '-')}")
    return Split(target, share, key)
