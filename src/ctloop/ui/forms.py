"""Form posts: the urlencoded body, checked against the session's CSRF token."""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import Request

from ctloop.core.errors import CtloopError

__all__ = ["CSRF_TEXT", "Forbidden", "read_form"]

CSRF_TEXT = (
    "The form's security token is missing or stale (CSRF protection). Reload the page and "
    "submit again."
)


class Forbidden(CtloopError):
    """The person may not do this (no admin role, or a form without its CSRF token)."""

    headline = "forbidden"
    http_status = 403


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form body as a dict (first value of each field).

    Parsed here rather than by FastAPI's ``Form`` so the dashboard needs no
    multipart package for its few small forms.
    """
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
