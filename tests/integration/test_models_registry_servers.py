"""Concurrent promotions from separate processes (the CLI) on PostgreSQL and MariaDB.

Each run gets its own schema/database (``temporary_metadata_url``): the shared
``test`` database's default schema may have been migrated by another checkout
to a revision this one does not know, and other tests' records live there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

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


@pytest.fixture(params=["postgres", "mysql"])
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    with temporary_metadata_url(request.param) as fresh:
        yield fresh


@pytest.mark.integration
@pytest.mark.slow
def test_concurrent_promotions_in_processes(url: str) -> None:
    name = unique_name("model")
    store = open_metadata_store(url)
    registry = ModelRegistry(store, actor="setup")
    for _ in range(6):
        art = store.add_artifact(
            ArtifactRecord(id=new_id(), type="Model", uri="file:///m", sha256="0" * 64, size=1)
        )
        registry.register(name, art.id)
    procs = [_promote(url, name, v) for v in range(1, 7)]
    assert [p.wait(60) for p in procs] == [0] * 6
    history = registry.history(name, "champion")
    assert sorted(e.version for e in history) == list(range(1, 7))
    assert [e.previous_version for e in history] == [None] + [e.version for e in history[:-1]]
    assert store.get_aliases(name)["champion"] == history[-1].version
    registry.rollback(name)
    assert store.get_aliases(name)["champion"] == history[-2].version
    store.close()
