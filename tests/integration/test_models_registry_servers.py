"""Concurrent promotions from separate processes (the CLI) on PostgreSQL and MariaDB.

Each run gets its own schema/database (``temporary_metadata_url``): the shared
``test`` database's default schema may have been migrated by another checkout
to a revision this one does not know, and other tests' records live there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ctloop.artifacts import open_artifact_store
from ctloop.metadata import ArtifactRecord, new_id, open_metadata_store
from ctloop.registry import ModelRegistry
from ctloop.testing.databases import temporary_metadata_url
from ctloop.testing.services import unique_name


def _promote(url: str, name: str, version: int) -> subprocess.Popen[bytes]:
    """`ctloop models promote` in its own process, as two operators would run it."""
    env = {**os.environ, "CTLOOP_METADATA_URL": url, "CTLOOP_ACTOR": f"proc{version}"}
    argv = [
        sys.executable,
        "-m",
        "ctloop.cli.main",
        "models",
        "promote",
        name,
        str(version),
        "--reason",
        "race",
    ]
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("service", ["postgres", "mysql"])
def test_concurrent_promotions_in_processes(service: str, tmp_path: Path) -> None:
    with temporary_metadata_url(service) as url:  # a schema of its own on the shared server
        _concurrent_promotions(url, tmp_path)


def _concurrent_promotions(url: str, tmp_path: Path) -> None:
    name = unique_name("model")
    store = open_metadata_store(url)
    registry = ModelRegistry(store, actor="setup")
    artifacts = open_artifact_store((tmp_path / "artifacts").as_uri())
    for i in range(6):
        (tmp_path / f"m{i}").write_text(str(i))
        stored = artifacts.put(tmp_path / f"m{i}")  # real bytes: promotion checks them
        art = store.add_artifact(
            ArtifactRecord(new_id(), "Model", stored.uri, stored.sha256, stored.size)
        )
        registry.register(name, art.id)
    procs = [_promote(url, name, v) for v in range(1, 7)]
    assert [p.wait(60) for p in procs] == [0] * 6
    history = registry.history(name, "champion")
    assert sorted(e.version or 0 for e in history) == list(range(1, 7))
    assert [e.previous_version for e in history] == [None] + [e.version for e in history[:-1]]
    assert store.get_aliases(name)["champion"] == history[-1].version
    registry.rollback(name)
    assert store.get_aliases(name)["champion"] == history[-2].version
    store.close()
