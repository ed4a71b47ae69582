"""Settings: embedded defaults < ``ctloop.toml`` < ``CTLOOP_*`` environment < environment table.

Zero configuration means everything lives under ``.ctloop/`` in the project
folder: a SQLite metadata database, a local artifact folder and a SQLite online
store. Moving to a team server or a cluster changes URLs here, not code.

Environments (level 2): ``[ctloop.environments.NAME]`` declares a set of stores
(``metadata``, ``artifacts``, ``online_store``, ``request_log``, ``home``) and
tables (``serving``, ``s3``, ...) merged over the project's. ``CTLOOP_ENV`` or
``ctloop --env NAME`` chooses one. An environment never shares a store with the
project by accident: a store it does not declare lives under its own home
(``.ctloop/environments/NAME`` unless it sets ``home``). What it declares wins
over the ``CTLOOP_*`` variables, so one process can open staging and prod side
by side (``load_settings(env="prod")``).
"""

from __future__ import annotations

import difflib
import logging
import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ctloop.core.errors import ConfigError

__all__ = ["KNOWN_ENV", "KNOWN_TABLES", "Settings", "check_environment", "environment_names",
           "find_project_root", "load_settings"]

CONFIG_FILE = "ctloop.toml"
ENV_PREFIX = "CTLOOP_"


