"""The cluster setup end to end: Dask workers, artifacts and data on S3 (moto on loopback)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ctloop.components.partitioned_statistics import partitioned_statistics
from ctloop.core.settings import Settings
from ctloop.data import DatasetStatistics
from ctloop.metadata import open_metadata_store
from ctloop.pipeline import pipeline, run
from ctloop.testing.s3 import moto_environment

pytest.importorskip("s3fs")
pytest.importorskip("moto")
pytest.importorskip("distributed")

PIPES = Path(__file__).with_name("scaleout_pipelines.py")
BUCKET = "team-data"


@pytest.fixture(scope="module")
def s3_env() -> Iterator[dict[str, str]]:
    """A credential-checking moto server; its settings in the standard AWS variables."""
    with moto_environment([BUCKET], user="team") as server:
        yield server.env()


@pytest.fixture(scope="module")
def cluster(s3_env: dict[str, str]) -> Iterator[Any]:
    """Workers started after the AWS variables are set, as a cluster's would be."""
    from ctloop.pipeline.runners.dask import local_cluster

    cluster = local_cluster(n_workers=2)
    yield cluster
    cluster.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path / ".ctloop", artifacts_url=f"s3://{BUCKET}/artifacts/{tmp_path.name}"
    )


@pipeline
def describe(source: str):
    partitioned_statistics(source=source)


def test_pipeline_on_dask_with_artifacts_on_s3_caches_like_local(
    settings: Settings, cluster: Any
) -> None:
    first = run(f"{PIPES}:branches", {"n": 8}, settings=settings, runner=cluster.scheduler_address)
    assert first.ok, first.run.error
    assert all(
        a.uri.startswith(f"s3://{BUCKET}/artifacts/")
        for outs in first.artifacts.values()
        for a in outs.values()
    )
    again = run(f"{PIPES}:branches", {"n": 8}, settings=settings, runner=cluster.scheduler_address)
    assert {s.status for s in again.steps.values()} == {"cached"}


def test_statistics_of_partitions_on_s3_on_dask(
    settings: Settings, cluster: Any, tmp_path: Path
) -> None:
    import s3fs

    from ctloop.artifacts import open_artifact_store
    from ctloop.data import compute_statistics
    from ctloop.pipeline.task import load_module_from_file

    data = load_module_from_file(Path(__file__).with_name("scaleout_data.py"), "scaleout_data")
    local = tmp_path / "parts"
    frame = data.make_partitions(local, partitions=4, rows=5_000)
    fs = s3fs.S3FileSystem()
    for part in sorted(local.iterdir()):
        fs.put_file(str(part), f"{BUCKET}/data/{tmp_path.name}/{part.name}")
    source = f"s3://{BUCKET}/data/{tmp_path.name}"
    result = run(describe, {"source": source}, settings=settings, runner=cluster.scheduler_address)
    assert result.ok, result.run.error
    art = result.output("partitioned_statistics")
    assert art.properties["partitions"] == 4 and art.properties["source"] == source
    got = DatasetStatistics.load(
        open_artifact_store(settings.artifacts_url, cache_dir=tmp_path / "c").get(
            art.uri, art.sha256
        )
    )
    data.assert_equivalent(got, compute_statistics(local), frame)


def test_wrong_credentials_fail_the_run_clearly_and_consistently(
    s3_env: dict[str, str], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import s3fs

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "expired-secret")
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        result = run(f"{PIPES}:branches", {"n": 3}, settings=settings, runner="local")
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
    assert not result.ok
    assert "permission denied by the artifact store" in (result.run.error or "")
    assert "Check the credentials" in (result.run.error or "")
    store = open_metadata_store(settings.metadata_url)
    assert store.get_run(result.run.id).status == "failed"
    assert all(s.status in {"failed", "skipped", "pending"} for s in store.get_steps(result.run.id))
