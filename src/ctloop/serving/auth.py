"""API keys with roles, checked for every route by one ASGI middleware.

Keys are stored hashed (``sha256:<hex>`` of the key; keys are long random
tokens, so a fast hash is safe and keeps the check cheap on every request),
never in clear and never printed. A client sends ``Authorization: Bearer KEY``
or ``X-API-Key: KEY``. Roles:

- ``read``: every GET (model listings, metadata, readiness, metrics)
- ``predict``: ``read`` plus predict, infer, explain and feedback
- ``admin``: everything, including promote and rollback

Route groups named in ``public`` (``health``, ``metrics``, ``docs``) need no key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from ctloop.core.errors import ConfigError
from ctloop.serving.errors import error_body

__all__ = ["ROLES", "ApiKey", "KeyGuard", "hash_key", "new_key", "parse_keys", "required_role"]

ROLES = ("read", "predict", "admin")
_IMPLIES = {"read": {"read"}, "predict": {"read", "predict"}, "admin": set(ROLES)}
ENV = "CTLOOP_SERVING_KEYS"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def hash_key(key: str) -> str:
    """The stored form of ``key``."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh random key (256 bits)."""
    return "ctl_" + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class ApiKey:
    name: str
    digest: str  # hex sha256
    roles: frozenset[str]

    def allows(self, role: str) -> bool:
        return any(role in _IMPLIES[r] for r in self.roles)


def parse_keys(table: Any, where: str) -> dict[str, dict[str, Any]]:
    """``{name: {"hash": "sha256:...", "roles": [...]}}`` checked; raises ``ConfigError``."""
    if isinstance(table, str):
        try:
            table = json.loads(table)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where} is not valid JSON: {exc.msg}.") from None
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must map key names to {{hash, roles}}.")
    out: dict[str, dict[str, Any]] = {}
    for name, entry in table.items():
        if not isinstance(entry, Mapping):
            raise ConfigError(f"Key {name!r} in {where} must be a table {{hash, roles}}.")
        if "key" in entry:
            raise ConfigError(
                f"Key {name!r} in {where} is given in clear; store its hash instead "
                "(ctloop serve --hash-key prints one)."
            )
        digest = str(entry.get("hash", ""))
        algo, _, hexdigest = digest.partition(":")
        if algo != "sha256" or len(hexdigest) != 64 or not _is_hex(hexdigest):
            raise ConfigError(
                f"Key {name!r} in {where} needs hash = \"sha256:<64 hex digits>\" "
                "(ctloop serve --hash-key prints one)."
            )
        roles = entry.get("roles", ["predict"])
        roles = [roles] if isinstance(roles, str) else list(roles)
        bad = sorted(set(roles) - set(ROLES))
        if bad or not roles:
            raise ConfigError(
                f"Key {name!r} in {where} has unknown role(s) {bad or roles}; roles are "
                f"{', '.join(ROLES)}."
            )
        out[str(name)] = {"hash": f"sha256:{hexdigest.lower()}", "roles": roles}
    return out


def _is_hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True


def keys_from_env() -> dict[str, dict[str, Any]]:
    raw = os.environ.get(ENV)
    return parse_keys(raw, ENV) if raw else {}


_HEALTH = frozenset({"/", "/health", "/ready", "/v2/health/live", "/v2/health/ready"})
_DOCS = frozenset({"/docs", "/openapi.json", "/redoc", "/docs/oauth2-redirect"})


def required_role(method: str, path: str, public: frozenset[str]) -> str | None:
    """The role a request needs, or None for a public route."""
    if path in _HEALTH:
        return None if "health" in public else "read"
    if path == "/metrics":
        return None if "metrics" in public else "read"
    if path in _DOCS:
        return None if "docs" in public else "read"
    if path.startswith("/admin/"):
        return "admin"
    if method in ("GET", "HEAD", "OPTIONS"):
        return "read"
    return "predict"


class KeyGuard:
    """ASGI middleware: 401 without a valid key, 403 when its roles do not cover the route."""

    def __init__(
        self,
        app: App,
        keys: Mapping[str, Mapping[str, Any]],
        public: tuple[str, ...],
        on_deny: Callable[[str, int, str], None] | None = None,
    ) -> None:
        self.app = app
        self.public = frozenset(public)
        self.on_deny = on_deny  # (path, status, message): the service logs refused predictions
        self.keys = [
            ApiKey(name, str(k["hash"]).partition(":")[2], frozenset(k["roles"]))
            for name, k in keys.items()
        ]

    def find(self, presented: str) -> ApiKey | None:
        digest = hashlib.sha256(presented.encode()).hexdigest()
        found = None
        for key in self.keys:  # compare every key, in constant time
            if hmac.compare_digest(digest, key.digest):
                found = key
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        role = required_role(scope["method"], scope["path"], self.public)
        if role is None:
            await self.app(scope, receive, send)
            return
        presented = _presented(scope["headers"])
        key = None if presented is None else self.find(presented)
        denial: tuple[int, str, str] | None = None
        if presented is None:
            denial = (401, "unauthorized", "This route needs an API key: send "
                      "'Authorization: Bearer KEY' or 'X-API-Key: KEY'.")
        elif key is None:
            denial = (401, "unauthorized", "The API key is not valid.")
        elif not key.allows(role):
            denial = (403, "forbidden", f"The key {key.name!r} (roles {sorted(key.roles)}) may "
                      f"not do this; it needs the {role!r} role.")
        if denial is not None or key is None:
            status, error, detail = denial or (401, "unauthorized", "The API key is not valid.")
            if self.on_deny is not None:
                self.on_deny(scope["path"], status, f"{error}: {detail}")
            await _deny(send, status, error, detail, scope["path"])
            return
        scope.setdefault("state", {})["api_key"] = key.name
        await self.app(scope, receive, send)


def _presented(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == b"x-api-key" and value:
            return value.decode("latin-1").strip()
    return None


async def _deny(send: Send, status: int, error: str, detail: str, path: str) -> None:
    body = orjson.dumps(error_body(path, error, detail, error.title()))
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="ctloop"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
