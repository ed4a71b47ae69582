"""What a running step knows about its run: ids and the stores to use.

Components that talk to the metadata store or the artifact store directly
(the registry's ``push``, ``evaluate`` against the champion) must use the
stores of the run that executes them, not whatever the current folder's
settings say: a step on a Dask worker or in a subprocess may run elsewhere.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ctloop.artifacts import ArtifactStore
    from ctloop.metadata import MetadataStore

__all__ = ["StepContext", "current_step", "open_stores", "step_context"]


@dataclass(frozen=True)
class StepContext:
    """The run and step being executed, and where their stores are."""

    run_id: str
    step: str
    attempt: int
    metadata_url: str
    artifacts_url: str


_current: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar(
    "ctloop_step", default=None
)


def current_step() -> StepContext | None:
    """The step being executed in this thread, or None outside a pipeline run."""
    return _current.get()


@contextmanager
def step_context(ctx: StepContext) -> Iterator[StepContext]:
    """Make ``ctx`` the current step while the block runs."""
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def open_stores() -> tuple[MetadataStore, ArtifactStore]:
    """(metadata store, artifact store) of the running step, else of the project settings."""
    from ctloop.artifacts import open_artifact_store
    from ctloop.metadata import open_metadata_store

    ctx = current_step()
    if ctx is None:
        return open_metadata_store(), open_artifact_store()
    return (
        open_metadata_store(ctx.metadata_url or None),
        open_artifact_store(ctx.artifacts_url or None),
    )
