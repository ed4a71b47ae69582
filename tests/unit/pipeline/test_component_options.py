"""``ComponentDef.with_options`` checks options as ``@component`` does."""

from __future__ import annotations

import pytest

from ctloop.core.errors import PipelineDefinitionError
from ctloop.pipeline import Dataset, Output, component


@component(retries=1)
def make(rows: int, out: Output[Dataset]) -> None:
    """Write ``rows`` rows."""


def test_valid_options_give_a_changed_copy() -> None:
    copy = make.with_options(name="make_more", retries=3, retry_backoff=0.5, cache=False,
                             resources={"cpus": 2}, requirements=["six"])
    assert (copy.name, copy.retries, copy.retry_backoff, copy.cache) == ("make_more", 3, 0.5,
                                                                          False)
    assert copy.requirements == ("six",) and copy.resources == {"cpus": 2}
    assert make.retries == 1 and make.name == "make"  # the original is untouched


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"retries": -1}, "'retries'"),
        ({"retries": 1.5}, "'retries'"),
        ({"retries": True}, "'retries'"),
        ({"retry_backoff": -0.1}, "'retry_backoff'"),
        ({"retry_backoff": "1"}, "'retry_backoff'"),
        ({"cache": "no"}, "'cache'"),
        ({"name": ""}, "'name'"),
        ({"retrys": 2}, "no option 'retrys'"),
        ({"func": print}, "no option 'func'"),
    ],
)
def test_bad_options_are_refused(options: dict[str, object], words: str) -> None:
    with pytest.raises(PipelineDefinitionError, match=words):
        make.with_options(**options)