@dataclass(frozen=True)
class Settings:
    """Where ctloop keeps its state and how it runs steps."""

    home: Path
    metadata_url: str = ""
    artifacts_url: str = ""
    online_store_url: str = ""
    runner: str = "local"
    max_workers: int = 4
    cache: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    environment: str = ""  # the [ctloop.environments.NAME] these came from; "" for none
    project: Path | None = None  # the folder of ctloop.toml; None: the state folder's parent

    @property
    def project_root(self) -> Path:
        """The project folder (pipelines, landing folders): where ``ctloop.toml`` is, even
        when ``CTLOOP_HOME`` or an environment puts the state elsewhere."""
        return self.project if self.project is not None else self.home.parent

    def __post_init__(self) -> None:
        home = Path(self.home).resolve()
        object.__setattr__(self, "home", home)
        if not self.metadata_url:
            object.__setattr__(self, "metadata_url", f"sqlite:///{home / 'metadata.db'}")
        if not self.artifacts_url:
            object.__setattr__(self, "artifacts_url", (home / "artifacts").as_uri())
        if not self.online_store_url:
            object.__setattr__(self, "online_store_url", f"sqlite:///{home / 'online.db'}")
        from ctloop.core.secrets import remember_url_secrets

        remember_url_secrets(self.metadata_url, self.artifacts_url, self.online_store_url,
                             self.runner)
        if self.max_workers < 1:
            raise ConfigError(
                f"The 'max_workers' setting must be an int >= 1. Got {self.max_workers!r}."
            )

    def storage_options(self, url: str) -> dict[str, Any]:
        """fsspec options for an object-store URL from the ``[ctloop.s3]`` table of ctloop.toml.

        Keys: ``endpoint_url``, ``region``, ``profile``, ``anon``. Credentials
        themselves stay in the standard AWS variables or profiles, never here.
        """
        if not url.startswith(("s3://", "s3a://")):
            return {}
        s3 = dict(self.extra.get("s3", {}))
        unknown = sorted(set(s3) - {"endpoint_url", "region", "profile", "anon"})
        if unknown:
            raise ConfigError(
                f"Unknown keys {unknown} in the [ctloop.s3] table of ctloop.toml; allowed: "
                "endpoint_url, region, profile, anon. Credentials belong in AWS_* variables."
            )
        options: dict[str, Any] = {}
        if s3.get("endpoint_url"):
            options["endpoint_url"] = str(s3["endpoint_url"])
        if s3.get("region"):
            options["client_kwargs"] = {"region_name": str(s3["region"])}
        if s3.get("profile"):
            options["profile"] = str(s3["profile"])
        if s3.get("anon"):
            options["anon"] = bool(s3["anon"])
        return options

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields changed."""
        return replace(self, **changes)


_KEYS = {f.name for f in fields(Settings)} - {"extra", "environment", "project"}
_TOML_KEYS = {
    "home": "home",
    "metadata": "metadata_url",
    "metadata_url": "metadata_url",
    "artifacts": "artifacts_url",
    "artifacts_url": "artifacts_url",
    "online_store": "online_store_url",
    "online_store_url": "online_store_url",
    "runner": "runner",
    "max_workers": "max_workers",
    "cache": "cache",
}


# Tables of ctloop.toml other packages read from ``Settings.extra``, and ``CTLOOP_*``
# variables read outside these settings. Add yours here: a name close to one of
# these (a likely typo) is reported with the right spelling.
KNOWN_TABLES = frozenset({"s3", "dask", "deploy", "serving", "triggers", "loops", "monitors",
                          "features", "ui", "environments", "prediction_log", "model_test"})
KNOWN_ENV = frozenset({"CACHE_DIR", "ACTOR", "ENV", "MODEL_TEST_TIMEOUT"})
ENV_VARIABLE = ENV_PREFIX + "ENV"
# Keys of an environment table besides the _TOML_KEYS: where its request log lives.
_ENV_ONLY_KEYS = {"request_log": "prediction_log"}
_ENV_IGNORED_PREFIXES = ("CTLOOP_TEST_",)

_log = logging.getLogger("ctloop.settings")
_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        _log.warning(message)


def _nearest(name: str, known: set[str] | frozenset[str], cutoff: float = 0.6) -> str | None:
    match = difflib.get_close_matches(name, sorted(known), n=1, cutoff=cutoff)
    return match[0] if match else None


def _check_toml_key(path: Path, key: str, value: Any) -> None:
    """Warn about a key of ``[ctloop]`` nobody reads, naming the closest valid one."""
    if isinstance(value, dict):
        if key in KNOWN_TABLES:
            return
        near = _nearest(key, KNOWN_TABLES, cutoff=0.75)
        if near is not None:  # an unknown table may belong to a plugin: only flag near-misses
            _warn_once(f"{path}: unknown table [ctloop.{key}] is ignored; did you mean "
                       f"[ctloop.{near}]?")
        return
    near = _nearest(key, set(_TOML_KEYS))
    valid = ", ".join(sorted(_TOML_KEYS))
    hint = f"; did you mean {near!r}?" if near else f". Valid keys: {valid}."
    _warn_once(f"{path}: unknown setting {key!r} is ignored{hint}")


def check_environment(environ: dict[str, str] | None = None) -> list[str]:
    """Warn about ``CTLOOP_*`` variables that look like a misspelled known one.

    Returns the messages (also logged once per process on ``ctloop.settings``).
    """
    env = os.environ if environ is None else environ
    known = {k.upper() for k in _KEYS} | KNOWN_ENV
    messages = []
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name.startswith(_ENV_IGNORED_PREFIXES):
            continue
        suffix = name.removeprefix(ENV_PREFIX)
        if suffix in known:
            continue
        near = _nearest(suffix, known, cutoff=0.75)
        if near is not None:
            message = (f"The environment variable {name} is not a ctloop setting and is "
                       f"ignored; did you mean {ENV_PREFIX}{near}?")
            messages.append(message)
            _warn_once(message)
    return messages


def find_project_root(start: Path | None = None) -> Path:
    """The nearest folder upwards holding a ``ctloop.toml``, else ``start`` itself."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    return here


def _coerce(key: str, value: Any) -> Any:
    if key == "max_workers":
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"The 'max_workers' setting must be an int >= 1. Got {value!r}."
            ) from None
    if key == "cache":
        if isinstance(value, bool):
            return value
        return str(value).lower() in {"1", "true", "yes", "on"}
    return value


def _read_config(root: Path) -> dict[str, Any]:
    config_path = root / CONFIG_FILE
    if not config_path.is_file():
        return {}
    try:
        raw = tomllib.loads(config_path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_path} is not valid TOML: {exc}. Fix the file.") from exc
    section = raw.get("ctloop", raw)
    return section if isinstance(section, dict) else {}


