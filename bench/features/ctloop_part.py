"""The ctloop side of the benchmark, plus the raw DuckDB and raw SQLite floors.

    ctloop_part.py setup DATA HOME                 apply to the catalog, materialize (SQLite, Redis)
    ctloop_part.py online DATA HOME URL            online lookup latencies on that online store
    ctloop_part.py open DATA HOME                  open the store + one lookup (timed by the caller)
    ctloop_part.py offline DATA N VIEWS            point-in-time retrieval of N entity rows
    ctloop_part.py raw_duckdb DATA N VIEWS         the same join as one hand-written ASOF query
    ctloop_part.py raw_sqlite DATA HOME            the same lookups on a plain SQLite table
Prints one JSON line with the results and its own peak RSS.
"""

from __future__ import annotations

import json
import random
import resource
import sys
import time
from pathlib import Path

ONLINE_REFS = [f"drivers:f{i}" for i in range(10)]
REDIS_URL = "redis://127.0.0.1:6379/0?prefix=ctloop_bench"


def definitions(data: Path) -> list:  # type: ignore[type-arg]
    from ctloop.features import Entity, Feature, FeatureView, FileSource

    driver, location, plane = (
        Entity("driver", ("driver_id",)),
        Entity("location", ("location_id",)),
        Entity("plane", ("plane_id",)),
    )

    def view(name, entity, path, prefix, k, ttl, ts="event_timestamp"):  # type: ignore[no-untyped-def]
        return FeatureView(
            name,
            entity,
            FileSource(str(data / path)),
            [Feature(f"{prefix}{i}") for i in range(k)],
            timestamp_field=ts,
            ttl=ttl,
        )

    return [
        view("drivers", driver, "drivers.parquet", "f", 10, "30d"),
        view("weather", location, "weather.parquet", "w", 5, "2h"),
        view("daily", driver, "daily.parquet", "d", 3, "2d"),
        view("planes", plane, "planes.parquet", "p", 3, None, ts=None),
    ]


