"""The conformance suites every metadata store passes, one per interface it provides.

A metadata store provides four Protocols (:mod:`ctloop.metadata.base`): runs and
steps (:class:`RunStoreContract`), artifacts and lineage events
(:class:`LineageStoreContract`), the model registry's versions and aliases
(:class:`RegistryStoreContract`) and the catalog's definitions
(:class:`DefinitionStoreContract`). Subclass the ones your store provides with
``__test__ = True`` and give them a ``store`` fixture::

    class TestMyRuns(RunStoreContract):
        __test__ = True

        @pytest.fixture(scope="class")
        def store(self):
            with temporary_metadata_url("postgres") as url:
                opened = open_metadata_store(url)
                yield opened
                opened.close()

The tests share one store and use unique names, so they never see each other's
records (and can run against a shared server). Each suite's ``store`` is typed
with the Protocol it needs (the lineage suite also records runs and steps). The SQL store
passes all four on SQLite, PostgreSQL and MariaDB, and so does the in-memory
reference store (:class:`ctloop.metadata.memory.InMemoryMetadataStore`).
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TypedDict

import numpy as np
import pytest
from typing_extensions import Unpack

from ctloop.core.errors import NotFound, StoreError, UserInputError
from ctloop.core.jsontypes import JSONObject, as_list, as_object
from ctloop.metadata import (
    ArtifactRecord,
    DefinitionStore,
    EventRecord,
    ModelVersionUpdate,
    RegistryStore,
    RunLineageStore,
    RunRecord,
    RunStatus,
    RunStore,
    RunUpdate,
    StepRecord,
    StepStatus,
    new_id,
    to_dict,
)
from ctloop.metadata.lineage import lineage
from ctloop.testing.services import unique_name

__all__ = [
    "DefinitionStoreContract",
    "LineageStoreContract",
    "RegistryStoreContract",
    "RunStoreContract",
]


class _RunFields(TypedDict, total=False):
    """The fields of a :class:`RunRecord` a test may set (the rest are made up)."""

    status: RunStatus
    parameters: JSONObject
    trigger: str
    trigger_info: JSONObject
    executor: JSONObject
    environment: JSONObject
    tags: dict[str, str]
    source: str
    created_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    error: str | None


class _StepFields(TypedDict, total=False):
    """The fields of a :class:`StepRecord` a test may set."""

    status: StepStatus
    cache_key: str | None
    parameters: JSONObject
    upstream: list[str]
    attempts: int
    started_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None
    error: str | None
    traceback: str | None
    executor: JSONObject
    cached_from: str | None
    outputs: JSONObject


class _ArtifactFields(TypedDict, total=False):
    """The optional fields of an :class:`ArtifactRecord` a test may set."""

    name: str
    properties: JSONObject
    producer_step_id: str | None
    created_at: datetime | None


def _run(pipeline: str | None = None, **kw: Unpack[_RunFields]) -> RunRecord:
    return RunRecord(
        id=new_id(), pipeline=pipeline or unique_name("pipe"), pipeline_version="v1", **kw
    )


def _step(run_id: str, name: str = "train", **kw: Unpack[_StepFields]) -> StepRecord:
    return StepRecord(
        id=new_id(), run_id=run_id, name=name, component="train", component_version="c1", **kw
    )


def _artifact(*, type: str = "Dataset", uri: str = "file:///x", sha256: str = "ab" * 32,
              size: int = 10, **kw: Unpack[_ArtifactFields]) -> ArtifactRecord:
    return ArtifactRecord(id=new_id(), type=type, uri=uri, sha256=sha256, size=size, **kw)


class RunStoreContract:
    """Runs and steps: ids and prefixes, updates, listing, the cache lookup.

    Needs a ``store`` fixture: a RunStore (any MetadataStore) shared by the
    class's tests, which use unique names so they do not see each other's records.
    """

    __test__ = False

    def test_run_round_trips_every_field(self, store: RunStore) -> None:
        started = datetime(2026, 3, 1, 12, 30, 45, 123456, tzinfo=UTC)
        run = _run(
            status=RunStatus.RUNNING,
            parameters={"months": [1, 2], "nested": {"lr": 0.1, "name": "ünï"}, "none": None},
            trigger="drift",
            trigger_info={"psi": 0.31},
            executor={"user": "ana", "host": "h", "runner": "local"},
            environment={"python": "3.11", "packages": {"pandas": "3.1"}, "git": "abc"},
            tags={"team": "ml"},
            source="flows.py:train",
            started_at=started,
        )
        created = store.create_run(run)
        got = store.get_run(run.id)
        assert got == created
        assert to_dict(got) | {"created_at": None} == to_dict(run) | {"created_at": None}
        assert got.started_at == started  # microseconds and UTC survive every backend
        assert got.created_at is not None and got.created_at.tzinfo is not None

    def test_run_timestamps_given_in_another_zone_come_back_as_utc(
        self, store: RunStore
    ) -> None:
        local = datetime(2026, 3, 1, 14, 0, 0, 5, tzinfo=timezone(timedelta(hours=2)))
        run = store.create_run(_run(started_at=local))
        started = store.get_run(run.id).started_at
        assert started == local
        assert started is not None and started.utcoffset() == timedelta(0)

    def test_get_run_by_unique_prefix_and_clear_errors(self, store: RunStore) -> None:
        run = store.create_run(_run())
        assert store.get_run(run.id[:8]) == run
        with pytest.raises(NotFound, match="No run"):
            store.get_run("ffffffff" + "0" * 24)
        with pytest.raises(NotFound, match="at least 4"):
            store.get_run("ab")
        twins = [
            store.create_run(
                RunRecord(id=f"twin{i}{uuid.uuid4().hex}", pipeline="p", pipeline_version="v")
            )
            for i in range(2)
        ]
        with pytest.raises(UserInputError, match="several"):
            store.get_run("twin")
        assert store.get_run(twins[0].id[:6]) == twins[0]

    def test_prefix_lookup_treats_like_wildcards_literally(self, store: RunStore) -> None:
        store.create_run(RunRecord(id="wild" + uuid.uuid4().hex, pipeline="p",
                                   pipeline_version="v"))
        with pytest.raises(NotFound):
            store.get_run("wil%")
        with pytest.raises(NotFound):
            store.get_run("wi__")

    def test_duplicate_run_id_is_refused_and_the_first_kept(self, store: RunStore) -> None:
        run = store.create_run(_run(tags={"first": "yes"}))
        with pytest.raises(StoreError, match="already exists"):
            store.create_run(RunRecord(id=run.id, pipeline="other", pipeline_version="v"))
        assert store.get_run(run.id).tags == {"first": "yes"}

    def test_update_run(self, store: RunStore) -> None:
        run = store.create_run(_run())
        ended = datetime.now(UTC)
        change = RunUpdate(status=RunStatus.FAILED, error="boom", ended_at=ended, tags={"a": "b"})
        updated = store.update_run(run.id, change)
        assert updated.status is RunStatus.FAILED and updated.error == "boom"
        assert updated == store.get_run(run.id)
        assert updated.ended_at == ended
        with pytest.raises(NotFound):
            store.update_run(new_id(), RunUpdate(status=RunStatus.FAILED))
        with pytest.raises(TypeError):
            store.update_run(run.id, RunUpdate(colour="red"))  # type: ignore[call-arg]
        assert store.update_run(run.id, RunUpdate()) == updated  # nothing given, nothing changed
        cleared = store.update_run(run.id, RunUpdate(error=None, ended_at=None))
        assert (cleared.error, cleared.ended_at, cleared.tags) == (None, None, {"a": "b"})

    def test_list_runs_newest_first_with_filters(self, store: RunStore) -> None:
        pipeline = unique_name("pipe")
        base = datetime(2026, 1, 1, tzinfo=UTC)
        runs = [
            store.create_run(
                _run(
                    pipeline,
                    created_at=base + timedelta(minutes=i),
                    status=RunStatus.SUCCEEDED if i % 2 else RunStatus.FAILED,
                )
            )
            for i in range(5)
        ]
        listed = store.list_runs(pipeline=pipeline)
        assert [r.id for r in listed] == [r.id for r in reversed(runs)]
        newest = [r.id for r in store.list_runs(pipeline=pipeline, limit=2)]
        assert newest == [runs[4].id, runs[3].id]
        failed = store.list_runs(pipeline=pipeline, status="failed")
        assert {r.id for r in failed} == {runs[0].id, runs[2].id, runs[4].id}

    def test_save_step_inserts_then_replaces_keeping_order(self, store: RunStore) -> None:
        run = store.create_run(_run())
        a = store.save_step(_step(run.id, "a"))
        b = store.save_step(_step(run.id, "b", upstream=["a"]))
        done = dataclasses.replace(
            a,
            status=StepStatus.SUCCEEDED,
            attempts=2,
            duration_s=0.25,
            started_at=None,
            ended_at=datetime.now(UTC),
            outputs={"n": 3},
            executor={"pid": 1},
            cache_key="k" + new_id(),
        )
        store.save_step(done)
        steps = store.get_steps(run.id)
        assert [s.name for s in steps] == ["a", "b"]
        assert steps[0] == done and steps[1] == b
        assert steps[0].status is StepStatus.SUCCEEDED

    def test_get_step_by_id(self, store: RunStore) -> None:
        run = store.create_run(_run())
        step = store.save_step(_step(run.id, error="ValueError: x", traceback="Traceback ...\n"))
        assert store.get_step(step.id) == step
        with pytest.raises(NotFound):
            store.get_step(new_id())

    def test_step_of_unknown_run_is_refused(self, store: RunStore) -> None:
        with pytest.raises(NotFound, match="no run"):
            store.save_step(_step(new_id()))

    def test_find_cached_step_returns_newest_succeeded_only(self, store: RunStore) -> None:
        key = "key" + new_id()
        assert store.find_cached_step(key) is None
        run = store.create_run(_run())
        t0 = datetime(2026, 1, 1, tzinfo=UTC)
        store.save_step(_step(run.id, "old", cache_key=key, status=StepStatus.SUCCEEDED,
                              ended_at=t0))
        new = store.save_step(
            _step(
                run.id,
                "new",
                cache_key=key,
                status=StepStatus.SUCCEEDED,
                ended_at=t0 + timedelta(seconds=1),
            )
        )
        store.save_step(
            _step(
                run.id,
                "failed",
                cache_key=key,
                status=StepStatus.FAILED,
                ended_at=t0 + timedelta(seconds=2),
            )
        )
        store.save_step(
            _step(
                run.id,
                "cached",
                cache_key=key,
                status=StepStatus.CACHED,
                ended_at=t0 + timedelta(seconds=3),
                cached_from=new.id,
            )
        )
        assert store.find_cached_step(key) == new


class LineageStoreContract:
    """Artifacts and the events (input/output edges) that make lineage.

    Needs a ``store`` fixture: a RunLineageStore (any MetadataStore) shared by the
    class's tests, which use unique names so they do not see each other's records.
    """

    __test__ = False

    def test_artifacts_round_trip_and_list(self, store: RunLineageStore) -> None:
        run = store.create_run(_run())
        step = store.save_step(_step(run.id))
        kind = unique_name("Type")
        made = store.add_artifact(
            _artifact(
                type=kind,
                name="model",
                producer_step_id=step.id,
                size=2**40,
                properties={"rows": 10, "columns": ["a", "b"]},
            )
        )
        assert store.get_artifact(made.id) == made
        assert store.get_artifact(made.id[:10]) == made
        read = store.add_artifact(_artifact(type=kind))
        store.add_events([EventRecord(step.id, read.id, "input", "data")])
        unrelated = store.add_artifact(_artifact(type=kind))
        assert {a.id for a in store.list_artifacts(type=kind)} == {made.id, read.id, unrelated.id}
        assert {a.id for a in store.list_artifacts(run_id=run.id)} == {made.id, read.id}
        assert len(store.list_artifacts(type=kind, limit=2)) == 2
        with pytest.raises(NotFound):
            store.get_artifact(new_id())
        with pytest.raises(StoreError, match="already exists"):
            store.add_artifact(ArtifactRecord(id=made.id, type="X", uri="u", sha256="s", size=1))

    def test_events_are_idempotent_and_checked(self, store: RunLineageStore) -> None:
        run = store.create_run(_run())
        step = store.save_step(_step(run.id))
        art = store.add_artifact(_artifact())
        events = [EventRecord(step.id, art.id, "output", "model")]
        store.add_events(events)
        store.add_events(events)  # a resumed run may record the same edge again
        store.add_events([])
        assert store.get_events(step_id=step.id) == events
        assert store.get_events(artifact_id=art.id) == events
        with pytest.raises(UserInputError, match=r"one of input, output, partial\. Got 'read'"):
            store.add_events([EventRecord(step.id, art.id, "read", "x")])

    def test_non_json_values_are_stored_as_json(
        self, store: RunLineageStore, tmp_path: Path
    ) -> None:
        # Not JSON on purpose (the type refuses them): a store still converts what a caller
        # without types hands it, as json_default says.
        not_json: dict[str, object] = {
            "n": np.int64(3),
            "x": np.float32(0.5),
            "arr": np.arange(3),
            "day": datetime(2013, 1, 1),
            "path": tmp_path,
        }
        run = store.create_run(_run(parameters=not_json))  # type: ignore[arg-type]
        assert store.get_run(run.id).parameters == {
            "n": 3,
            "x": 0.5,
            "arr": [0, 1, 2],
            "day": "2013-01-01T00:00:00",
            "path": str(tmp_path),
        }

    def test_lineage_walks_back_to_raw_data_and_forward(self, store: RunLineageStore) -> None:
        run = store.create_run(_run())
        raw = store.add_artifact(_artifact(name="raw"))
        ingest = store.save_step(_step(run.id, "ingest"))
        data = store.add_artifact(_artifact(name="data", producer_step_id=ingest.id))
        train = store.save_step(_step(run.id, "train"))
        model = store.add_artifact(_artifact(type="Model", name="model", producer_step_id=train.id))
        store.add_events(
            [
                EventRecord(ingest.id, raw.id, "input", "source"),
                EventRecord(ingest.id, data.id, "output", "data"),
                EventRecord(train.id, data.id, "input", "data"),
                EventRecord(train.id, model.id, "output", "model"),
            ]
        )
        up = lineage(store, model.id)
        assert {a: d for a, (_, d) in up.artifacts.items()} == {model.id: 0, data.id: 1, raw.id: 2}
        assert {s: d for s, (_, d) in up.steps.items()} == {train.id: 1, ingest.id: 2}
        shape = up.to_dict()
        edges = [as_object(e) for e in as_list(shape["edges"])]
        assert {(e["source"], e["target"]) for e in edges} == {
            (raw.id, ingest.id),
            (ingest.id, data.id),
            (data.id, train.id),
            (train.id, model.id),
        }
        assert set(lineage(store, model.id, max_depth=1).artifacts) == {model.id, data.id}
        down = lineage(store, raw.id, direction="downstream")
        assert set(down.artifacts) == {raw.id, data.id, model.id}
        with pytest.raises(UserInputError):
            lineage(store, raw.id, direction="sideways")  # type: ignore[arg-type]


class RegistryStoreContract:
    """Model versions, aliases with compare-and-set, and their history.

    Needs a ``store`` fixture: a RegistryStore (any MetadataStore) shared by the
    class's tests, which use unique names so they do not see each other's records.
    """

    __test__ = False

    def test_model_versions_count_up_per_name(self, store: RegistryStore) -> None:
        name, other = unique_name("m"), unique_name("m")
        v1 = store.create_model_version(
            name, "a1", run_id="r", tags={"k": "v"}, properties={"auc": 0.8}, created_by="ana"
        )
        v2 = store.create_model_version(name, "a2")
        o1 = store.create_model_version(other, "a3")
        assert (v1.version, v2.version, o1.version) == (1, 2, 1)
        assert store.get_model_version(name, 1) == v1
        assert store.list_model_versions(name) == [v1, v2]
        everything = {(v.name, v.version) for v in store.list_model_versions(None)}
        assert {(name, 1), (name, 2), (other, 1)} <= everything
        changed = store.update_model_version(
            name, 2, ModelVersionUpdate(description="better", properties={"auc": 0.9})
        )
        assert changed.description == "better" and changed.properties == {"auc": 0.9}
        assert store.get_model_version(name, 2) == changed
        with pytest.raises(NotFound):
            store.get_model_version(name, 3)
        with pytest.raises(NotFound):
            store.update_model_version(name, 9, ModelVersionUpdate(description="x"))
        with pytest.raises(TypeError):
            store.update_model_version(name, 1, ModelVersionUpdate(artifact_id="y"))  # type: ignore[call-arg]
        assert store.update_model_version(name, 1, ModelVersionUpdate()) == v1

    def test_a_version_past_64_bits_is_not_found_not_a_driver_error(
        self, store: RegistryStore
    ) -> None:
        name, huge = unique_name("m"), 10**23
        store.create_model_version(name, "a1")
        with pytest.raises(NotFound):
            store.get_model_version(name, huge)
        with pytest.raises(NotFound):
            store.update_model_version(name, huge, ModelVersionUpdate(description="x"))
        with pytest.raises(NotFound):
            store.move_alias(name, "champion", huge, actor="ana", reason="x")

    def test_concurrent_version_numbers_are_unique_and_dense(self, store: RegistryStore) -> None:
        name = unique_name("m")
        with ThreadPoolExecutor(8) as pool:
            versions = list(
                pool.map(lambda i: store.create_model_version(name, f"a{i}").version, range(24))
            )
        assert sorted(versions) == list(range(1, 25))

    def test_one_artifact_is_one_version_even_when_registered_at_once(
        self, store: RegistryStore
    ) -> None:
        name = unique_name("m")
        store.create_model_version(name, "other")
        with ThreadPoolExecutor(6) as pool:
            versions = set(pool.map(lambda _: store.create_model_version(name, "same").version,
                                    range(6)))
        assert versions == {2}
        assert [v.artifact_id for v in store.list_model_versions(name)] == ["other", "same"]

    def test_aliases_move_with_history(self, store: RegistryStore) -> None:
        name = unique_name("m")
        for i in range(3):
            store.create_model_version(name, f"a{i}")
        first = store.move_alias(name, "champion", 1, actor="ana", reason="first")
        second = store.move_alias(
            name, "champion", 2, actor="gate", reason="better", expected_version=1
        )
        store.move_alias(name, "challenger", 3, actor="gate", expected_version=None)
        assert store.get_aliases(name) == {"champion": 2, "challenger": 3}
        removed = store.move_alias(name, "challenger", None, actor="ana", reason="retired")
        assert store.get_aliases(name) == {"champion": 2}
        assert (first.previous_version, second.previous_version, removed.previous_version) == (
            None,
            1,
            3,
        )
        history = store.alias_history(name, "champion")
        assert history == [first, second]
        assert [e.alias for e in store.alias_history(name)] == [
            "champion",
            "champion",
            "challenger",
            "challenger",
        ]

    def test_alias_compare_and_set_and_bad_targets(self, store: RegistryStore) -> None:
        name = unique_name("m")
        store.create_model_version(name, "a")
        store.create_model_version(name, "b")
        store.move_alias(name, "champion", 1, actor="ana")
        with pytest.raises(StoreError, match="points to version 1"):
            store.move_alias(name, "champion", 2, actor="gate", expected_version=None)
        with pytest.raises(NotFound):
            store.move_alias(name, "champion", 7, actor="gate")
        with pytest.raises(NotFound):
            store.move_alias(unique_name("nope"), "champion", 1, actor="gate")
        assert store.get_aliases(name) == {"champion": 1}
        assert len(store.alias_history(name)) == 1

    def test_concurrent_compare_and_set_has_one_winner(self, store: RegistryStore) -> None:
        name = unique_name("m")
        for i in range(6):
            store.create_model_version(name, f"a{i}")
        store.move_alias(name, "champion", 1, actor="setup")
        barrier = threading.Barrier(5)

        def contend(version: int) -> bool:
            barrier.wait()
            try:
                store.move_alias(name, "champion", version, actor=f"w{version}", expected_version=1)
                return True
            except StoreError:
                return False

        with ThreadPoolExecutor(5) as pool:
            wins = list(pool.map(contend, range(2, 7)))
        assert sum(wins) == 1
        history = store.alias_history(name, "champion")
        assert len(history) == 2 and history[1].previous_version == 1
        assert store.get_aliases(name)["champion"] == history[1].version


class DefinitionStoreContract:
    """Versioned definitions (feature views, entities) of the catalog.

    Needs a ``store`` fixture: a DefinitionStore (any MetadataStore) shared by the
    class's tests, which use unique names so they do not see each other's records.
    """

    __test__ = False

    def test_definitions_version_only_on_change(self, store: DefinitionStore) -> None:
        kind, name = unique_name("kind"), "weather"
        v1, created = store.put_definition(
            kind, name, {"cols": ["a"]}, fingerprint="f1", owner="ana", tags={"t": "1"}
        )
        assert created and v1.version == 1
        same, created = store.put_definition(kind, name, {"cols": ["a"]}, fingerprint="f1")
        assert not created and same == v1
        v2, created = store.put_definition(kind, name, {"cols": ["a", "b"]}, fingerprint="f2")
        assert created and v2.version == 2
        store.put_definition(kind, "planes", {"cols": []}, fingerprint="p1")
        assert store.get_definition(kind, name) == v2
        assert store.get_definition(kind, name, 1) == v1
        assert [(d.name, d.version) for d in store.list_definitions(kind)] == [
            ("planes", 1),
            ("weather", 2),
        ]
        with pytest.raises(NotFound):
            store.get_definition(kind, "nothing")
        with pytest.raises(NotFound):
            store.get_definition(kind, name, 5)
        with pytest.raises(UserInputError):
            store.put_definition(kind, "", {}, fingerprint="x")
