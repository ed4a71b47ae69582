"""The conformance suite every online store passes (SQLite and Redis today).

Subclass :class:`OnlineStoreContract` with ``__test__ = True`` and override the
``online_url`` fixture to return a URL for an empty store::

    class TestSqliteOnlineStore(OnlineStoreContract):
        __test__ = True

        @pytest.fixture
        def online_url(self, tmp_path):
            return f"sqlite:///{tmp_path / 'online.db'}"
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from ctloop.features.online.base import OnlineStore, WriteBatch, open_online_store

__all__ = ["OnlineStoreContract"]


def _text(payload: object) -> str:
    return payload.decode() if isinstance(payload, bytes) else str(payload)


def _batch(view: str, n: int, *, start: int = 0, value: str = "a", ts: int = 1_000) -> WriteBatch:
    keys = [f"k{i}" for i in range(start, start + n)]
    return WriteBatch(
        view,
        keys,
        [ts + i for i in range(n)],
        [json.dumps({"f": f"{value}{i}"}) for i in range(start, start + n)],
    )


class OnlineStoreContract:
    """Behaviour shared by all online stores."""

    __test__ = False

    @pytest.fixture
    def online_url(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    @pytest.fixture
    def store(self, online_url: str) -> Iterator[OnlineStore]:
        store = open_online_store(online_url)
        yield store
        for view in ("v", "w", "flights", "planes", "other"):
            store.drop_view(view)
        store.close()

    def test_is_an_online_store(self, store: OnlineStore) -> None:
        assert isinstance(store, OnlineStore)

    def test_unknown_view_and_keys_read_as_none(self, store: OnlineStore) -> None:
        assert store.read("v", ["nope"]) == [None]
        assert store.read("v", []) == []
        assert store.watermark("v") is None

    def test_round_trip_keeps_order_and_event_times(self, store: OnlineStore) -> None:
        assert store.write([_batch("v", 3)]) == 3
        got = store.read("v", ["k2", "missing", "k0"])
        assert got[1] is None
        assert got[0] is not None and got[2] is not None
        assert got[0][0] == 1_002 and json.loads(_text(got[0][1])) == {"f": "a2"}
        assert got[2][0] == 1_000 and json.loads(_text(got[2][1])) == {"f": "a0"}

    def test_single_key_read(self, store: OnlineStore) -> None:
        store.write([_batch("v", 2)])
        [(ts, payload)] = store.read("v", ["k1"])  # type: ignore[misc]
        assert ts == 1_001 and json.loads(_text(payload)) == {"f": "a1"}

    def test_static_rows_have_no_event_time(self, store: OnlineStore) -> None:
        store.write([WriteBatch("v", ["x"], [None], ['{"f": 1}'])])
        assert store.read("v", ["x"])[0][0] is None  # type: ignore[index]

    def test_upsert_replaces_values(self, store: OnlineStore) -> None:
        store.write([_batch("v", 3)])
        store.write([_batch("v", 2, start=1, value="b", ts=5_000)])
        got = [json.loads(_text(r[1])) for r in store.read("v", ["k0", "k1", "k2"])]  # type: ignore[index]
        assert got == [{"f": "a0"}, {"f": "b1"}, {"f": "b2"}]

    def test_views_are_independent(self, store: OnlineStore) -> None:
        store.write([_batch("v", 2), _batch("w", 1, value="w")])
        assert json.loads(_text(store.read("w", ["k0"])[0][1])) == {"f": "w0"}  # type: ignore[index]
        store.drop_view("v")
        assert store.read("v", ["k0", "k1"]) == [None, None]
        assert store.read("w", ["k0"])[0] is not None

    def test_watermarks(self, store: OnlineStore) -> None:
        store.write([_batch("v", 1)], watermarks={"v": 123, "w": 456})
        assert store.watermark("v") == 123 and store.watermark("w") == 456
        store.write([], watermarks={"v": 789})
        assert store.watermark("v") == 789
        store.drop_view("v")
        assert store.watermark("v") is None

    def test_many_keys_in_one_read(self, store: OnlineStore) -> None:
        store.write(_batch("v", 500, start=i * 500) for i in range(3))
        keys = [f"k{i}" for i in range(1_600)]
        got = store.read("v", keys)
        assert sum(r is not None for r in got) == 1_500
        assert json.loads(_text(got[1_234][1]))["f"] == "a1234"  # type: ignore[index]

    def test_odd_keys(self, store: OnlineStore) -> None:
        keys = ["JFK\x1fLAX", "ünïcode", "with space", "a:b:c", "*", ""]
        store.write([WriteBatch("v", keys, [1] * len(keys), [f'"{i}"' for i in range(len(keys))])])
        got = store.read("v", list(reversed(keys)))
        assert [json.loads(_text(r[1])) for r in got] == [str(i) for i in reversed(range(6))]  # type: ignore[index]

    def test_failed_write_is_invisible(self, store: OnlineStore) -> None:
        store.write([_batch("v", 3)], watermarks={"v": 1})

        def batches() -> Iterator[WriteBatch]:
            yield _batch("v", 3, value="new", ts=9_000)
            yield _batch("w", 2)
            raise RuntimeError("the source broke half way")

        with pytest.raises(RuntimeError, match="half way"):
            store.write(batches(), watermarks={"v": 2, "w": 2})
        got = [json.loads(_text(r[1])) for r in store.read("v", ["k0", "k1", "k2"])]  # type: ignore[index]
        assert got == [{"f": "a0"}, {"f": "a1"}, {"f": "a2"}]
        assert store.read("w", ["k0"]) == [None]
        assert store.watermark("v") == 1 and store.watermark("w") is None
        # and the store still works afterwards
        store.write([_batch("v", 1, value="c")])
        assert json.loads(_text(store.read("v", ["k0"])[0][1])) == {"f": "c0"}  # type: ignore[index]

    def test_failed_materialization_leaves_store_unchanged(self, online_url: str) -> None:
        import pandas as pd
        import pyarrow as pa

        from ctloop.core.errors import CtloopError
        from ctloop.features import DataFrameSource, Entity, Feature, FeatureStore, FeatureView

        ts = pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"])
        good = pd.DataFrame({"flight": [1, 2, 3], "ts": ts, "delay": [1.0, 2.0, 3.0]})
        # uint64 values past the int64 range fail to convert only when the rows are read
        seats = pa.table({"tail": ["A", "B"], "seats": pa.array([100, 2**64 - 1], pa.uint64())})
        fine_seats = pa.table({"tail": ["A", "B"], "seats": pa.array([100, 200], pa.uint64())})

        def views(flights: pd.DataFrame, planes: pa.Table) -> list[FeatureView]:
            return [
                FeatureView(
                    "flights",
                    Entity("flight"),
                    DataFrameSource(flights),
                    [Feature("delay")],
                    timestamp_field="ts",
                ),
                FeatureView(
                    "planes",
                    Entity("plane", ("tail",)),
                    DataFrameSource(planes),
                    [Feature("seats", "int64")],
                ),
            ]

        refs = ["flights:delay", "planes:seats"]
        rows = [{"flight": 1, "tail": "A"}, {"flight": 3, "tail": "B"}]
        with FeatureStore(views(good, fine_seats), online_store=online_url) as fs:
            fs.materialize(end="2024-01-02")
            before = fs.get_online_features(refs, rows, now="2024-01-02").to_dict()
            mark = fs.online.watermark("flights")
        assert before["features"] == {"flights:delay": [1.0, None], "planes:seats": [100, 200]}
        changed = good.assign(delay=[10.0, 20.0, 30.0])
        with FeatureStore(views(changed, seats), online_store=online_url) as fs:
            with pytest.raises(CtloopError, match="planes"):
                fs.materialize(end="2024-01-03")
            after = fs.get_online_features(refs, rows, now="2024-01-02").to_dict()
            assert fs.online.watermark("flights") == mark
        assert after == before
