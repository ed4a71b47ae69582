"""Concurrent promotions from separate processes (the CLI) on PostgreSQL and MariaDB."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ctloop.artifacts import open_artifact_store
from ctloop.metadata import ArtifactRecord, new_id, open_metadata_store
from ctloop.registry import ModelRegistry
from ctloop.testing.services import MYSQL_URL, POSTGRES_URL, require_service, unique_name


@contextmanager
def _own_database(service: str) -> Iterator[str]:
    """A fresh schema (PostgreSQL) or database (MariaDB): others migrate the shared one."""
    import sqlalchemy as sa

    name = unique_name("ctreg")
    admin = sa.create_engine(POSTGRES_URL if service == "postgres" else MYSQL_URL)
    kind = "SCHEMA" if service == "postgres" else "DATABASE"
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE {kind} {name}"))
    try:
        if service == "postgres":
            yield f"{POSTGRES_URL}?options=-csearch_path%3D{name}"
        else:
            yield MYSQL_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP {kind} {name}" + (" CASCADE" if kind == "SCHEMA" else "")))
        admin.dispose()


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
    require_service(service)
    with _own_database(service) as url:
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
    assert sorted(e.version for e in history) == list(range(1, 7))
    assert [e.previous_version for e in history] == [None] + [e.version for e in history[:-1]]
    assert store.get_aliases(name)["champion"] == history[-1].version
    registry.rollback(name)
    assert store.get_aliases(name)["champion"] == history[-2].version
    store.close()
