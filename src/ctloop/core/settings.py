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
from datetime import date, datetime, time
from pathlib import Path
from typing import TypeAlias, TypedDict

from typing_extensions import Unpack

from ctloop.core.errors import ConfigError

__all__ = ["KNOWN_ENV", "KNOWN_TABLES", "Settings", "Tables", "TomlTable", "TomlValue",
           "check_environment", "environment_names", "find_project_root", "load_settings"]

CONFIG_FILE = "ctloop.toml"
ENV_PREFIX = "CTLOOP_"

TomlValue: TypeAlias = (
    "str | int | float | bool | datetime | date | time | list[TomlValue] | dict[str, TomlValue]"
)
"""A value of ctloop.toml, as ``tomllib`` reads it."""
TomlTable: TypeAlias = dict[str, TomlValue]


@dataclass(frozen=True)
class Tables:
    """The tables of ``[ctloop]`` other packages read, one field each (empty: not written).

    Settings sit above every other package, so each table stays as TOML here and the
    package that owns it parses it into its typed record: ``serving`` into
    ``ServingConfig``, ``loops`` into ``LoopSpec``, ``triggers`` into ``TriggerDef``,
    ``s3`` into :meth:`Settings.storage_options`, and so on.
    """

    serving: TomlTable = field(default_factory=dict)
    loops: TomlTable = field(default_factory=dict)  # one table per loop
    triggers: TomlTable = field(default_factory=dict)  # one table per trigger
    monitors: TomlTable = field(default_factory=dict)
    features: TomlTable = field(default_factory=dict)
    prediction_log: TomlTable = field(default_factory=dict)
    s3: TomlTable = field(default_factory=dict)
    dask: TomlTable = field(default_factory=dict)
    deploy: TomlTable = field(default_factory=dict)
    ui: TomlTable = field(default_factory=dict)
    model_test: TomlTable = field(default_factory=dict)
    plugins: dict[str, TomlTable] = field(default_factory=dict)  # tables ctloop does not read

    @classmethod
    def from_tables(cls, tables: dict[str, TomlTable]) -> Tables:
        """Known tables to their fields, the rest to ``plugins``."""
        known = {k: v for k, v in tables.items() if k in _TABLE_FIELDS}
        plugins = {k: v for k, v in tables.items() if k not in _TABLE_FIELDS}
        return cls(**known, plugins=plugins)

    def as_dict(self) -> dict[str, TomlTable]:
        """The tables written in ctloop.toml by name, plugins' included."""
        written = {f: getattr(self, f) for f in sorted(_TABLE_FIELDS) if getattr(self, f)}
        return {**written, **self.plugins}


_TABLE_FIELDS = frozenset(f.name for f in fields(Tables)) - {"plugins"}


class SettingsChanges(TypedDict, total=False):
    """What :meth:`Settings.with_` may change."""

    home: Path
    metadata_url: str
    artifacts_url: str
    online_store_url: str
    runner: str
    max_workers: int
    cache: bool
    tables: Tables
    environment: str
    project: Path | None


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
    tables: Tables = field(default_factory=Tables)
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

    def storage_options(self, url: str) -> dict[str, object]:
        """fsspec options for an object-store URL from the ``[ctloop.s3]`` table of ctloop.toml.

        Keys: ``endpoint_url``, ``region``, ``profile``, ``anon``. Credentials
        themselves stay in the standard AWS variables or profiles, never here.
        """
        if not url.startswith(("s3://", "s3a://")):
            return {}
        s3 = self.tables.s3
        unknown = sorted(set(s3) - {"endpoint_url", "region", "profile", "anon"})
        if unknown:
            raise ConfigError(
                f"Unknown keys {unknown} in the [ctloop.s3] table of ctloop.toml; allowed: "
                "endpoint_url, region, profile, anon. Credentials belong in AWS_* variables."
            )
        options: dict[str, object] = {}
        if s3.get("endpoint_url"):
            options["endpoint_url"] = str(s3["endpoint_url"])
        if s3.get("region"):
            options["client_kwargs"] = {"region_name": str(s3["region"])}
        if s3.get("profile"):
            options["profile"] = str(s3["profile"])
        if s3.get("anon"):
            options["anon"] = bool(s3["anon"])
        return options

    def with_(self, **changes: Unpack[SettingsChanges]) -> Settings:
        """A copy with some fields changed."""
        return replace(self, **changes)


_KEYS = {f.name for f in fields(Settings)} - {"tables", "environment", "project"}
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


# Tables of ctloop.toml (the fields of ``Tables``, and environments), and ``CTLOOP_*``
# variables read outside these settings. Add yours to ``Tables``: a name close to one of
# these (a likely typo) is reported with the right spelling.
KNOWN_TABLES = _TABLE_FIELDS | {"environments"}
KNOWN_ENV = frozenset({"CACHE_DIR", "ACTOR", "ENV", "MODEL_TEST_TIMEOUT", "SERVING_COMPILED"})
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


