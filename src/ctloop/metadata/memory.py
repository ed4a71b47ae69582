"""A metadata store held in a dict: the reference backend for fast unit tests, and the
registry a deployed replica serves its first model from before the database is up.

It provides all four metadata Protocols and passes their contract suites
(:mod:`ctloop.testing.metadata_contract`), so a unit test of the registry, the
loop policy or serving can use it instead of a SQLite file: nothing touches the
disk, and opening one costs nothing. It keeps the SQL store's observable rules
(from :mod:`ctloop.metadata.rules`): dict fields come back as JSON would give
them, datetimes aware UTC, error texts masked, the same errors with the same
messages. It lives in one process: a step run by the subprocess or Dask runner,
which opens the store by its URL, cannot reach it.

One lock serialises every call, which is what makes compare-and-set alias moves
and version numbers atomic here; reads return copies, so a caller that changes a
record's dict cannot change the store.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import threading
from datetime import datetime
from types import EllipsisType
from typing import TypeVar

from ctloop.core.errors import NotFound, StoreError, UserInputError
from ctloop.core.jsontypes import JSONObject
from ctloop.core.secrets import mask_secrets
from ctloop.metadata.base import (
    AliasEventRecord,
    ArtifactRecord,
    DefinitionRecord,
    EventRecord,
    ModelVersionRecord,
    ModelVersionUpdate,
    RunRecord,
    RunUpdate,
    StepRecord,
    StepStatus,
    version_in_range,
)
from ctloop.metadata.rules import (
    MIN_PREFIX,
    TEXT_FIELDS,
    check_event_kinds,
    check_name,
    json_round_trip,
    normalized,
    now,
)

__all__ = ["InMemoryMetadataStore"]

R = TypeVar("R")

_JSON_FIELDS = frozenset(
    {"parameters", "trigger_info", "executor", "environment", "tags", "upstream",
     "outputs", "properties", "spec"}
)
_OLDEST = datetime.min.replace(tzinfo=None)


def _stored(record: R) -> R:
    """The record as a database would keep it: JSON dicts, masked texts, UTC datetimes."""
    changes: dict[str, object] = {}
    for f in dataclasses.fields(record):  # type: ignore[arg-type]
        value = getattr(record, f.name)
        if f.name in _JSON_FIELDS:
            changes[f.name] = json_round_trip(value)
        elif f.name in TEXT_FIELDS and isinstance(value, str):
            changes[f.name] = mask_secrets(value)
    return normalized(dataclasses.replace(record, **changes))  # type: ignore[type-var]


def _newest_first(when: datetime | None) -> datetime:
    return _OLDEST if when is None else when.replace(tzinfo=None)


class InMemoryMetadataStore:
    """``MetadataStore`` in this process's memory; ``url`` is ``memory://``."""

    url = "memory://"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._runs: dict[str, RunRecord] = {}
        self._steps: dict[tuple[str, str], tuple[int, StepRecord]] = {}  # (run, name) -> seq
        self._artifacts: dict[str, tuple[int, ArtifactRecord]] = {}
        self._events: dict[EventRecord, int] = {}  # insertion order; a repeat is ignored
        self._versions: dict[str, dict[int, ModelVersionRecord]] = {}
        self._aliases: dict[str, dict[str, int]] = {}
        self._alias_events: list[AliasEventRecord] = []
        self._definitions: dict[tuple[str, str], list[DefinitionRecord]] = {}
        self._seq = itertools.count(1)

    def __repr__(self) -> str:
        return "InMemoryMetadataStore()"

    def close(self) -> None:
        """Nothing to release; the records stay readable."""

    # runs and steps ---------------------------------------------------------
    def create_run(self, run: RunRecord) -> RunRecord:
        if run.created_at is None:
            run = dataclasses.replace(run, created_at=now())
        with self._lock:
            if run.id in self._runs:
                raise StoreError(f"A run with id {run.id!r} already exists.")
            self._runs[run.id] = _stored(run)
        return normalized(run)

    def update_run(self, run_id: str, update: RunUpdate) -> RunRecord:
        with self._lock:
            if run_id not in self._runs:
                raise NotFound(f"No run with id {run_id!r}.")
            changed = dataclasses.replace(self._runs[run_id], **update.given())  # type: ignore[arg-type]
            self._runs[run_id] = _stored(changed)
            return copy.deepcopy(self._runs[run_id])

    def get_run(self, run_id: str) -> RunRecord:
        with self._lock:
            return copy.deepcopy(_by_prefix(self._runs, run_id, "run"))

    def list_runs(
        self, *, pipeline: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[RunRecord]:
        with self._lock:
            runs = [
                r for r in self._runs.values()
                if (pipeline is None or r.pipeline == pipeline)
                and (status is None or r.status.value == str(status))
            ]
        runs.sort(key=lambda r: (_newest_first(r.created_at), r.id), reverse=True)
        return copy.deepcopy(runs[: int(limit)])

    def save_step(self, step: StepRecord) -> StepRecord:
        with self._lock:
            if step.run_id not in self._runs:
                raise NotFound(f"Cannot save step {step.name!r}: no run with id {step.run_id!r}.")
            key = (step.run_id, step.name)
            seq = self._steps[key][0] if key in self._steps else next(self._seq)
            self._steps[key] = (seq, _stored(step))
        return normalized(step)

    def get_steps(self, run_id: str) -> list[StepRecord]:
        with self._lock:
            found = sorted(v for (run, _), v in self._steps.items() if run == run_id)
        return copy.deepcopy([step for _, step in found])

    def get_step(self, step_id: str) -> StepRecord:
        with self._lock:
            for _, step in self._steps.values():
                if step.id == step_id:
                    return copy.deepcopy(step)
        raise NotFound(f"No step with id {step_id!r}.")

    def find_cached_step(self, cache_key: str) -> StepRecord | None:
        with self._lock:
            hits = [
                (_newest_first(step.ended_at), seq, step)
                for seq, step in self._steps.values()
                if step.cache_key == cache_key and step.status is StepStatus.SUCCEEDED
            ]
        if not hits:
            return None
        return copy.deepcopy(max(hits, key=lambda hit: hit[:2])[2])

    # artifacts and lineage --------------------------------------------------
    def add_artifact(self, artifact: ArtifactRecord) -> ArtifactRecord:
        if artifact.created_at is None:
            artifact = dataclasses.replace(artifact, created_at=now())
        with self._lock:
            if artifact.id in self._artifacts:
                raise StoreError(f"An artifact with id {artifact.id!r} already exists.")
            self._artifacts[artifact.id] = (next(self._seq), _stored(artifact))
        return normalized(artifact)

    def get_artifact(self, artifact_id: str) -> ArtifactRecord:
        with self._lock:
            plain = {key: record for key, (_, record) in self._artifacts.items()}
            return copy.deepcopy(_by_prefix(plain, artifact_id, "artifact"))

    def list_artifacts(
        self, *, type: str | None = None, run_id: str | None = None, limit: int = 100
    ) -> list[ArtifactRecord]:
        with self._lock:
            found = [(seq, a) for seq, a in self._artifacts.values()
                     if type is None or a.type == type]
            if run_id is not None:
                steps = {s.id for (run, _), (_, s) in self._steps.items() if run == run_id}
                touched = {e.artifact_id for e in self._events if e.step_id in steps}
                found = [(seq, a) for seq, a in found
                         if a.producer_step_id in steps or a.id in touched]
        found.sort(key=lambda item: (_newest_first(item[1].created_at), item[0]), reverse=True)
        return copy.deepcopy([a for _, a in found[: int(limit)]])

    def add_events(self, events: list[EventRecord]) -> None:
        check_event_kinds(events)
        with self._lock:
            for event in events:
                self._events.setdefault(event, next(self._seq))

    def get_events(
        self, *, step_id: str | None = None, artifact_id: str | None = None
    ) -> list[EventRecord]:
        with self._lock:
            return [
                e for e in self._events  # dicts keep insertion order
                if (step_id is None or e.step_id == step_id)
                and (artifact_id is None or e.artifact_id == artifact_id)
            ]

    # model registry ---------------------------------------------------------
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
        check_name(name, "model name")
        with self._lock:
            versions = self._versions.setdefault(name, {})
            for version in sorted(versions):
                if versions[version].artifact_id == artifact_id:
                    return copy.deepcopy(versions[version])
            record = _stored(ModelVersionRecord(
                name=name,
                version=max(versions, default=0) + 1,
                artifact_id=artifact_id,
                run_id=run_id,
                description=description,
                tags=dict(tags or {}),
                properties=dict(properties or {}),
                created_by=created_by,
                created_at=now(),
            ))
            versions[record.version] = record
            return copy.deepcopy(record)

    def get_model_version(self, name: str, version: int) -> ModelVersionRecord:
        with self._lock:
            record = self._versions.get(name, {}).get(int(version))
        if record is None:
            raise NotFound(
                f"Model {name!r} has no version {version}. List versions with `ctloop models list`."
            )
        return copy.deepcopy(record)

    def list_model_versions(self, name: str | None = None) -> list[ModelVersionRecord]:
        with self._lock:
            found = [
                record
                for model in sorted(self._versions)
                if name is None or model == name
                for _, record in sorted(self._versions[model].items())
            ]
            return copy.deepcopy(found)

    def update_model_version(
        self, name: str, version: int, update: ModelVersionUpdate
    ) -> ModelVersionRecord:
        with self._lock:
            versions = self._versions.get(name, {})
            if not version_in_range(int(version)) or int(version) not in versions:
                raise NotFound(f"Model {name!r} has no version {version}.")
            changed = dataclasses.replace(versions[int(version)], **update.given())  # type: ignore[arg-type]
            versions[int(version)] = _stored(changed)
            return copy.deepcopy(versions[int(version)])

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
        check_name(alias, "alias")
        with self._lock:
            if name not in self._versions:
                raise NotFound(f"No model named {name!r}. Register a version first.")
            if version is not None and int(version) not in self._versions[name]:
                raise NotFound(f"Model {name!r} has no version {version}.")
            aliases = self._aliases.setdefault(name, {})
            current = aliases.get(alias)
            if expected_version is not ... and current != expected_version:
                raise StoreError(
                    f"Alias {alias!r} of model {name!r} points to version {current}, "
                    f"not {expected_version} as expected: someone moved it meanwhile. "
                    "Reload and decide again."
                )
            if version is None:
                aliases.pop(alias, None)
            else:
                aliases[alias] = int(version)
            event = normalized(AliasEventRecord(
                id=len(self._alias_events) + 1,
                name=name,
                alias=alias,
                version=version,
                previous_version=current,
                actor=actor,
                reason=reason,
                created_at=now(),
            ))
            self._alias_events.append(event)
            return event

    def get_aliases(self, name: str) -> dict[str, int]:
        with self._lock:
            return dict(self._aliases.get(name, {}))

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEventRecord]:
        with self._lock:
            return [
                e for e in self._alias_events
                if e.name == name and (alias is None or e.alias == alias)
            ]

    # catalog of definitions -------------------------------------------------
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
        check_name(kind, "definition kind")
        check_name(name, "definition name")
        with self._lock:
            history = self._definitions.setdefault((kind, name), [])
            if history and history[-1].fingerprint == fingerprint:
                return copy.deepcopy(history[-1]), False
            record = DefinitionRecord(
                kind=kind,
                name=name,
                version=len(history) + 1,
                fingerprint=fingerprint,
                spec=spec,
                description=description,
                owner=owner,
                tags=dict(tags or {}),
                created_at=now(),
            )
            history.append(_stored(record))
        return normalized(record), True

    def get_definition(self, kind: str, name: str, version: int | None = None) -> DefinitionRecord:
        with self._lock:
            history = self._definitions.get((kind, name), [])
            found = [d for d in history if version is None or d.version == int(version)]
        if not found:
            which = "any version" if version is None else f"version {version}"
            raise NotFound(f"No {kind} named {name!r} ({which}) in the catalog.")
        return copy.deepcopy(found[-1])

    def list_definitions(self, kind: str | None = None) -> list[DefinitionRecord]:
        with self._lock:
            latest = [
                history[-1]
                for (k, _), history in sorted(self._definitions.items())
                if history and (kind is None or k == kind)
            ]
            return copy.deepcopy(latest)


def _by_prefix(records: dict[str, R], key: str, what: str) -> R:
    """The record with id ``key``, or the one whose id starts with it (as the SQL store)."""
    key = str(key).strip()
    if key in records:
        return records[key]
    if len(key) < MIN_PREFIX:
        raise NotFound(
            f"No {what} with id {key!r}. Give the full id or at least "
            f"{MIN_PREFIX} characters of it."
        )
    found = [record for ident, record in records.items() if ident.startswith(key)][:2]
    if not found:
        raise NotFound(f"No {what} with id {key!r}. List them with `ctloop {what}s list`.")
    if len(found) > 1:
        raise UserInputError(
            f"The id prefix {key!r} matches several {what}s. Give more characters."
        )
    return found[0]
