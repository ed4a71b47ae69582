"""Redis online store: a hash per entity key, MULTI/EXEC writes, pipelined reads.

Keys are ``{prefix}:{view}:{entity key}`` holding fields ``ts`` and ``v``;
watermarks live in the hash ``{prefix}:_watermarks``. Every write of one
materialization is queued in one ``MULTI ... EXEC`` transaction, so readers
see all of it or none of it. ``?prefix=name`` in the URL namespaces the keys
(default ``ctloop``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ctloop.core.errors import BackendUnavailable, StoreError
from ctloop.core.plugins import require
from ctloop.features.online.base import OnlineRecord, WriteBatch

if TYPE_CHECKING:
    import redis

_T = TypeVar("_T")

__all__ = ["RedisOnlineStore"]


def _split_prefix(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    prefix = next((v for k, v in query if k == "prefix"), "ctloop")
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix


class RedisOnlineStore:
    """Online features in Redis (for a team server or several serving processes)."""

    def __init__(self, *, url: str) -> None:
        self.url = url
        self._redis_url, self.prefix = _split_prefix(url)
        self._client: redis.Redis | None = None

    def _conn(self) -> redis.Redis:
        if self._client is None:
            redis = require("redis", "redis", "The Redis online store")
            self._client = redis.Redis.from_url(
                self._redis_url, socket_connect_timeout=2, socket_timeout=10
            )
        return self._client

    def _call(self, what: str, fn: Callable[[], _T]) -> _T:
        redis = require("redis", "redis", "The Redis online store")
        try:
            return fn()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise BackendUnavailable(
                f"The Redis online store at {self._redis_url} is unreachable while {what}: "
                f"{str(exc).rstrip('.')}. Start Redis or fix the online_store URL "
                "(CTLOOP_ONLINE_STORE_URL)."
            ) from exc
        except redis.exceptions.RedisError as exc:
            raise StoreError(f"Redis failed while {what}: {str(exc).rstrip('.')}.") from exc

    def _key(self, view: str, key: str) -> str:
        return f"{self.prefix}:{view}:{key}"

    def write(
        self, batches: Iterable[WriteBatch], *, watermarks: dict[str, int] | None = None
    ) -> int:
        pipe = self._conn().pipeline(transaction=True)
        written = 0
        try:
            for batch in batches:
                for key, ts, payload in zip(
                    batch.keys, batch.event_ts, batch.payloads, strict=True
                ):
                    pipe.hset(
                        self._key(batch.view, key),
                        mapping={"ts": "" if ts is None else ts, "v": payload},
                    )
                written += len(batch.keys)
            if watermarks:
                pipe.hset(
                    f"{self.prefix}:_watermarks", mapping={k: int(v) for k, v in watermarks.items()}
                )
        except BaseException:
            pipe.reset()  # nothing was sent: the queued commands are discarded
            raise
        if written or watermarks:
            self._call("writing a batch", pipe.execute)
        return written

    def read(self, view: str, keys: Sequence[str]) -> list[OnlineRecord | None]:
        if not keys:
            return []
        client = self._conn()
        if len(keys) == 1:
            rows = [
                self._call("reading", lambda: client.hmget(self._key(view, keys[0]), "ts", "v"))
            ]
        else:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.hmget(self._key(view, key), "ts", "v")
            rows = self._call("reading", pipe.execute)
        out: list[OnlineRecord | None] = []
        for ts, payload in rows:
            if payload is None:
                out.append(None)
            else:
                raw = payload if isinstance(payload, bytes) else payload.encode()
                out.append((int(ts) if ts else None, raw))
        return out

    def watermark(self, view: str) -> int | None:
        value = self._call(
            "reading a watermark", lambda: self._conn().hget(f"{self.prefix}:_watermarks", view)
        )
        return None if value is None else int(value)

    def drop_view(self, view: str) -> None:
        client = self._conn()

        def drop() -> None:
            batch: list[bytes] = []
            for key in client.scan_iter(match=f"{self.prefix}:{view}:*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    client.delete(*batch)
                    batch.clear()
            if batch:
                client.delete(*batch)
            client.hdel(f"{self.prefix}:_watermarks", view)

        self._call("dropping a view", drop)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __repr__(self) -> str:
        return f"RedisOnlineStore(url={self._redis_url!r}, prefix={self.prefix!r})"
