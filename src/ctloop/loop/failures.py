"""Whose fault a failed ingest run is: the span's (quarantine it) or the infrastructure's.

A span is quarantined only when its data is at fault: the ``validate`` step
raised :class:`~ctloop.core.errors.ValidationFailed`, or reading the file raised
:class:`~ctloop.core.errors.UserInputError` (a missing key column, a file that
is not a table). Anything else -- a path a Dask worker cannot see
(``FileNotFoundError``), a lost worker, a store that does not answer -- says
nothing about the data: quarantining the span would hide the outage behind a
"quarantined (1 anomalies)" line. Those raise :class:`IngestFailed` instead,
so the live controller reports it and tries the span again on the next tick,
and a replay (the demo) stops with a non-zero exit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ctloop.core.errors import CtloopError

__all__ = ["DATA_ERRORS", "IngestFailed", "infrastructure_failure", "raised"]

#: The exceptions (as a traceback's last line names them) that are the data's fault.
DATA_ERRORS = ("ctloop.core.errors.ValidationFailed", "ctloop.core.errors.UserInputError")


class IngestFailed(CtloopError):
    """An ingest run failed for a reason that is not the span's data."""

    headline = "ingest failed"
    http_status = 503
    exit_code = 4


class _Step(Protocol):
    @property
    def error(self) -> str | None: ...
    @property
    def traceback(self) -> str | None: ...


def raised(traceback: str | None) -> tuple[str, str]:
    """The qualified class name of what a step raised and its message's first line, read
    off its traceback (whichever runner ran it). The exception's line is the first one
    after the last ``Traceback`` block that is not indented: a multi-line message (a
    validation's anomalies, one per line) does not hide the class."""
    lines = (traceback or "").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent")]
    header = next((line for line in lines[starts[-1] + 1:] if line and not line[0].isspace()),
                  "") if starts else ""
    name, _, message = header.partition(":")
    return name.strip(), message.strip()


def _raised(step: _Step) -> str:
    return raised(step.traceback)[0]


def infrastructure_failure(failed_steps: Sequence[_Step], run_error: str | None) -> str | None:
    """Why a failed ingest run is not the data's fault, or None when it is.

    ``failed_steps`` are the run's steps whose status is ``failed`` (none when the
    run itself failed, e.g. the scheduler was lost).
    """
    if not failed_steps:
        return run_error or "the run failed before any step did"
    for step in failed_steps:
        if _raised(step) not in DATA_ERRORS:
            return step.error or _raised(step) or "a step failed without an error"
    return None
