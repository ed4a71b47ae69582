"""What every page needs: the stores (opened lazily), the templates and the access policy.

Stores open on the first request that needs them, not at start-up: a dashboard
whose database is down still starts and answers every page with a 503 that
says which store is unreachable, and recovers by itself once it is back.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from ctloop.artifacts import ArtifactStore, open_artifact_store
from ctloop.core.settings import Settings
from ctloop.metadata import MetadataStore, open_metadata_store
from ctloop.registry import ModelRegistry, default_actor
from ctloop.ui.access import AccessPolicy, Identity
from ctloop.ui.queries import UiQueries

__all__ = ["UiState", "page", "state_of"]

HERE = Path(__file__).parent
ANON_COOKIE = "ctloop_ui_anon"


@dataclass
class UiState:
    settings: Settings
    policy: AccessPolicy
    templates: Jinja2Templates
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _store: MetadataStore | None = None
    _queries: UiQueries | None = None
    _artifacts: ArtifactStore | None = None

    @property
    def store(self) -> MetadataStore:
        with self._lock:
            if self._store is None:
                self._store = open_metadata_store(self.settings.metadata_url)
            return self._store

    @property
    def queries(self) -> UiQueries:
        self.store  # noqa: B018  (opens and migrates the store first)
        with self._lock:
            if self._queries is None:
                self._queries = UiQueries(self.settings.metadata_url)
            return self._queries

    @property
    def artifacts(self) -> ArtifactStore:
        with self._lock:
            if self._artifacts is None:
                url = self.settings.artifacts_url
                self._artifacts = open_artifact_store(
                    url, storage_options=self.settings.storage_options(url) or None
                )
            return self._artifacts

    def registry(self, identity: Identity | None = None) -> ModelRegistry:
        """The registry; moves are audited as ``KEY NAME (ui)``, or the login name without keys."""
        actor = None
        if identity is not None and identity.role:
            who = identity.name if self.policy.enabled else default_actor()
            actor = f"{who} (ui)"
        return ModelRegistry(self.store, actor=actor)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        if self._queries is not None:
            self._queries.close()


def state_of(request: Request) -> UiState:
    state: UiState = request.app.state.ui
    return state


def identity_of(request: Request) -> Identity:
    ident: Identity = request.state.identity
    return ident


def page(
    request: Request, template: str, context: Mapping[str, object], status_code: int = 200
) -> HTMLResponse:
    """Render ``template`` with what every page shows (who is signed in, the CSRF token)."""
    state = state_of(request)
    identity = identity_of(request)
    base = {
        "identity": identity,
        "keys_enabled": state.policy.enabled,
        "csrf": state.policy.csrf_token(identity),
        "path": request.url.path,
    }
    response: HTMLResponse = state.templates.TemplateResponse(
        request, template, {**base, **context}, status_code=status_code
    )
    return response
