"""Features: catalog search, one view's definition, owner, tags, freshness and users."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from ctloop.features.catalog import ViewDescription, describe, feature_rows
from ctloop.ui.state import page, state_of

__all__ = ["router"]

router = APIRouter()


@router.get("/features", response_class=HTMLResponse)
def features_list(
    request: Request,
    q: Annotated[str | None, Query(max_length=200)] = None,
    owner: Annotated[str | None, Query(max_length=200)] = None,
    tag: Annotated[str | None, Query(max_length=200)] = None,
) -> HTMLResponse:
    rows = feature_rows(state_of(request).store, query=q or None, owner=owner or None,
                        tag=tag or None)
    return page(request, "features.html", {"rows": rows, "q": q or "", "owner": owner or "",
                                           "tag": tag or ""})


@router.get("/features/{name}", response_class=HTMLResponse)
def feature_view(request: Request, name: str) -> HTMLResponse:
    state = state_of(request)
    info: ViewDescription
    online = None
    note = ""
    try:
        from ctloop.features.online import open_online_store

        online = open_online_store(state.settings.online_store_url)
    except Exception as exc:  # freshness is optional: the definition still renders
        note = f"The online store is unavailable ({type(exc).__name__}); freshness not shown."
    try:
        info = describe(state.store, name, online=online)
    finally:
        if online is not None:
            online.close()
    return page(request, "feature.html", {"info": info, "note": note})
