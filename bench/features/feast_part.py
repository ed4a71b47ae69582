"""The Feast side of the benchmark; runs with bench/.peers/feast/bin/python.

    feast_part.py setup DATA REPO             apply definitions, materialize the online view
    feast_part.py online DATA REPO            online lookup latencies
    feast_part.py open DATA REPO              open the store + one lookup (timed by the caller)
    feast_part.py offline DATA REPO N VIEWS   historical retrieval, N entity rows, VIEWS=2|3
Prints one JSON line with the results and its own peak RSS.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ONLINE_REFS = [f"drivers:f{i}" for i in range(10)]


def _yaml(repo: Path) -> None:
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "feature_store.yaml").write_text(
        "project: bench\n"
        f"registry: {repo / 'registry.db'}\n"
        "provider: local\n"
        "online_store:\n  type: sqlite\n"
        f"  path: {repo / 'online.db'}\n"
        "offline_store:\n  type: file\n"
        "entity_key_serialization_version: 3\n"
    )


def _objects(data: Path):  # type: ignore[no-untyped-def]
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64

    driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    location = Entity(name="location", join_keys=["location_id"], value_type=ValueType.INT64)
    plane = Entity(name="plane", join_keys=["plane_id"], value_type=ValueType.INT64)

    def view(name, entity, path, prefix, k, ttl):  # type: ignore[no-untyped-def]
        return FeatureView(
            name=name,
            entities=[entity],
            ttl=ttl,
            schema=[Field(name=f"{prefix}{i}", dtype=Float64) for i in range(k)],
            source=FileSource(path=str(data / path), timestamp_field="event_timestamp"),
            online=True,
        )

    return [
        driver,
        location,
        plane,
        view("drivers", driver, "drivers.parquet", "f", 10, timedelta(days=30)),
        view("weather", location, "weather.parquet", "w", 5, timedelta(hours=2)),
        view("daily", driver, "daily.parquet", "d", 3, timedelta(days=2)),
        view("planes", plane, "planes.parquet", "p", 3, timedelta(0)),
    ]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    cmd, data, repo = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    out: dict = {}
    if cmd == "setup":
        _yaml(repo)
        from feast import FeatureStore

        fs = FeatureStore(repo_path=str(repo))
        fs.apply(_objects(data))
        t = time.perf_counter()
        fs.materialize(datetime(2023, 12, 1), datetime(2024, 2, 1), feature_views=["drivers"])
        out["materialize_s"] = time.perf_counter() - t
    elif cmd == "open":
        from feast import FeatureStore

        fs = FeatureStore(repo_path=str(repo))
        fs.get_online_features(features=ONLINE_REFS, entity_rows=[{"driver_id": 1}]).to_dict()
    elif cmd == "online":
        import random

        from feast import FeatureStore

        fs = FeatureStore(repo_path=str(repo))
        rnd = random.Random(0)
        for n, reps in ((1, 2000), (100, 300)):
            times = []
            for r in range(reps + 20):
                rows = [{"driver_id": rnd.randrange(10_000)} for _ in range(n)]
                t = time.perf_counter()
                res = fs.get_online_features(features=ONLINE_REFS, entity_rows=rows).to_dict()
                if r >= 20:
                    times.append(time.perf_counter() - t)
            assert len(res["f0"]) == n
            times.sort()
            out[f"online_{n}"] = {
                "p50_ms": times[len(times) // 2] * 1e3,
                "p99_ms": times[int(len(times) * 0.99)] * 1e3,
            }
    elif cmd == "offline":
        import pandas as pd
        from feast import FeatureStore

        n, views = int(sys.argv[4]), int(sys.argv[5])
        fs = FeatureStore(repo_path=str(repo))
        refs = [f"daily:d{i}" for i in range(3)] + [f"planes:p{i}" for i in range(3)]
        if views == 3:
            refs += [f"weather:w{i}" for i in range(5)]
        ent = pd.read_parquet(data / f"entities_{n}.parquet")
        t = time.perf_counter()
        df = fs.get_historical_features(entity_df=ent, features=refs).to_df()
        out["seconds"] = time.perf_counter() - t
        out["rows"] = len(df)
        out["nonnull_d0"] = int(df["d0"].notna().sum())
    out["peak_mb"] = _peak_mb()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
