"""Errors of the prediction service, on top of the ``CtloopError`` tree.

``InvalidRequest`` is a bad request body or rows the model cannot read (422);
``NotReady`` is a model that is known but has no loaded version yet (503).
"""

from __future__ import annotations

from ctloop.core.errors import CtloopError, UserInputError

__all__ = ["InvalidRequest", "NotReady"]


class InvalidRequest(UserInputError):
    """A request the service cannot read (bad body, wrong inputs): answered with 422."""

    headline = "invalid request"
    http_status = 422


class NotReady(CtloopError):
    """The service has no model loaded yet (or lost it): answered with 503, retry later."""

    headline = "not ready"
    http_status = 503
