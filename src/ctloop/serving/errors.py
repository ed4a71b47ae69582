"""Errors of the prediction service, on top of the ``CtloopError`` tree.

``InvalidRequest`` is a body whose values the model cannot take (422);
``BadRequest`` a body that is malformed for its protocol (400);
``TooDeep`` JSON nested past the limit (400); ``TooLarge`` a body over the
size limit (413); ``Unauthorized``/``Forbidden`` a missing or weak API key
(401/403); ``NotReady`` a model that is known but has no loaded version yet
(503).
"""

from __future__ import annotations

from ctloop.core.errors import CtloopError, UserInputError

__all__ = [
    "BadRequest",
    "Forbidden",
    "InvalidRequest",
    "NotReady",
    "TooDeep",
    "TooLarge",
    "Unauthorized",
    "error_body",
]


class InvalidRequest(UserInputError):
    """A request the service cannot read (bad body, wrong inputs): answered with 422."""

    headline = "invalid request"
    http_status = 422


class BadRequest(UserInputError):
    headline = "bad request"
    http_status = 400


class TooDeep(BadRequest):
    headline = "nested too deeply"


class TooLarge(UserInputError):
    headline = "request too large"
    http_status = 413


class Unauthorized(UserInputError):
    headline = "unauthorized"
    http_status = 401


class Forbidden(UserInputError):
    headline = "forbidden"
    http_status = 403


class NotReady(CtloopError):
    """The service has no model loaded yet (or lost it): answered with 503, retry later."""

    headline = "not ready"
    http_status = 503


def error_body(path: str, headline: str, detail: str, kind: str) -> dict[str, str]:
    """The JSON an error on ``path`` answers with.

    The protocols' own clients read ``error`` alone (the KServe SDK on v1, every
    OIP client on v2: ``{"error": message}``), so on their routes it carries the
    whole message. Elsewhere ``error`` is the short headline, beside ``detail``
    (the message) and ``type``; v1 keeps those two as well.
    """
    if path.startswith("/v2"):
        return {"error": detail}
    if path.startswith("/v1/"):
        return {"error": detail, "detail": detail, "type": kind}
    return {"error": headline, "detail": detail, "type": kind}
