"""Form posts: the urlencoded body, checked against the session's CSRF token."""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import Request

from ctloop.core.errors import CtloopError

__all__ = ["CSRF_TEXT", "MAX_FORM_BYTES", "Forbidden", "FormTooLarge", "read_form"]

# The dashboard's forms are a key, a version, an alias and a reason: 64 KiB is ample, and
# nothing larger is read, whoever sends it (checked before the CSRF token and the session).
MAX_FORM_BYTES = 64 * 1024

CSRF_TEXT = (
    "The form's security token is missing or stale (CSRF protection). Reload the page and "
    "submit again."
)


class Forbidden(CtloopError):
    """The person may not do this (no admin role, or a form without its CSRF token)."""

    headline = "forbidden"
    http_status = 403


class FormTooLarge(CtloopError):
    headline = "too large"
    http_status = 413

    def __init__(self) -> None:
        super().__init__(f"The form is larger than {MAX_FORM_BYTES // 1024} KiB, which no "
                         "dashboard form needs; nothing of it was read.")


def check_declared_size(request: Request) -> None:
    """Refuse a body whose declared length is over the limit before reading any of it."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise FormTooLarge()


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form body as a dict (first value of each field), at most
    :data:`MAX_FORM_BYTES` read however the body is sent (chunked included).

    Parsed here rather than by FastAPI's ``Form`` so the dashboard needs no
    multipart package for its few small forms.
    """
    check_declared_size(request)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise FormTooLarge()
        chunks.append(chunk)
    body = b"".join(chunks).decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
