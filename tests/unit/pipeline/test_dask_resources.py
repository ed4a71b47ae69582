"""A component's ``resources`` read as Dask worker resources: numbers of any numeric type,
memory as bytes or a size; anything else is the one-line ConfigError naming the key."""

from __future__ import annotations

import re

import numpy as np
import pytest

from ctloop.core.errors import ConfigError
from ctloop.pipeline.runners.dask import parse_resources

pytest.importorskip("dask")  # sizes like "4GB" are read by dask.utils


def test_numbers_and_sizes() -> None:
    assert parse_resources({}) == {}
    assert parse_resources({"cpus": 2}) == {"cpus": 2.0}
    assert parse_resources({"cpus": np.int64(3), "gpus": 0.5, "memory": "4GB"}) == {
        "cpus": 3.0, "gpus": 0.5, "memory": 4e9}
    assert parse_resources({"memory": 1024, "slots": "2"}) == {"memory": 1024.0, "slots": 2.0}


@pytest.mark.parametrize(("resources", "message"), [
    ({"cpus": None}, "The 'cpus' resource must be a number. Got None."),
    ({"cpus": [1]}, "The 'cpus' resource must be a number. Got [1]."),
    ({"cpus": "two"}, "The 'cpus' resource must be a number. Got 'two'."),
    ({"memory": "lots"}, "The 'memory' resource must be a number of bytes or a size"),
])
def test_bad_values_name_the_resource(resources: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_resources(resources)
