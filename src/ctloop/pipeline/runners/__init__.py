"""Runners: where steps execute, chosen by name or URL."""

from __future__ import annotations

from ctloop.core.errors import ConfigError
from ctloop.core.plugins import load_object
from ctloop.pipeline.runners.base import Runner

__all__ = ["RUNNERS", "Runner", "open_runner"]

RUNNERS = {
    "local": "ctloop.pipeline.runners.local:LocalRunner",
    "subprocess": "ctloop.pipeline.runners.subprocess:SubprocessRunner",
    "dask": "ctloop.pipeline.runners.dask:DaskRunner",
}


def open_runner(spec: str) -> Runner:
    """A runner for ``local``, ``subprocess``, ``dask`` or ``tcp://host:port`` (Dask)."""
    if spec.startswith("tcp://"):
        return load_object(RUNNERS["dask"])(address=spec)  # type: ignore[no-any-return]
    if spec not in RUNNERS:
        raise ConfigError(
            f"Unknown runner {spec!r}. Use one of: {', '.join(RUNNERS)} or tcp://HOST:PORT."
        )
    return load_object(RUNNERS[spec])()  # type: ignore[no-any-return]
