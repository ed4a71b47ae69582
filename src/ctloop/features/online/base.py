"""The online store interface: latest feature values per entity key, read in batches.

A backend stores, per feature view, one record per entity key: the event time
of the values (microseconds since the epoch, or ``None`` for static views) and
the values themselves as an opaque payload (the feature store writes a JSON
object). ``write`` takes every batch of one materialization and makes all of
them visible at once or none of them: readers never see a half-written batch.

Backends are chosen by URL: ``sqlite:///path/online.db`` (default) and
``redis://host:port/db`` (``?prefix=name`` namespaces the keys). The shared
conformance suite is ``ctloop.testing.online_store_contract.OnlineStoreContract``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ctloop.core.errors import ConfigError
from ctloop.core.plugins import load_object

__all__ = ["OnlineRecord", "OnlineStore", "WriteBatch", "open_online_store"]

OnlineRecord = tuple[int | None, bytes]
"""(event time in microseconds since the epoch or None, payload)."""


@dataclass(frozen=True)
class WriteBatch:
    """Rows for one view: parallel lists of entity keys, event times and payloads."""

    view: str
    keys: Sequence[str]
    event_ts: Sequence[int | None]
    payloads: Sequence[str | bytes]  # JSON text of each row's values


@runtime_checkable
class OnlineStore(Protocol):
    """Latest values per entity key, per view."""

    url: str

    def write(
        self, batches: Iterable[WriteBatch], *, watermarks: dict[str, int] | None = None
    ) -> int:
        """Upsert every batch and set the views' watermarks, all or nothing.

        ``batches`` may be a generator; if it raises, nothing it yielded becomes
        visible and the exception propagates. Returns the number of rows written.
        """
        ...

    def read(self, view: str, keys: Sequence[str]) -> list[OnlineRecord | None]:
        """Records for ``keys`` in order; ``None`` where the key is unknown."""
        ...

    def watermark(self, view: str) -> int | None:
        """The end (microseconds) of the view's last materialization, if any."""
        ...

    def drop_view(self, view: str) -> None:
        """Forget every record and the watermark of ``view``."""
        ...

    def close(self) -> None: ...


_BACKENDS = {
    "sqlite": "ctloop.features.online.sqlite:SqliteOnlineStore",
    "redis": "ctloop.features.online.redis:RedisOnlineStore",
    "rediss": "ctloop.features.online.redis:RedisOnlineStore",
}


def open_online_store(url: str) -> OnlineStore:
    """The online store for ``url`` (``sqlite:///...`` or ``redis://...``)."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme not in _BACKENDS:
        raise ConfigError(
            f"The online store URL must start with sqlite:/// or redis://. Got {url!r}."
        )
    cls = load_object(_BACKENDS[scheme])
    return cls(url=url)  # type: ignore[no-any-return]
