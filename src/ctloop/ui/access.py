"""Who may do what in the dashboard: the prediction service's API keys, a signed session, CSRF.

The dashboard uses the same keys as ``ctloop serve``, from the same places and
checked by the same code (:mod:`ctloop.serving.auth`): the hashed keys of
``[ctloop.serving.keys]`` in ctloop.toml and the JSON in ``CTLOOP_SERVING_KEYS``::

    [ctloop.serving.keys]         # ``ctloop serve --hash-key`` reads a key, prints its hash
    ada = { hash = "sha256:9f86d0...", roles = ["admin"] }
    rui = { hash = "sha256:60303a...", roles = ["read"] }

Without keys the dashboard is a local tool: everyone may read and act (it
binds 127.0.0.1). With keys, as the API demands a ``read`` key for the same data,
every page but the sign-in page and ``/healthz`` needs a session: a visitor is
sent to sign in with a key and gets a session cookie (HMAC-signed, HttpOnly,
SameSite=Strict) carrying the key's name and strongest role, never the key.
Promoting and rolling back need a key that allows ``admin``. Every POST
carries a CSRF token bound to that session.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ctloop.core.errors import ConfigError
from ctloop.core.settings import Tables
from ctloop.serving.auth import ENV, ROLES, ApiKey, hash_key, parse_keys

__all__ = ["ROLES", "UI_SETTINGS", "AccessPolicy", "ApiKey", "Identity", "load_keys",
           "strongest_role"]

SESSION_COOKIE = "ctloop_ui_session"
SESSION_TTL_S = 12 * 3600
# Settings the [ctloop.ui] table may hold. None today: host and port are `ctloop ui`
# options and the keys are the prediction service's.
UI_SETTINGS: frozenset[str] = frozenset()
_MOVED = {
    "api_keys": "API keys are the prediction service's now: move them, hashed, to "
                "[ctloop.serving.keys] (`ctloop serve --hash-key` reads a key and prints its hash)",
    "host": "host is the `ctloop ui --host` option",
    "port": "port is the `ctloop ui --port` option",
}
_DEPRECATED_ENV = "CTLOOP_UI_API_KEYS"


@dataclass(frozen=True)
class Identity:
    """The person behind a request: ``anonymous`` without a session."""

    name: str
    role: str | None  # the strongest role of the key signed in with
    session: str  # per-session nonce the CSRF token is bound to

    @property
    def can_act(self) -> bool:
        return self.role == "admin"


def strongest_role(key: ApiKey) -> str:
    """``admin`` over ``predict`` over ``read``: what the session cookie records."""
    return next(role for role in reversed(ROLES) if key.allows(role))


def check_ui_table(section: Mapping[str, object]) -> None:
    """Raise ``ConfigError`` for anything in ``[ctloop.ui]`` the dashboard does not read."""
    for name in sorted(section):
        if name in _MOVED:
            raise ConfigError(f"[ctloop.ui] {name} is no longer read: {_MOVED[name]}.")
        if name not in UI_SETTINGS:
            allowed = ", ".join(sorted(UI_SETTINGS)) or "none yet"
            raise ConfigError(
                f"Unknown key {name!r} in the [ctloop.ui] table of ctloop.toml (allowed: "
                f"{allowed}); API keys go in [ctloop.serving.keys]."
            )


def load_keys(tables: Tables, environ: Mapping[str, str] | None = None) -> list[ApiKey]:
    """The service's keys: ``[ctloop.serving.keys]`` and ``CTLOOP_SERVING_KEYS`` (which wins).

    ``tables`` is ``Settings.tables`` (the ctloop.toml tables). The ``[ctloop.ui]``
    table is checked too, so a key left there from an older ctloop is an error,
    not a dashboard silently open to everyone.
    """
    env = os.environ if environ is None else environ
    ui_table: object = tables.ui or {}
    if not isinstance(ui_table, Mapping):
        raise ConfigError("[ctloop.ui] in ctloop.toml must be a table.")
    check_ui_table(ui_table)
    if env.get(_DEPRECATED_ENV):
        raise ConfigError(
            f"{_DEPRECATED_ENV} is no longer read: the dashboard uses the prediction service's "
            f"keys; set {ENV} (JSON: {{\"NAME\": {{\"hash\": \"sha256:...\", \"roles\": "
            "[\"admin\"]}}) or [ctloop.serving.keys], and unset it."
        )
    serving: object = tables.serving or {}
    table = serving.get("keys", {}) if isinstance(serving, Mapping) else {}
    keys = parse_keys(table, "[ctloop.serving.keys]")
    raw = env.get(ENV)
    if raw:
        keys.update(parse_keys(raw, ENV))
    return [ApiKey(name, str(k["hash"]).partition(":")[2], frozenset(k["roles"]))
            for name, k in keys.items()]


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

    def check_key(self, presented: str) -> ApiKey | None:
        """The key ``presented`` is, hashed as the service hashes it; every key compared."""
        digest = hash_key(presented).partition(":")[2]
        found = None
        for key in self.keys:
            if hmac.compare_digest(key.digest, digest):
                found = key
        return found

    def session_cookie(self, key: ApiKey) -> str:
        nonce = secrets.token_hex(8)
        body = f"{key.name}|{strongest_role(key)}|{int(time.time()) + SESSION_TTL_S}|{nonce}"
        return f"{body}|{self._sign(body)}"

    def identify(self, cookie: str | None, anonymous_session: str) -> Identity:
        """The identity a session cookie proves; anonymous (admin without keys) otherwise."""
        if not self.enabled:
            return Identity("local user", "admin", anonymous_session)
        if cookie:
            body, _, signature = cookie.rpartition("|")
            parts = body.split("|")
            if len(parts) == 4 and _same(self._sign(body), signature):
                name, role, expires, nonce = parts
                if expires.isdigit() and int(expires) > time.time() and role in ROLES:
                    return Identity(name, role, nonce)
        return Identity("anonymous", None, anonymous_session)

    def csrf_token(self, identity: Identity) -> str:
        return self._sign(f"csrf|{identity.session}")

    def check_csrf(self, identity: Identity, token: str) -> bool:
        return bool(token) and _same(self.csrf_token(identity), token)


def _same(expected: str, presented: str) -> bool:
    """Constant-time equality that takes any text a visitor sends (``compare_digest`` of two
    ``str`` raises on non-ASCII: a 500 instead of a refusal)."""
    return hmac.compare_digest(expected.encode(), presented.encode("utf-8", "surrogatepass"))
