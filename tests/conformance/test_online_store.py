"""The online store conformance suite on every backend: SQLite and Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ctloop.core.errors import BackendUnavailable
from ctloop.features.online import WriteBatch, open_online_store
from ctloop.testing.online_store_contract import OnlineStoreContract
from ctloop.testing.services import REDIS_URL, require_service, unique_name


class TestSqliteOnlineStore(OnlineStoreContract):
    __test__ = True

    @pytest.fixture
    def online_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'online.db'}"


@pytest.mark.integration
class TestRedisOnlineStore(OnlineStoreContract):
    __test__ = True

    @pytest.fixture
    def online_url(self) -> Iterator[str]:
        require_service("redis")
        prefix = unique_name("ctf")
        yield f"{REDIS_URL}?prefix={prefix}"
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def test_unreachable_redis_is_a_clear_error() -> None:
    store = open_online_store("redis://127.0.0.1:1/0")
    with pytest.raises(BackendUnavailable, match=r"unreachable.*Start Redis") as info:
        store.read("v", ["k"])
    assert ".." not in str(info.value), str(info.value)
    with pytest.raises(BackendUnavailable, match="unreachable"):
        store.write([WriteBatch("v", ["k"], [1], ["{}"])])


def test_unknown_online_store_url() -> None:
    from ctloop.core.errors import ConfigError

    with pytest.raises(ConfigError, match="sqlite:/// or redis://"):
        open_online_store("mongodb://x")
