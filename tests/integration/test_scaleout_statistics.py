"""Distributed statistics: one task per partition, merged, equal to the single-machine result."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ctloop.components.partitioned_statistics import (
    compute_partitioned_statistics,
    list_partitions,
    partitioned_statistics,
)
from ctloop.core.errors import NotFound
from ctloop.core.jsontypes import as_object
from ctloop.core.settings import Settings
from ctloop.data import DatasetStatistics, compute_statistics
from ctloop.pipeline import pipeline, run
from ctloop.pipeline.task import load_module_from_file

PARTITIONS = 6
ROWS = 20_000
_data = load_module_from_file(Path(__file__).with_name("scaleout_data.py"), "scaleout_data")
assert_equivalent, make_partitions = _data.assert_equivalent, _data.make_partitions


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("parts")
    return folder, make_partitions(folder, PARTITIONS, ROWS)


def test_partitions_merge_to_the_single_machine_statistics(
    dataset: tuple[Path, pd.DataFrame],
) -> None:
    folder, frame = dataset
    got, partitions = compute_partitioned_statistics(str(folder), where="threads")
    assert len(partitions) == PARTITIONS
    assert_equivalent(got, compute_statistics(folder), frame)


def test_missing_or_empty_source_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="is not a folder"):
        list_partitions(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotFound, match="No partitions matching"):
        list_partitions(str(tmp_path / "empty"))


@pipeline
def describe(source: str):
    partitioned_statistics(source=source)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    pytest.importorskip("distributed")
    from ctloop.pipeline.runners.dask import local_cluster

    cluster = local_cluster(n_workers=2)
    yield cluster
    cluster.close()


def _stats_of(result: Any, settings: Settings) -> DatasetStatistics:
    from ctloop.artifacts import open_artifact_store

    art = result.output("partitioned_statistics")
    path = open_artifact_store(settings.artifacts_url).get(art.uri, art.sha256)
    return DatasetStatistics.load(path)


def test_on_the_local_runner(dataset: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    folder, frame = dataset
    settings = Settings(home=tmp_path / ".ctloop")
    result = run(describe, {"source": str(folder)}, settings=settings, runner="local")
    assert result.ok, result.run.error
    returned = as_object(result.steps["partitioned_statistics"].outputs["return"])
    assert returned["partitions"] == PARTITIONS
    art = result.output("partitioned_statistics")
    assert art.properties["partitions"] == PARTITIONS and art.properties["rows"] == len(frame)
    assert_equivalent(_stats_of(result, settings), compute_statistics(folder), frame)


def test_on_dask_one_task_per_partition_across_workers(
    dataset: tuple[Path, pd.DataFrame], tmp_path: Path, cluster: Any
) -> None:
    from distributed import Client, get_task_stream

    folder, frame = dataset
    settings = Settings(home=tmp_path / ".ctloop")
    with Client(cluster.scheduler_address, set_as_default=False) as client:
        with get_task_stream(client=client) as stream:
            result = run(
                describe,
                {"source": str(folder)},
                settings=settings,
                runner=cluster.scheduler_address,
            )
        assert result.ok, result.run.error
        tasks = [t for t in stream.data if str(t["key"]).startswith("ctloop-partition-")]
    assert len(tasks) == PARTITIONS
    assert len({t["worker"] for t in tasks}) == 2  # both workers described partitions
    assert_equivalent(_stats_of(result, settings), compute_statistics(folder), frame)
