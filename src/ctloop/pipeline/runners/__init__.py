"""Runners: where steps execute, chosen by name or URL."""

from __future__ import annotations

import inspect
from collections.abc import Mapping

from ctloop.core.errors import ConfigError
from ctloop.core.plugins import load_object
from ctloop.pipeline.runners.base import Runner

__all__ = ["RUNNERS", "Runner", "open_runner"]

RUNNERS = {
    "local": "ctloop.pipeline.runners.local:LocalRunner",
    "subprocess": "ctloop.pipeline.runners.subprocess:SubprocessRunner",
    "dask": "ctloop.pipeline.runners.dask:DaskRunner",
}


def open_runner(spec: str, options: Mapping[str, object] | None = None) -> Runner:
    """A runner for ``local``, ``subprocess``, ``dask`` or ``tcp://host:port`` (Dask).

    ``options`` (the ``[ctloop.dask]`` table of ctloop.toml for Dask:
    ``n_workers``, ``threads_per_worker``, ``connect_timeout``) go to the
    runner's constructor; unknown keys are an error that lists the known ones.
    """
    options = dict(options or {})
    if spec.startswith("tcp://"):
        host, _, port = spec.removeprefix("tcp://").rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(
                f"The runner {spec!r} is not a Dask scheduler address. "
                "Write it as tcp://HOST:PORT, e.g. tcp://scheduler:8786."
            )
        options["address"] = spec
        spec = "dask"
    if spec not in RUNNERS:
        raise ConfigError(
            f"Unknown runner {spec!r}. Use one of: {', '.join(RUNNERS)} or tcp://HOST:PORT."
        )
    cls = load_object(RUNNERS[spec])
    try:
        return cls(**options)  # type: ignore[no-any-return]
    except TypeError as exc:
        known = [p for p in inspect.signature(cls).parameters if p != "address"]
        raise ConfigError(
            f"Bad options {sorted(options)} for the {spec} runner ({exc}). "
            f"Known options: {', '.join(known) or 'none'}."
        ) from None