def environment_names(project: Path | None = None) -> list[str]:
    """The environments ``ctloop.toml`` declares, sorted."""
    tables = _read_config(find_project_root(project)).get("environments") or {}
    return sorted(k for k, v in tables.items() if isinstance(v, dict))


def _environment_table(section: dict[str, Any], name: str, config_path: Path) -> dict[str, Any]:
    tables = section.get("environments") or {}
    table = tables.get(name) if isinstance(tables, dict) else None
    if not isinstance(table, dict):
        known = ", ".join(sorted(k for k, v in tables.items() if isinstance(v, dict))) or "none"
        raise ConfigError(
            f"Unknown environment {name!r}: {config_path} declares {known}. Add a "
            f"[ctloop.environments.{name}] table or pick one of those."
        )
    return table


def _apply_environment(
    name: str, table: dict[str, Any], root: Path, values: dict[str, Any], extra: dict[str, Any]
) -> None:
    """Lay an environment's table over ``values``/``extra``; undeclared stores go to its home."""
    declared: dict[str, Any] = {}
    for key, value in table.items():
        if key in _TOML_KEYS:
            target = _TOML_KEYS[key]
            declared[target] = (root / str(value)).resolve() if target == "home" else value
        elif key in _ENV_ONLY_KEYS:
            table_name = _ENV_ONLY_KEYS[key]
            extra[table_name] = {**dict(extra.get(table_name) or {}), "url": str(value)}
        elif isinstance(value, dict):
            extra[key] = {**dict(extra.get(key) or {}), **value}
        else:
            valid = ", ".join(sorted({*_TOML_KEYS, *_ENV_ONLY_KEYS}))
            raise ConfigError(
                f"Unknown key {key!r} in [ctloop.environments.{name}]; valid keys: {valid}, "
                "or a table such as serving or s3."
            )
    home = declared.pop("home", None) or Path(values["home"]) / "environments" / name
    values["home"] = home
    for store in ("metadata_url", "artifacts_url", "online_store_url"):
        values[store] = declared.pop(store, "")  # undeclared: under the environment's home
    values.update({k: _coerce(k, v) for k, v in declared.items()})


def load_settings(project: Path | None = None, *, env: str | None = None,
                  **overrides: Any) -> Settings:
    """Settings for the project at ``project`` (default: found from the cwd).

    ``CTLOOP_HOME`` moves the whole state folder; ``CTLOOP_METADATA_URL``,
    ``CTLOOP_ARTIFACTS_URL``, ``CTLOOP_ONLINE_STORE_URL``, ``CTLOOP_RUNNER`` and
    ``CTLOOP_MAX_WORKERS`` override single settings. ``env`` (default
    ``CTLOOP_ENV``) names an environment of ``[ctloop.environments]``; an
    unknown one is a ``ConfigError``.
    """
    root = find_project_root(project)
    values: dict[str, Any] = {"home": root / ".ctloop"}
    extra: dict[str, Any] = {}
    config_path = root / CONFIG_FILE
    section = _read_config(root)
    for key, value in section.items():
        if key in _TOML_KEYS:
            target = _TOML_KEYS[key]
            if target == "home":
                value = (root / str(value)).resolve()
            values[target] = _coerce(target, value)
        else:
            _check_toml_key(config_path, key, value)
            if isinstance(value, dict) and key != "environments":
                extra[key] = value
    check_environment()
    for key in _KEYS:
        value = os.environ.get(ENV_PREFIX + key.upper())
        if value:
            values[key] = _coerce(key, Path(value) if key == "home" else value)
    name = os.environ.get(ENV_VARIABLE, "") if env is None else env
    if name:
        _apply_environment(name, _environment_table(section, name, config_path), root,
                           values, extra)
    values.update({k: _coerce(k, v) for k, v in overrides.items() if v is not None})
    return Settings(extra=extra, environment=name, project=root.resolve(), **values)
