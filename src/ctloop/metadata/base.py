"""The metadata store interface and its records.

The metadata store is the system's memory: every run, step, artifact and the
edges between them (events), the model registry's versions and alias moves,
and the catalog of named definitions (feature views, entities, ...). Records
are frozen dataclasses of plain values so that every backend returns the same
thing and the CLI can print them as JSON without knowing the backend.

Backends: ``ctloop.metadata.sql.SqlMetadataStore`` for SQLite, PostgreSQL and
MySQL/MariaDB, opened by :func:`ctloop.metadata.open_metadata_store`; for unit
tests, ``ctloop.metadata.memory.InMemoryMetadataStore``. Changes to a run or a
model version are typed records (:class:`RunUpdate`, :class:`ModelVersionUpdate`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum, StrEnum
from types import EllipsisType
from typing import TYPE_CHECKING, Final, Literal, Protocol, runtime_checkable

from ctloop.core.jsontypes import JSONObject, JSONValue

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "EVENT_KINDS",
    "MAX_VERSION",
    "UNSET",
    "AliasEventRecord",
    "ArtifactRecord",
    "CatalogStore",
    "DefinitionRecord",
    "DefinitionStore",
    "EventRecord",
    "LineageStore",
    "MetadataStore",
    "ModelStore",
    "ModelVersionRecord",
    "ModelVersionUpdate",
    "PipelineStore",
    "RegistryStore",
    "RunLineageStore",
    "RunRecord",
    "RunStatus",
    "RunStore",
    "RunUpdate",
    "StepRecord",
    "StepStatus",
    "Unset",
    "to_dict",
    "version_in_range",
]

# Version numbers are stored as 64-bit integers on every backend; a larger number names
# no version (it could never have been created), so stores answer NotFound for it.
MAX_VERSION = 2**63 - 1


def version_in_range(version: int) -> bool:
    """Whether ``version`` can name a stored version (1 .. 2**63-1)."""
    return 1 <= version <= MAX_VERSION


class RunStatus(StrEnum):
    """Where a run is: pending, running, then succeeded, failed or cancelled."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StepStatus(StrEnum):
    """Where a step is; ``cached`` and ``succeeded`` both mean its outputs exist."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CACHED = "cached"  # outputs reused from an earlier step with the same cache key
    SKIPPED = "skipped"  # not run because an upstream step failed

    @property
    def done(self) -> bool:
        """True for states whose outputs exist (a resumed run does not redo them)."""
        return self in (StepStatus.SUCCEEDED, StepStatus.CACHED)


@dataclass(frozen=True)
class RunRecord:
    """One execution of a pipeline."""

    id: str
    pipeline: str
    pipeline_version: str
    status: RunStatus = RunStatus.PENDING
    parameters: JSONObject = field(default_factory=dict)
    trigger: str = "manual"  # manual | cron | new_data | degradation | drift | ...
    trigger_info: JSONObject = field(default_factory=dict)
    executor: JSONObject = field(default_factory=dict)  # user, host, runner
    environment: JSONObject = field(default_factory=dict)  # python, packages, git
    tags: dict[str, str] = field(default_factory=dict)
    source: str = ""  # "path/to/file.py:pipeline_name", what `ctloop resume` reloads
    created_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: str | None = None


@dataclass(frozen=True)
class StepRecord:
    """One step of a run: a component called with inputs and parameters."""

    id: str
    run_id: str
    name: str  # unique within the run
    component: str
    component_version: str
    status: StepStatus = StepStatus.PENDING
    cache_key: str | None = None
    parameters: JSONObject = field(default_factory=dict)
    upstream: list[str] = field(default_factory=list)  # names of steps it depends on
    attempts: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_s: float | None = None
    error: str | None = None
    traceback: str | None = None
    executor: JSONObject = field(default_factory=dict)  # host, pid, runner, worker
    cached_from: str | None = None  # id of the step whose outputs a cached step reused
    outputs: JSONObject = field(default_factory=dict)  # plain (non-artifact) return values


@dataclass(frozen=True)
class ArtifactRecord:
    """Bytes in the artifact store, with their hash, as one typed value."""

    id: str
    type: str  # Dataset | Model | Metrics | Statistics | Schema | ... (artifact class name)
    uri: str
    sha256: str
    size: int
    name: str = ""  # output name on the producing step
    properties: JSONObject = field(default_factory=dict)
    producer_step_id: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class EventRecord:
    """An edge: a step read (``input``) or wrote (``output``) an artifact."""

    step_id: str
    artifact_id: str
    kind: str  # "input" | "output" | "partial" (written by a step that then failed)
    name: str  # parameter / output name


EVENT_KINDS = ("input", "output", "partial")


@dataclass(frozen=True)
class ModelVersionRecord:
    """A registered model version; versions count 1, 2, 3 ... per model name."""

    name: str
    version: int
    artifact_id: str
    run_id: str | None = None
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    properties: JSONObject = field(default_factory=dict)  # metrics, blessing, signature
    created_by: str = ""
    created_at: datetime | None = None


@dataclass(frozen=True)
class AliasEventRecord:
    """One move of an alias (``champion`` -> version 3), with who, when and why."""

    id: int
    name: str
    alias: str
    version: int | None  # None when the alias was removed
    previous_version: int | None
    actor: str
    reason: str
    created_at: datetime | None = None


@dataclass(frozen=True)
class DefinitionRecord:
    """A versioned named definition in the catalog (feature view, entity, ...)."""

    kind: str
    name: str
    version: int
    fingerprint: str  # hash of the canonical spec; equal spec -> same version
    spec: JSONObject
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    created_at: datetime | None = None


class _Unset(Enum):
    UNSET = "unset"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset.UNSET
"""A field of an update record left as it is (``None`` is a value: it clears the field)."""
Unset = Literal[_Unset.UNSET]


def _given(update: object) -> dict[str, object]:
    return {
        f.name: getattr(update, f.name)
        for f in dataclasses.fields(update)  # type: ignore[arg-type]
        if getattr(update, f.name) is not UNSET
    }


@dataclass(frozen=True, kw_only=True)
class RunUpdate:
    """The fields of a run to change; the others (``UNSET``) stay as they are.

    A typed record rather than ``**changes``: a misspelt field is a ``TypeError`` where
    the update is written, and ``mypy`` checks each value's type.
    """

    status: RunStatus | Unset = UNSET
    parameters: JSONObject | Unset = UNSET
    trigger_info: JSONObject | Unset = UNSET
    executor: JSONObject | Unset = UNSET
    environment: JSONObject | Unset = UNSET
    tags: dict[str, str] | Unset = UNSET
    source: str | Unset = UNSET
    started_at: datetime | Unset | None = UNSET
    ended_at: datetime | Unset | None = UNSET
    error: str | Unset | None = UNSET

    def given(self) -> dict[str, object]:
        """The fields to change, by name."""
        return _given(self)


@dataclass(frozen=True, kw_only=True)
class ModelVersionUpdate:
    """What may change on a registered version: its description, tags and properties."""

    description: str | Unset = UNSET
    tags: dict[str, str] | Unset = UNSET
    properties: JSONObject | Unset = UNSET

    def given(self) -> dict[str, object]:
        """The fields to change, by name."""
        return _given(self)


@runtime_checkable
class RunStore(Protocol):
    """Runs and their steps: what the engine records and ``resume`` reads back."""

    def create_run(self, run: RunRecord) -> RunRecord: ...
    def update_run(self, run_id: str, update: RunUpdate) -> RunRecord:
        """Change the fields ``update`` gives; the run as it now is."""
        ...

    def get_run(self, run_id: str) -> RunRecord:
        """Get a run by id or by a unique id prefix (at least 4 characters)."""
        ...

    def list_runs(
        self, *, pipeline: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[RunRecord]:
        """Newest first."""
        ...

    def save_step(self, step: StepRecord) -> StepRecord:
        """Insert or replace the step (unique on run_id + name)."""
        ...

    def get_steps(self, run_id: str) -> list[StepRecord]:
        """Steps of a run in the order they were first saved."""
        ...

    def get_step(self, step_id: str) -> StepRecord:
        """A step by its id (lineage walks from artifacts to the steps that made them)."""
        ...

    def find_cached_step(self, cache_key: str) -> StepRecord | None:
        """Newest succeeded (not cached) step with this cache key, if any."""
        ...


@runtime_checkable
class LineageStore(Protocol):
    """Artifacts and the events (a step read or wrote an artifact) that form lineage."""

    def add_artifact(self, artifact: ArtifactRecord) -> ArtifactRecord: ...
    def get_artifact(self, artifact_id: str) -> ArtifactRecord:
        """By id or unique id prefix (at least 4 characters)."""
        ...

    def list_artifacts(
        self, *, type: str | None = None, run_id: str | None = None, limit: int = 100
    ) -> list[ArtifactRecord]: ...
    def add_events(self, events: list[EventRecord]) -> None: ...
    def get_events(
        self, *, step_id: str | None = None, artifact_id: str | None = None
    ) -> list[EventRecord]: ...


@runtime_checkable
class RegistryStore(Protocol):
    """Model versions, aliases (compare-and-set moves) and their history."""

    def create_model_version(
        self,
        name: str,
        artifact_id: str,
        *,
        run_id: str | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
        properties: JSONObject | None = None,
        created_by: str = "",
    ) -> ModelVersionRecord:
        """Next version number for ``name``, assigned atomically.

        An artifact is at most one version of a name: when ``artifact_id`` already is a
        version of ``name``, that version is returned unchanged, also when several
        processes register it at once.
        """
        ...

    def get_model_version(self, name: str, version: int) -> ModelVersionRecord: ...
    def list_model_versions(self, name: str | None = None) -> list[ModelVersionRecord]: ...
    def update_model_version(
        self, name: str, version: int, update: ModelVersionUpdate
    ) -> ModelVersionRecord:
        """Change the description, tags or properties ``update`` gives."""
        ...

    def move_alias(
        self,
        name: str,
        alias: str,
        version: int | None,
        *,
        actor: str,
        reason: str = "",
        expected_version: int | EllipsisType | None = ...,
    ) -> AliasEventRecord:
        """Point ``alias`` at ``version`` (None removes it) and record the move.

        With ``expected_version`` given, the move happens only if the alias still
        points there (compare-and-set), else ``StoreError``; concurrent writers
        are serialised so the history never interleaves.
        """
        ...

    def get_aliases(self, name: str) -> dict[str, int]: ...
    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEventRecord]:
        """Oldest first."""
        ...


@runtime_checkable
class DefinitionStore(Protocol):
    """Versioned definitions of the catalog (feature views, entities, ...)."""

    def put_definition(
        self,
        kind: str,
        name: str,
        spec: JSONObject,
        *,
        fingerprint: str,
        description: str = "",
        owner: str = "",
        tags: dict[str, str] | None = None,
    ) -> tuple[DefinitionRecord, bool]:
        """Store a new version unless the latest has the same fingerprint.

        Returns the (new or existing) latest record and whether it was created.
        """
        ...

    def get_definition(
        self, kind: str, name: str, version: int | None = None
    ) -> DefinitionRecord: ...

    def list_definitions(self, kind: str | None = None) -> list[DefinitionRecord]:
        """Latest version of each definition."""
        ...


@runtime_checkable
class RunLineageStore(RunStore, LineageStore, Protocol):
    """Runs, steps, artifacts and events together: what a lineage walk reads."""


@runtime_checkable
class PipelineStore(RunLineageStore, Protocol):
    """What the pipeline engine records into; ``url`` lets a step's process open its own."""

    url: str