def _check_toml_key(path: Path, key: str, value: TomlValue) -> None:
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


def _int_setting(value: object) -> int:
    if isinstance(value, int | float | str):
        try:
            return int(value)
        except ValueError:
            pass
    raise ConfigError(f"The 'max_workers' setting must be an int >= 1. Got {value!r}.")


def _bool_setting(value: object) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).lower() in {"1", "true", "yes", "on"}


def _read_config(root: Path) -> TomlTable:
    config_path = root / CONFIG_FILE
    if not config_path.is_file():
        return {}
    try:
        raw: TomlTable = tomllib.loads(config_path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_path} is not valid TOML: {exc}. Fix the file.") from exc
    section = raw.get("ctloop", raw)
    return section if isinstance(section, dict) else {}


def _tables_of(value: TomlValue | None) -> dict[str, TomlTable]:
    """The entries of ``value`` that are tables themselves."""
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(v, dict)}


def environment_names(project: Path | None = None) -> list[str]:
    """The environments ``ctloop.toml`` declares, sorted."""
    return sorted(_tables_of(_read_config(find_project_root(project)).get("environments")))


def _environment_table(section: TomlTable, name: str, config_path: Path) -> TomlTable:
    tables = _tables_of(section.get("environments"))
    if name not in tables:
        known = ", ".join(sorted(tables)) or "none"
        raise ConfigError(
            f"Unknown environment {name!r}: {config_path} declares {known}. Add a "
            f"[ctloop.environments.{name}] table or pick one of those."
        )
    return tables[name]


def _apply_environment(name: str, table: TomlTable, root: Path, values: dict[str, object],
                       tables: dict[str, TomlTable]) -> None:
    """Lay an environment's table over ``values``/``tables``; undeclared stores go to its
    home."""
    declared: dict[str, object] = {}
    for key, value in table.items():
        if key in _TOML_KEYS:
            target = _TOML_KEYS[key]
            declared[target] = (root / str(value)).resolve() if target == "home" else value
        elif key in _ENV_ONLY_KEYS:
            table_name = _ENV_ONLY_KEYS[key]
            tables[table_name] = {**tables.get(table_name, {}), "url": str(value)}
        elif isinstance(value, dict):
            tables[key] = {**tables.get(key, {}), **value}
        else:
            valid = ", ".join(sorted({*_TOML_KEYS, *_ENV_ONLY_KEYS}))
            raise ConfigError(
                f"Unknown key {key!r} in [ctloop.environments.{name}]; valid keys: {valid}, "
                "or a table such as serving or s3."
            )
    values["home"] = declared.pop("home", None) or Path(str(values["home"])) / "environments" / name
    for store in ("metadata_url", "artifacts_url", "online_store_url"):
        values[store] = declared.pop(store, "")  # undeclared: under the environment's home
    values.update(declared)


def load_settings(project: Path | None = None, *, env: str | None = None,
                  **overrides: str | int | bool | Path | None) -> Settings:
    """Settings for the project at ``project`` (default: found from the cwd).

    ``CTLOOP_HOME`` moves the whole state folder; ``CTLOOP_METADATA_URL``,
    ``CTLOOP_ARTIFACTS_URL``, ``CTLOOP_ONLINE_STORE_URL``, ``CTLOOP_RUNNER`` and
    ``CTLOOP_MAX_WORKERS`` override single settings. ``env`` (default
    ``CTLOOP_ENV``) names an environment of ``[ctloop.environments]``; an
    unknown one is a ``ConfigError``.
    """
    root = find_project_root(project)
    values: dict[str, object] = {"home": root / ".ctloop"}
    tables: dict[str, TomlTable] = {}
    config_path = root / CONFIG_FILE
    section = _read_config(root)
    for key, value in section.items():
        if key in _TOML_KEYS:
            target = _TOML_KEYS[key]
            values[target] = (root / str(value)).resolve() if target == "home" else value
        else:
            _check_toml_key(config_path, key, value)
            if isinstance(value, dict) and key != "environments":
                tables[key] = value
    check_environment()
    for key in _KEYS:
        text = os.environ.get(ENV_PREFIX + key.upper())
        if text:
            values[key] = Path(text) if key == "home" else text
    name = os.environ.get(ENV_VARIABLE, "") if env is None else env
    if name:
        _apply_environment(name, _environment_table(section, name, config_path), root,
                           values, tables)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(
        home=Path(str(values["home"])),
        metadata_url=str(values.get("metadata_url") or ""),
        artifacts_url=str(values.get("artifacts_url") or ""),
        online_store_url=str(values.get("online_store_url") or ""),
        runner=str(values.get("runner", "local")),
        max_workers=_int_setting(values.get("max_workers", 4)),
        cache=_bool_setting(values.get("cache", True)),
        tables=Tables.from_tables(tables),
        environment=name,
        project=root.resolve(),
    )
