"""The runner conformance suite on every runner: local, subprocess and Dask."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ctloop.testing.runner_contract import RunnerContract


class TestLocalRunner(RunnerContract):
    __test__ = True
    runner_name = "local"


class TestSubprocessRunner(RunnerContract):
    __test__ = True
    runner_name = "subprocess"


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[Any]:
    """One two-worker LocalCluster on 127.0.0.1 for the whole module."""
    pytest.importorskip("distributed")
    from ctloop.pipeline.runners.dask import local_cluster

    cluster = local_cluster(n_workers=2)
    yield cluster
    cluster.close()


class TestDaskRunner(RunnerContract):
    __test__ = True
    runner_name = "dask"

    @pytest.fixture
    def runner_spec(self, dask_cluster: Any) -> str:
        return str(dask_cluster.scheduler_address)