@runtime_checkable
class ModelStore(RegistryStore, RunLineageStore, Protocol):
    """The registry's versions and aliases, with the lineage a version records."""


@runtime_checkable
class CatalogStore(DefinitionStore, LineageStore, RegistryStore, Protocol):
    """The catalog's definitions, with the datasets and model versions that use them."""


@runtime_checkable
class MetadataStore(RunStore, LineageStore, RegistryStore, DefinitionStore, Protocol):
    """All four concerns, as one backend provides them, plus ``url`` and ``close``.

    Only the code that opens a store and hands it on (the CLI, the UI, the prediction
    service's app, environments) holds a ``MetadataStore``; the rest asks for the
    concern it uses (``RunStore``, ``LineageStore``, ``RegistryStore``,
    ``DefinitionStore``) or a named combination above (``PipelineStore`` for the
    engine, ``ModelStore`` for the registry, ``CatalogStore``, ``RunLineageStore``).
    Each concern has its own contract suite in :mod:`ctloop.testing.metadata_contract`.

    Every method is one transaction. Lookups that find nothing raise
    ``ctloop.core.errors.NotFound``; driver errors are translated to
    ``StoreError``/``BackendUnavailable`` inside the backend.
    """

    url: str

    def close(self) -> None: ...


def to_dict(record: DataclassInstance) -> dict[str, JSONValue]:
    """A record as JSON-ready dict (datetimes as ISO strings, enums as values)."""
    out: dict[str, JSONValue] = {}
    for key, value in dataclasses.asdict(record).items():
        if isinstance(value, datetime):
            out[key] = value.isoformat()
        elif isinstance(value, StrEnum):
            out[key] = value.value
        else:
            out[key] = value
    return out
