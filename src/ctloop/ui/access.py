"""Who may do what in the dashboard: API keys with roles, a signed session cookie, CSRF.

Keys have the shape the prediction service uses (a name, a role among
``predict``/``read``/``admin``, the secret), read from ``[ctloop.ui]`` in
ctloop.toml or the ``CTLOOP_UI_API_KEYS`` variable::

    [[ctloop.ui.api_keys]]
    name = "alice"
    role = "admin"
    key_env = "ALICE_CTLOOP_KEY"   # or key = "..." (keep secrets out of files you commit)

    CTLOOP_UI_API_KEYS="alice:admin:SECRET,bob:read:OTHER"

Without keys the dashboard is a local tool: everyone may read and act (it
binds 127.0.0.1). With keys, unauthenticated visitors may only read; a person
signs in with a key and gets a session cookie (HMAC-signed, HttpOnly,
SameSite=Strict) carrying the key's name and role, never the key. Every POST
carries a CSRF token bound to that session.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from typing import Any

from ctloop.core.errors import ConfigError

__all__ = ["ROLES", "AccessPolicy", "ApiKey", "Identity", "load_keys"]

ROLES = ("predict", "read", "admin")
SESSION_COOKIE = "ctloop_ui_session"
SESSION_TTL_S = 12 * 3600


@dataclass(frozen=True)
class ApiKey:
    name: str
    role: str
    digest: str  # sha256 of the secret; the secret itself is not kept


@dataclass(frozen=True)
class Identity:
    """The person behind a request: ``anonymous`` without a session."""

    name: str
    role: str | None
    session: str  # per-session nonce the CSRF token is bound to

    @property
    def can_act(self) -> bool:
        return self.role == "admin"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _key(name: Any, role: Any, secret: Any, where: str) -> ApiKey:
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"An API key in {where} has no name; give each key a `name`.")
    if role not in ROLES:
        raise ConfigError(
            f"The API key {name!r} in {where} has role {role!r}; use one of {', '.join(ROLES)}."
        )
    if not isinstance(secret, str) or len(secret) < 8:
        raise ConfigError(
            f"The API key {name!r} in {where} is missing or shorter than 8 characters."
        )
    return ApiKey(name.strip(), str(role), _digest(secret))


def load_keys(section: dict[str, Any], environ: dict[str, str] | None = None) -> list[ApiKey]:
    """Keys from the ``[ctloop.ui]`` table and ``CTLOOP_UI_API_KEYS`` (name:role:secret,...)."""
    env = os.environ if environ is None else environ
    unknown = sorted(set(section) - {"api_keys"})
    if unknown:
        raise ConfigError(
            f"Unknown keys {unknown} in the [ctloop.ui] table of ctloop.toml; allowed: api_keys "
            "(host and port are `ctloop ui` options)."
        )
    keys: list[ApiKey] = []
    entries = section.get("api_keys", [])
    if not isinstance(entries, list):
        raise ConfigError(
            "[ctloop.ui] api_keys must be an array of tables ([[ctloop.ui.api_keys]])."
        )
    for entry in entries:
        if not isinstance(entry, dict):
            raise ConfigError("Each [[ctloop.ui.api_keys]] entry must be a table.")
        secret = entry.get("key")
        if entry.get("key_env"):
            secret = env.get(str(entry["key_env"]))
            if secret is None:
                raise ConfigError(
                    f"The API key {entry.get('name')!r} reads variable {entry['key_env']!r}, "
                    "which is not set."
                )
        keys.append(_key(entry.get("name"), entry.get("role"), secret, "[ctloop.ui]"))
    for item in filter(None, (p.strip() for p in env.get("CTLOOP_UI_API_KEYS", "").split(","))):
        name, _, rest = item.partition(":")
        role, _, secret = rest.partition(":")
        keys.append(_key(name, role, secret, "CTLOOP_UI_API_KEYS"))
    return keys


class AccessPolicy:
    """Signs sessions and CSRF tokens with a per-process secret; checks keys."""

    def __init__(self, keys: list[ApiKey], *, secret: bytes | None = None) -> None:
        self.keys = keys
        self._secret = secret or secrets.token_bytes(32)

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def _sign(self, text: str) -> str:
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()

    def check_key(self, secret: str) -> ApiKey | None:
        digest = _digest(secret)
        for key in self.keys:
            if hmac.compare_digest(key.digest, digest):
                return key
        return None

    def session_cookie(self, key: ApiKey) -> str:
        nonce = secrets.token_hex(8)
        body = f"{key.name}|{key.role}|{int(time.time()) + SESSION_TTL_S}|{nonce}"
        return f"{body}|{self._sign(body)}"

    def identify(self, cookie: str | None, anonymous_session: str) -> Identity:
        """The identity a session cookie proves; anonymous (admin without keys) otherwise."""
        if not self.enabled:
            return Identity("local user", "admin", anonymous_session)
        if cookie:
            body, _, signature = cookie.rpartition("|")
            parts = body.split("|")
            if len(parts) == 4 and hmac.compare_digest(self._sign(body), signature):
                name, role, expires, nonce = parts
                if expires.isdigit() and int(expires) > time.time() and role in ROLES:
                    return Identity(name, role, nonce)
        return Identity("anonymous", None, anonymous_session)

    def csrf_token(self, identity: Identity) -> str:
        return self._sign(f"csrf|{identity.session}")

    def check_csrf(self, identity: Identity, token: str) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(identity), token)
