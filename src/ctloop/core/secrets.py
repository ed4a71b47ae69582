"""Hide passwords and keys in anything ctloop prints, logs or stores.

Three kinds of secret are recognised:

- the password of a URL (``scheme://user:password@host``, ``redis://:password@host``);
- the value of a secret-looking query or ``key=value`` parameter
  (``password=``, ``secret=``, ``token=``, ``aws_secret_access_key=`` ...);
- any value ctloop was told is secret: passwords of the URLs in its settings
  (remembered when settings are built) and the values of secret environment
  variables (``AWS_SECRET_ACCESS_KEY``, ``*_PASSWORD``, ``*_TOKEN`` ...), so a
  secret is hidden even where a library quotes it without its URL.

``mask_secrets`` is applied by :class:`ctloop.core.errors.CtloopError` to every
message, by the metadata store to stored error texts, by a log-record factory
to every log line, by the request log to logged errors and by the deployment
export to everything it prints.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from urllib.parse import unquote, urlsplit

__all__ = ["MASK", "install_log_masking", "mask_secrets", "mask_url", "remember_secret",
           "remember_url_secrets"]

MASK = "***"
_MIN_LEN = 4  # shorter values would mask ordinary words
# A remembered value shorter than this is masked only as a whole word: a password "test"
# must not turn "tests.env" into "***s.env". Longer ones are masked wherever they appear.
_WHOLE_WORD_BELOW = 8
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@?#]*):(?P<pw>[^\s@/?#]*)@"
)
_PARAM = re.compile(
    r"(?P<key>\b(?:[A-Za-z_]*(?:password|passwd|pwd|secret|token|secret_key|access_key|api_key)"
    r"[A-Za-z_]*)\s*[=:]\s*['\"]?)(?P<value>[^\s&'\",;)}]+)",
    re.IGNORECASE,
)
_SECRET_ENV = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|PRIVATE_KEY)", re.IGNORECASE)
_lock = threading.Lock()
_remembered: set[str] = set()


def remember_secret(value: str | None) -> None:
    """Mask ``value`` wherever it appears from now on (in this process)."""
    if value and len(value) >= _MIN_LEN:
        with _lock:
            _remembered.add(value)
            decoded = unquote(value)
            if decoded != value:
                _remembered.add(decoded)


def remember_url_secrets(*urls: str | None) -> None:
    """Remember the passwords in ``urls`` (settings URLs), so they are masked bare too."""
    for url in urls:
        if not url or "://" not in url:
            continue
        try:
            password = urlsplit(url).password
        except ValueError:
            continue
        remember_secret(password)


def _env_secrets() -> list[str]:
    found = []
    for name, value in os.environ.items():
        if len(value) < _MIN_LEN:
            continue
        if _SECRET_ENV.search(name):
            found.append(value)
        elif "://" in value and "@" in value:
            try:
                password = urlsplit(value).password
            except ValueError:
                continue
            if password and len(password) >= _MIN_LEN:
                found.extend({password, unquote(password)})
    return found


def mask_url(url: str) -> str:
    """``url`` with its password (and secret query parameters) replaced by ``***``."""
    return mask_secrets(url)


def mask_secrets(text: str) -> str:
    """``text`` with every recognised secret replaced by ``***``."""
    if not text:
        return text
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}:{MASK}@" if m["pw"] else m[0], text)
    text = _PARAM.sub(lambda m: m["key"] + MASK if m["value"] != MASK else m[0], text)
    with _lock:
        known = set(_remembered)
    known.update(_env_secrets())
    for secret in sorted(known, key=len, reverse=True):
        if secret not in text:
            continue
        if len(secret) >= _WHOLE_WORD_BELOW:
            text = text.replace(secret, MASK)
        else:
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", MASK, text)
    return text


class _MaskedRecord(logging.LogRecord):
    """A log record whose message and traceback are masked when formatted."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if self.exc_info and not self.exc_text:
            self.exc_text = mask_secrets(logging.Formatter().formatException(self.exc_info))

    def getMessage(self) -> str:
        return mask_secrets(super().getMessage())


def install_log_masking() -> None:
    """Mask secrets in every log record made in this process from now on."""
    if logging.getLogRecordFactory() is not _MaskedRecord:
        logging.setLogRecordFactory(_MaskedRecord)
