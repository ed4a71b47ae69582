"""The web dashboard (``ctloop ui``): runs, models, artifacts, lineage, features, monitoring.

``create_app(settings)`` returns the ASGI app; ``ctloop ui`` serves it on
127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

from ctloop.ui.app import create_app

__all__ = ["create_app"]
