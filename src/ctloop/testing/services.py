"""Reach the real services the tests use, or skip when they are absent.

On a user's machine without PostgreSQL, MariaDB or Redis the tests that need
them skip; when ``CI`` is set they fail instead, so CI can never go green by
skipping the backends it is meant to prove.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import pytest

__all__ = [
    "MYSQL_URL",
    "POSTGRES_URL",
    "REDIS_URL",
    "in_ci",
    "patience",
    "require_service",
    "unique_name",
    "user_environment",
    "wait_until",
]

POSTGRES_URL = os.environ.get(
    "CTLOOP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("CTLOOP_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("CTLOOP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

_PORTS = {"postgres": 5432, "mysql": 3306, "redis": 6379}

HARNESS_VARIABLES = ("CTLOOP_TEST_PATIENCE", "CTLOOP_TIMEOUT_SCALE", "CTLOOP_SERVING_COMPILED",
                     "CTLOOP_CHROMIUM")
"""``CTLOOP_*`` variables that set up the test harness, not a project: a test that runs
ctloop "as a user would" keeps them (the suite's patience, no background compiles)."""


def user_environment() -> dict[str, str]:
    """This process's environment without the ``CTLOOP_*`` settings a user would not have
    set (the harness's own variables stay): for a ctloop started as a user starts it."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("CTLOOP_") or k in HARNESS_VARIABLES}


def in_ci() -> bool:
    """True when running under CI (``CI`` set to anything but empty/false)."""
    return os.environ.get("CI", "").lower() not in {"", "0", "false", "no"}


def _reachable(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def require_service(name: str) -> None:
    """Skip the calling test if service ``name`` is down; fail instead under CI."""
    if _reachable(_PORTS[name]):
        return
    message = f"{name} is not reachable on 127.0.0.1:{_PORTS[name]}"
    if in_ci():
        pytest.fail(f"{message}, and CI is set: these tests must run in CI")
    pytest.skip(message)


def unique_name(prefix: str = "t") -> str:
    """A short unique name for a schema, key prefix or table in a shared server."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def patience(seconds: float) -> float:
    """A test's wait bound: ``seconds`` (enough on a quiet machine) times
    ``CTLOOP_TEST_PATIENCE`` (default 1). CI shares its cores with other jobs and raises
    it (``.ci/run`` sets 4), so a bound is never what fails a test under load; tests wait
    for readiness within it, never for a fixed time."""
    try:
        factor = float(os.environ.get("CTLOOP_TEST_PATIENCE", "1"))
    except ValueError:
        factor = 1.0
    return seconds * max(factor, 1.0)


T = TypeVar("T")


def wait_until(check: Callable[[], T | None], what: str, timeout: float,
               interval: float = 0.5) -> T:
    """Poll ``check`` until it returns something truthy (returned) within
    ``patience(timeout)`` seconds, else fail naming ``what`` and the last error."""
    deadline = time.monotonic() + patience(timeout)
    last: object = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = value
        except Exception as exc:  # not ready yet: keep the reason for the failure message
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {patience(timeout):.0f} s (last: {last!r})")
        time.sleep(interval)
