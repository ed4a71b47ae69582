"""The dashboard application: pages, static files, sign-in, errors as pages.

``create_app(settings)`` builds a FastAPI app serving server-rendered pages
from the project's metadata, artifact and registry stores. Nothing is fetched
from the internet: styles and the one charting library (uPlot) are in
``ctloop/ui/static``. Every error a person can meet (an unknown id, a bad
query parameter, a store that is down) is a page with the message and a
4xx/5xx status, never a traceback.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from ctloop.core.errors import CtloopError
from ctloop.core.settings import Settings
from ctloop.ui import filters
from ctloop.ui.access import SESSION_COOKIE, AccessPolicy, Identity, load_keys
from ctloop.ui.forms import CSRF_TEXT, FormTooLarge, check_declared_size, read_form
from ctloop.ui.pages import artifacts, features, lineage, models, monitoring, runs
from ctloop.ui.state import ANON_COOKIE, HERE, UiState, page, state_of

__all__ = ["create_app"]

log = logging.getLogger("ctloop.ui")


def create_app(settings: Settings, *, policy: AccessPolicy | None = None) -> FastAPI:
    """The dashboard for the stores ``settings`` name."""
    if policy is None:
        policy = AccessPolicy(load_keys(settings.tables))
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    filters.install(templates.env)
    templates.env.globals["environment"] = settings.environment  # shown in every page's header
    state = UiState(settings=settings, policy=policy, templates=templates)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()

    app = FastAPI(title="ctloop", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.ui = state
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.middleware("http")
    async def identify(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        anon = request.cookies.get(ANON_COOKIE) or ""
        fresh = not anon.isalnum() or len(anon) != 32
        if fresh:
            anon = secrets.token_hex(16)
        request.state.identity = identity = policy.identify(
            request.cookies.get(SESSION_COOKIE), anon)
        response = _guard(request, identity) or await call_next(request)
        if fresh:
            response.set_cookie(ANON_COOKIE, anon, httponly=True, samesite="strict")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self'",
        )
        return response

    @app.exception_handler(CtloopError)
    async def ctloop_error(request: Request, exc: CtloopError) -> HTMLResponse:
        return _error_page(request, exc.http_status, exc.headline, exc.message)

    @app.exception_handler(RequestValidationError)
    async def bad_query(request: Request, exc: RequestValidationError) -> HTMLResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg')}"
            for e in exc.errors()
        )
        return _error_page(request, 400, "bad input", f"The request is not valid: {problems}.")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> HTMLResponse:
        text = "There is no page at this address." if exc.status_code == 404 else str(exc.detail)
        return _error_page(request, exc.status_code, "not found" if exc.status_code == 404
                           else "error", text)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> HTMLResponse:
        log.exception("ctloop ui: unexpected error on %s", request.url.path)
        return _error_page(
            request, 500, "internal error",
            f"The page failed unexpectedly ({type(exc).__name__}). The server log has details.",
        )

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/runs", status_code=307)

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> HTMLResponse:
        return page(request, "login.html", {"message": None, "next": None})

    @app.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        form = await read_form(request)
        if not policy.check_csrf(request.state.identity, form.get("csrf", "")):
            return _error_page(request, 403, "forbidden", CSRF_TEXT)
        key = policy.check_key(form.get("key", ""))
        if key is None:
            return page(request, "login.html", {"message": "That key is not valid.",
                                                "next": _safe_next(form.get("next", ""))}, 401)
        response = RedirectResponse(_safe_next(form.get("next", "")), status_code=303)
        response.set_cookie(SESSION_COOKIE, policy.session_cookie(key), httponly=True,
                            samesite="strict")
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        form = await read_form(request)
        if not policy.check_csrf(request.state.identity, form.get("csrf", "")):
            return _error_page(request, 403, "forbidden", CSRF_TEXT)
        response = RedirectResponse("/runs", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    @app.get("/healthz", include_in_schema=False)
    def healthz(request: Request) -> dict[str, str]:
        state_of(request).queries.ping()
        return {"status": "ok"}

    for module in (runs, models, artifacts, lineage, features, monitoring):
        app.include_router(module.router)

    return app


# What a visitor without a session may open when keys are configured.
_PUBLIC = ("/login", "/healthz", "/static/")


def _guard(request: Request, identity: Identity) -> Response | None:
    """The answer given before a route runs: an oversized POST (413, nothing read) or,
    with API keys configured, a visitor without a read session (sent to sign in)."""
    path = request.url.path
    if request.method == "POST":
        try:
            check_declared_size(request)
        except FormTooLarge as exc:
            return _error_page(request, exc.http_status, exc.headline, exc.message)
    if identity.role is not None or path.startswith(_PUBLIC) or path == "/":
        return None
    if request.method in ("GET", "HEAD"):
        target = path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
    return _error_page(request, 403, "forbidden",
                       "This dashboard needs an API key: sign in first.")


def _safe_next(target: str) -> str:
    """Only paths on this site (no ``//host`` or ``/\\host``: browsers read both as a host)."""
    ok = target.startswith("/") and not target.startswith(("//", "/\\")) and "\r" not in target \
        and "\n" not in target
    return target if ok else "/runs"


def _error_page(request: Request, status: int, headline: str, message: str) -> HTMLResponse:
    if not hasattr(request.state, "identity"):  # failed before the middleware ran
        request.state.identity = state_of(request).policy.identify(None, "")
    return page(request, "error.html", {"status": status, "headline": headline,
                                        "message": message}, status_code=status)
