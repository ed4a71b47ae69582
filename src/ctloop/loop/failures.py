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

__all__ = ["DATA_ERRORS", "IngestFailed", "infrastructure_failure"]

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


def _raised(step: _Step) -> str:
    """The qualified class name of what the step raised (its traceback's last line)."""
    lines = [line for line in (step.traceback or "").splitlines() if line.strip()]
    return lines[-1].split(":", 1)[0].strip() if lines else ""


def infrastructure_failure(failed_steps: Sequence[_Step], run_error: str | None
                           ) -> str | None:
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
