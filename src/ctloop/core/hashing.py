"""Content hashes and fingerprints.

``fingerprint`` is an open registry (``functools.singledispatch``): register a
type to make it hashable for cache keys. Hashes are hex sha256 strings.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = ["fingerprint", "hash_bytes", "hash_file", "hash_source", "stable_json"]

_CHUNK = 1 << 20


def hash_bytes(data: bytes) -> str:
    """sha256 of ``data`` as hex."""
    return hashlib.sha256(data).hexdigest()


def hash_file(path: str | Path) -> str:
    """sha256 of a file, read in 1 MiB chunks so large files stay out of memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hash_chunks(chunks: Iterable[bytes]) -> str:
    """sha256 over a stream of byte chunks."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def stable_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace, the canonical form we hash."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return repr(value)


def hash_source(func: Callable[..., Any]) -> str:
    """Hash of a function's source text (dedented), its code version by default."""
    try:
        source = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        source = getattr(func, "__qualname__", repr(func))
    return hash_bytes(source.encode())[:16]


@functools.singledispatch
def fingerprint(value: Any) -> str:
    """Fingerprint of a parameter value for cache keys."""
    return hash_bytes(stable_json(value).encode())
