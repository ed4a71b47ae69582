"""Several worker processes behind one port (``ctloop serve --workers N``).

uvicorn spawns the workers and each builds its own app with
:func:`app_from_environment` from the options the parent put in
``CTLOOP_SERVE_OPTIONS``; each follows the registry on its own (hot reload
in every worker). Metrics go to ``PROMETHEUS_MULTIPROC_DIR``, a fresh folder
per run, so ``/metrics`` on any worker counts the requests of all of them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI

from ctloop.core.environ import environment

__all__ = ["OPTIONS_ENV", "app_from_environment", "worker_environment"]

OPTIONS_ENV = "CTLOOP_SERVE_OPTIONS"
_METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def worker_environment(model: str | None, overrides: dict[str, Any]) -> Iterator[None]:
    """Options and a shared metrics folder for the workers uvicorn is about to spawn."""
    folder = tempfile.mkdtemp(prefix="ctloop-metrics-")
    options = json.dumps({"model": model, "overrides": overrides})
    try:
        with environment({OPTIONS_ENV: options, _METRICS_ENV: folder}):
            yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def app_from_environment() -> FastAPI:
    """The app one worker serves (uvicorn factory)."""
    from ctloop.core.settings import load_settings
    from ctloop.serving.app import create_app
    from ctloop.serving.config import ServingConfig

    options = json.loads(os.environ.get(OPTIONS_ENV) or "{}")
    settings = load_settings()
    config = ServingConfig.from_table(settings.tables.serving, **options.get("overrides", {}))
    return create_app(options.get("model"), config=config, settings=settings, preload=True)
