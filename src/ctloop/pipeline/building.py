"""The graph being built: what a component call inside a ``@pipeline`` function talks to.

``PipelineDef.build`` sets a builder for the duration of the pipeline function;
``ComponentDef.__call__`` asks :func:`current_builder` whether it is being
called inside one. Living apart from both, this module keeps ``component`` and
``dsl`` free of an import cycle.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ctloop.pipeline.component import AnyComponent
    from ctloop.pipeline.dsl import StepHandle

__all__ = ["StepBuilder", "building", "current_builder"]


class StepBuilder(Protocol):
    """Collects the steps of a pipeline while its function runs."""

    def add_step(
        self, comp: AnyComponent, args: tuple[object, ...], kwargs: dict[str, object]
    ) -> StepHandle:
        """Add a call of ``comp`` as a step; its handle wires it to later steps."""
        ...


_builder: contextvars.ContextVar[StepBuilder | None] = contextvars.ContextVar(
    "ctloop_builder", default=None
)


def current_builder() -> StepBuilder | None:
    """The graph being built, when called inside a pipeline function."""
    return _builder.get()


@contextmanager
def building(builder: StepBuilder) -> Iterator[None]:
    """Make ``builder`` the current one while the pipeline function runs."""
    token = _builder.set(builder)
    try:
        yield
    finally:
        _builder.reset(token)
