"""Errors of the prediction service, on top of the ``CtloopError`` tree.

``InvalidRequest`` is a bad request body or rows the model cannot read (422);
``NotReady`` is a model that is known but has no loaded version yet (503).
"""

from __future__ import annotations

from ctloop.core.errors import CtloopError, UserInputError

__all__ = ["InvalidRequest", "NotReady"]


class InvalidRequest(UserInputError):
    headline = "invalid request"
    http_status = 422


class NotReady(CtloopError):
    headline = "not ready"
    http_status = 503