def refs(views: int) -> list[str]:
    out = [f"daily:d{i}" for i in range(3)] + [f"planes:p{i}" for i in range(3)]
    if views == 3:
        out += [f"weather:w{i}" for i in range(5)]
    return out


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _latencies(fn, reps: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    times = []
    for r in range(reps + 20):
        t = time.perf_counter()
        fn()
        if r >= 20:
            times.append(time.perf_counter() - t)
    times.sort()
    return {"p50_ms": times[len(times) // 2] * 1e3, "p99_ms": times[int(len(times) * 0.99)] * 1e3}


def main() -> None:
    cmd, data = sys.argv[1], Path(sys.argv[2])
    out: dict = {}
    if cmd == "setup":
        from ctloop.features import Definitions, FeatureStore
        from ctloop.features.catalog import apply_definitions
        from ctloop.metadata import open_metadata_store

        home = Path(sys.argv[3])
        home.mkdir(parents=True, exist_ok=True)
        meta = open_metadata_store(f"sqlite:///{home / 'metadata.db'}")
        apply_definitions(meta, Definitions.of(definitions(data)))
        for name, url in (("sqlite", f"sqlite:///{home / 'online.db'}"), ("redis", REDIS_URL)):
            try:
                fs = FeatureStore(definitions(data), online_store=url)
                t = time.perf_counter()
                fs.materialize(end="2024-02-01", views=["drivers"])
                out[f"materialize_{name}_s"] = time.perf_counter() - t
                fs.close()
            except Exception as exc:  # Redis may be down on this machine
                out[f"materialize_{name}_s"] = f"failed: {exc}"
        meta.close()
    elif cmd in {"online", "open"}:
        from ctloop.features import FeatureStore

        home = Path(sys.argv[3])
        url = sys.argv[4] if len(sys.argv) > 4 else f"sqlite:///{home / 'online.db'}"
        fs = FeatureStore.open(metadata=f"sqlite:///{home / 'metadata.db'}", online_store=url)
        if cmd == "open":
            fs.get_online_features(ONLINE_REFS, [{"driver_id": 1}])
        else:
            rnd = random.Random(0)
            for n, reps in ((1, 2000), (100, 300)):

                def one(n: int = n) -> None:
                    rows = {"driver_id": [rnd.randrange(10_000) for _ in range(n)]}
                    res = fs.get_online_features(ONLINE_REFS, rows)
                    assert len(res.values["drivers:f0"]) == n

                out[f"online_{n}"] = _latencies(one, reps)
    elif cmd == "offline":
        import pyarrow.parquet as pq

        from ctloop.features import FeatureStore

        n, views = int(sys.argv[3]), int(sys.argv[4])
        fs = FeatureStore(definitions(data), online_store="sqlite:///:memory:")
        ent = pq.read_table(data / f"entities_{n}.parquet")
        t = time.perf_counter()
        table = fs.get_training_set(ent, refs(views)).to_arrow()
        out["seconds"] = time.perf_counter() - t
        out["rows"] = table.num_rows
        out["nonnull_d0"] = table.num_rows - table.column("d0").null_count
    elif cmd == "raw_duckdb":
        import duckdb
        import pyarrow.parquet as pq

        n, views = int(sys.argv[3]), int(sys.argv[4])
        ent = pq.read_table(data / f"entities_{n}.parquet")
        t = time.perf_counter()
        con = duckdb.connect()
        con.register("ent", ent)
        weather_cols = ", ".join(f"w.w{i}" for i in range(5))
        weather_join = (
            f"ASOF LEFT JOIN read_parquet('{data / 'weather.parquet'}') w "
            "ON e.location_id = w.location_id AND e.event_timestamp >= w.event_timestamp"
        )
        sql = (
            f"SELECT e.*, d.d0, d.d1, d.d2, p.p0, p.p1, p.p2"
            f"{', ' + weather_cols if views == 3 else ''} FROM ent e "
            f"ASOF LEFT JOIN read_parquet('{data / 'daily.parquet'}') d "
            "ON e.driver_id = d.driver_id AND e.event_timestamp >= d.event_timestamp "
            f"LEFT JOIN read_parquet('{data / 'planes.parquet'}') p ON e.plane_id = p.plane_id "
            f"{weather_join if views == 3 else ''}"
        )
        table = con.sql(sql).to_arrow_table()
        out["seconds"] = time.perf_counter() - t
        out["rows"] = table.num_rows
    elif cmd == "raw_sqlite":
        import sqlite3

        import pyarrow.parquet as pq

        home = Path(sys.argv[3])
        path = home / "raw.db"
        if not path.exists():
            tbl = pq.read_table(data / "drivers.parquet").to_pandas()
            latest = tbl.sort_values("event_timestamp").groupby("driver_id").tail(1)
            con = sqlite3.connect(path)
            cols = ", ".join(f"f{i} REAL" for i in range(10))
            con.execute(f"CREATE TABLE drivers (id INTEGER PRIMARY KEY, ts INTEGER, {cols})")
            con.executemany(
                f"INSERT INTO drivers VALUES (?, ?, {', '.join('?' * 10)})",
                [(int(r[0]), 0, *map(float, r[2:])) for r in latest.itertuples(index=False)],
            )
            con.commit()
            con.close()
        con = sqlite3.connect(path)
        rnd = random.Random(0)
        cols = ", ".join(f"f{i}" for i in range(10))

        def one() -> None:
            con.execute(
                f"SELECT ts, {cols} FROM drivers WHERE id = ?", (rnd.randrange(10_000),)
            ).fetchone()

        def many() -> None:
            ids = [rnd.randrange(10_000) for _ in range(100)]
            con.execute(
                f"SELECT id, ts, {cols} FROM drivers WHERE id IN ({','.join('?' * 100)})", ids
            ).fetchall()

        out["online_1"] = _latencies(one, 2000)
        out["online_100"] = _latencies(many, 300)
    out["peak_mb"] = _peak_mb()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
