"""Whose fault a failed ingest is, read off the step's traceback."""

from __future__ import annotations

from dataclasses import dataclass

from ctloop.loop.failures import infrastructure_failure, raised_header


@dataclass
class Step:
    error: str | None
    traceback: str | None


VALIDATION = """Traceback (most recent call last):
  File "/x/task.py", line 10, in run
    raise ValidationFailed(message)
ctloop.core.errors.ValidationFailed: 2013-05.parquet does not fit its schema: 3 error(s).
  [error] dep_delay: out_of_range: 120 values above 3000
  [error] temp: missing_values: 40% missing
"""


def test_a_multi_line_validation_error_is_the_datas_fault() -> None:
    assert raised_header(VALIDATION).startswith("ctloop.core.errors.ValidationFailed: ")
    assert infrastructure_failure([Step("does not fit its schema", VALIDATION)], None) is None


def test_a_missing_file_is_not_the_datas_fault() -> None:
    gone = VALIDATION.replace(
        VALIDATION.splitlines()[3], "FileNotFoundError: [Errno 2] No such file: 'x.parquet'")
    why = infrastructure_failure([Step("No such file", gone)], None)
    assert why is not None and "No such file" in why
    assert infrastructure_failure([], "the scheduler was lost") == "the scheduler was lost"
