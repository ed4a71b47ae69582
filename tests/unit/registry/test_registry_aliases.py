"""The registry over the in-memory metadata store: versions, aliases, rollback, history.

The store is the reference backend that passes the same contract suites as SQLite
(:mod:`ctloop.testing.inmemory`); the concurrent promotions run on a SQLite file,
where several connections really race.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from ctloop.artifacts import open_artifact_store
from ctloop.core.errors import IntegrityError, NotFound, StoreError, UserInputError
from ctloop.core.jsontypes import as_list, as_object
from ctloop.examples.flights.data import flights
from ctloop.metadata import (
    ArtifactRecord,
    EventRecord,
    LineageStore,
    MetadataStore,
    RunRecord,
    StepRecord,
    new_id,
    open_metadata_store,
)
from ctloop.models import fit_model
from ctloop.registry import ModelRegistry, parse_ref
from ctloop.registry.summaries import lineage_of
from ctloop.testing.inmemory import InMemoryMetadataStore


@pytest.fixture
def store() -> MetadataStore:
    return InMemoryMetadataStore()


def _artifact(
    store: LineageStore, folder: Path, type_: str = "Model", **kw: Any
) -> ArtifactRecord:
    """Real stored bytes in ``folder``: promotion checks them against the record."""
    source = folder / f"blob-{new_id()}"
    source.write_text(source.name)
    stored = open_artifact_store((folder / "artifacts").as_uri()).put(source)
    return store.add_artifact(
        ArtifactRecord(
            id=new_id(), type=type_, uri=stored.uri, sha256=stored.sha256, size=stored.size, **kw
        )
    )


def _versions(registry: ModelRegistry, folder: Path, n: int, name: str = "flights") -> list[int]:
    return [
        registry.register(name, _artifact(registry.store, folder).id).version for _ in range(n)
    ]


def test_refs_parse_and_refuse_garbage() -> None:
    assert parse_ref("flights:3").version == 3
    assert parse_ref("flights@champion").alias == "champion"
    assert str(parse_ref("flights")) == "flights"
    with pytest.raises(UserInputError, match="NAME:VERSION"):
        parse_ref("flights:three")


def test_versions_count_up_and_refs_resolve(store: MetadataStore, tmp_path: Path) -> None:
    reg = ModelRegistry(store, actor="ann")
    assert _versions(reg, tmp_path, 3) == [1, 2, 3]
    reg.promote("flights", 2, alias="champion", reason="best AUC")
    assert reg.get("flights@champion").version == 2
    assert reg.get("flights").version == 3
    assert reg.get("flights:1").created_by == "ann"
    [summary] = reg.models()
    assert summary.versions == 3 and summary.aliases == {"champion": 2}


def test_unknown_model_version_or_alias_are_clear_errors(
    store: MetadataStore, tmp_path: Path
) -> None:
    reg = ModelRegistry(store, actor="ann")
    _versions(reg, tmp_path, 1)
    with pytest.raises(NotFound, match=r"No model named 'flight'.*flights"):
        reg.get("flight")
    with pytest.raises(NotFound, match="no version 7"):
        reg.get("flights:7")
    with pytest.raises(NotFound, match="no alias 'champion'"):
        reg.get("flights@champion")
    with pytest.raises(NotFound, match="no version 9"):
        reg.promote("flights", 9)
    with pytest.raises(NotFound):
        reg.register("flights", "no-such-artifact")


def test_rollback_restores_previous_holders_and_history_says_who_and_why(
    store: MetadataStore, tmp_path: Path
) -> None:
    reg = ModelRegistry(store, actor="ann")
    _versions(reg, tmp_path, 3)
    for v in (1, 2, 3):
        reg.promote("flights", v, reason=f"v{v} passed the gate")
    event = reg.rollback("flights", reason="v3 misbehaves in production")
    assert (event.version, event.previous_version) == (2, 3)
    assert reg.get("flights@champion").version == 2
    reg.rollback("flights")
    assert reg.get("flights@champion").version == 1
    with pytest.raises(UserInputError, match="no previous holder"):
        reg.rollback("flights")
    history = reg.history("flights", "champion")
    assert [(e.previous_version, e.version) for e in history] == [
        (None, 1),
        (1, 2),
        (2, 3),
        (3, 2),
        (2, 1),
    ]
    assert history[3].actor == "ann" and "misbehaves" in history[3].reason
    # A new promotion after rollbacks rolls back to the restored holder.
    reg.promote("flights", 3, reason="fixed")
    reg.rollback("flights")
    assert reg.get("flights@champion").version == 1


def test_compare_and_set_refuses_a_stale_decision(store: MetadataStore, tmp_path: Path) -> None:
    reg = ModelRegistry(store, actor="ann")
    _versions(reg, tmp_path, 2)
    reg.promote("flights", 1, expected_version=None)
    with pytest.raises(StoreError, match="moved it meanwhile"):
        reg.promote("flights", 2, expected_version=None)
    assert reg.get("flights@champion").version == 1


def test_concurrent_promotions_leave_a_consistent_history(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'meta.db'}"
    setup = open_metadata_store(url)
    _versions(ModelRegistry(setup, actor="setup"), tmp_path, 8)
    setup.close()
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def promote(version: int) -> None:
        store = open_metadata_store(url)
        try:
            barrier.wait()
            ModelRegistry(store, actor=f"worker{version}").promote(
                "flights", version, reason="race"
            )
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=promote, args=(v,)) for v in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    store = open_metadata_store(url)
    history = ModelRegistry(store).history("flights", "champion")
    assert sorted(e.version or 0 for e in history) == list(range(1, 9))
    # Each move saw the previous one: the history is one unbroken chain.
    assert [e.previous_version for e in history] == [None] + [e.version for e in history[:-1]]
    assert store.get_aliases("flights")["champion"] == history[-1].version
    store.close()


def test_register_records_lineage_and_load_checks_the_hash(
    store: MetadataStore, tmp_path: Path
) -> None:
    artifacts = open_artifact_store((tmp_path / "artifacts").as_uri())
    folder = tmp_path / "model"
    fit_model(
        flights([1]).head(3000),
        label="delayed",
        features=["origin", "hour"],
        algorithm="lightgbm",
        params={"n_estimators": 5, "n_jobs": 1},
    ).save(folder)
    stored = artifacts.put(folder)
    run = store.create_run(RunRecord(id=new_id(), pipeline="train", pipeline_version="1"))
    step = store.save_step(
        StepRecord(
            id=new_id(), run_id=run.id, name="train", component="train", component_version="abc123"
        )
    )
    data = _artifact(store, tmp_path, "Dataset", name="data")
    model = store.add_artifact(
        ArtifactRecord(
            id=new_id(),
            type="Model",
            uri=stored.uri,
            sha256=stored.sha256,
            size=stored.size,
            name="model",
            producer_step_id=step.id,
        )
    )
    store.add_events(
        [
            EventRecord(step.id, data.id, "input", "data"),
            EventRecord(step.id, model.id, "output", "model"),
        ]
    )
    reg = ModelRegistry(store, actor="ann")
    record = reg.register("flights", model.id, description="first")
    lineage = as_object(record.properties["lineage"])
    assert record.run_id == run.id and lineage["code_version"] == "abc123"
    assert [as_object(i)["id"] for i in as_list(lineage["inputs"])] == [data.id]
    assert lineage_of(record.properties) == lineage  # read back whole, typed
    loaded = reg.load("flights:1", artifacts)
    assert loaded.predict(flights([2]).head(10)).shape == (10,)
    # Damage the unpacked copy in the cache: checked against the recorded sha256, refused.
    unpacked = next((tmp_path / "artifacts").rglob("model.txt"))
    unpacked.chmod(0o644)
    unpacked.write_text(unpacked.read_text().replace("tree", "TREE", 1))
    with pytest.raises(IntegrityError, match="changed after ctloop unpacked it"):
        reg.load("flights:1", artifacts)
    with pytest.raises(IntegrityError, match=r"flights:1 cannot be trusted.*promoted"):
        reg.promote("flights", 1)
    assert "champion" not in reg.aliases("flights")
    shutil.rmtree(unpacked.parent)  # what the message says to do: unpacked again, verified
    assert reg.load("flights:1", artifacts).predict(flights([2]).head(3)).shape == (3,)
    # Damage the stored archive: the artifact store refuses it.
    blob = next(p for p in (tmp_path / "artifacts").rglob("*.dir.tar"))
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes()[:-10] + b"0123456789")
    fresh = open_artifact_store((tmp_path / "artifacts").as_uri(), cache_dir=tmp_path / "c2")
    with pytest.raises(IntegrityError, match="changed after it was written"):
        reg.load("flights:1", fresh)


def test_a_missing_or_malformed_lineage_reads_as_absent() -> None:
    assert lineage_of({}) == {} and lineage_of({"lineage": "x"}) == {}
    odd = {"lineage": {"run_id": 3, "step": "train", "inputs": [{"id": "a", "uri": None}, 7]}}
    assert lineage_of(odd) == {
        "step": "train", "inputs": [{"id": "a", "type": "", "name": "", "uri": "", "sha256": ""}]}
