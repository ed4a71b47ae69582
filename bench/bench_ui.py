"""Benchmark: dashboard page render times on a metadata store with 10,000 runs.

Fills a fresh metadata store (SQLite by default, or ``--url`` for PostgreSQL
or MySQL) with ``--runs`` runs of 10 steps each (100,000 step records), a
model with 20 versions and 200 alias moves, and 2,000 artifacts, then times
each dashboard page through the ASGI app in-process (no network), repeated
and interleaved, and prints the median and p90 per page.

Baseline measured in the same run: the runs list built the way a client of
the ``MetadataStore`` interface would build it (``list_runs`` and one
``get_steps`` per row: N+1), against the dashboard's one-query-per-section
page. The ratio is what the dedicated queries buy; absolute times on this
shared machine are noisy.

    .venv/bin/python bench/bench_ui.py
    .venv/bin/python bench/bench_ui.py --runs 2000 --repeat 5        # quick
    .venv/bin/python bench/bench_ui.py --url postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/bench_ui.py --url mysql+pymysql://root@127.0.0.1:3306/test

With ``--url`` the store lives in a new database ``bench_ui_<random>`` on that
server, dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics as pystats
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

STEPS_PER_RUN = 10
TRIGGERS = ["manual", "cron", "new_data", "drift", "degradation"]
STATUSES = ["succeeded"] * 8 + ["failed", "cancelled"]
STEP_STATES = ["succeeded", "succeeded", "cached", "cached", "failed"]


def _id() -> str:
    return uuid.uuid4().hex


def fill(url: str, n_runs: int) -> dict[str, Any]:
    """Bulk-insert runs, steps, artifacts, events and registry rows; returns ids to visit."""
    from ctloop.metadata import open_metadata_store
    from ctloop.metadata import schema as t
    from ctloop.metadata.engine import create_engine

    store = open_metadata_store(url)  # creates the tables at the current revision
    engine = create_engine(url)
    rng = random.Random(0)
    start = datetime(2025, 1, 1)
    runs, steps, artifacts, events = [], [], [], []
    names = [f"s{i}" for i in range(STEPS_PER_RUN)]
    for i in range(n_runs):
        created = start + timedelta(minutes=10 * i)
        run_id = _id()
        runs.append({
            "id": run_id, "pipeline": f"pipeline_{i % 5}", "pipeline_version": "v1",
            "status": rng.choice(STATUSES), "parameters": {"lr": rng.random(), "batch": i},
            "trigger": rng.choice(TRIGGERS), "trigger_info": {"reason": f"batch {i} landed"},
            "executor": {"runner": "local"}, "environment": {"python": "3.11"}, "tags": {},
            "source": "bench.py:p", "created_at": created, "started_at": created,
            "ended_at": created + timedelta(seconds=rng.uniform(1, 600)), "error": None,
        })
        for j, name in enumerate(names):
            step_id = _id()
            steps.append({
                "id": step_id, "run_id": run_id, "name": name, "component": name,
                "component_version": "1", "status": rng.choice(STEP_STATES),
                "cache_key": _id(), "parameters": {"k": j}, "upstream": names[:j][-2:],
                "attempts": 1, "started_at": created, "ended_at": created,
                "duration_s": rng.uniform(0.01, 30), "error": None, "traceback": None,
                "executor": {}, "cached_from": None, "outputs": {"return": {"score": j}},
            })
            if i % 50 == 0 and j in (0, STEPS_PER_RUN - 1):
                art_id = _id()
                artifacts.append({
                    "id": art_id, "type": "Metrics" if j else "Dataset", "uri": f"file:///x/{art_id}",
                    "sha256": _id() + _id(), "size": 100, "name": "out",
                    "properties": {"roc_auc": rng.random()}, "producer_step_id": step_id,
                    "created_at": created,
                })
                events.append({"step_id": step_id, "artifact_id": art_id, "kind": "output",
                               "name": "out"})
    with engine.begin() as conn:
        for table, rows in ((t.runs, runs), (t.steps, steps), (t.artifacts, artifacts),
                            (t.events, events)):
            for k in range(0, len(rows), 5000):
                conn.execute(sa.insert(table), rows[k:k + 5000])
    for v in range(20):  # one artifact per version: registering one twice returns its version
        store.create_model_version("bench-model", artifacts[v]["id"], run_id=runs[v]["id"],
                                   properties={"evaluation": {"overall": {"n": 100, "metrics": {
                                       "roc_auc": {"value": 0.7, "lo": 0.6, "hi": 0.8}}}}})
    for k in range(200):
        store.move_alias("bench-model", "champion", 1 + k % 20, actor="bench", reason=f"move {k}")
    store.close()
    engine.dispose()
    return {"run": runs[n_runs // 2]["id"], "runs": [r["id"] for r in runs[-10:]],
            "n_steps": len(steps)}


def time_it(fn: Callable[[], Any], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def outcome_cost(url: str, repeat: int) -> float:
    """The runs list's data (``UiQueries.run_page``) with its outcome and headline queries
    over the same data without them, timed interleaved: what the verdict badges and the
    metric column cost."""
    from ctloop.ui.queries import RunFilter, UiQueries

    queries = UiQueries(url)
    real = (queries._step_returns, queries._metrics_of)

    def none(conn: Any, ids: Any) -> dict[str, Any]:
        return {}

    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(repeat):
        for full in (True, False):
            queries._step_returns, queries._metrics_of = real if full else (none, none)  # type: ignore[method-assign]
            times[full] += time_it(lambda: queries.run_page(RunFilter()), 1)
    queries.close()
    return pystats.median(times[True]) / pystats.median(times[False])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--url", default=None, help="metadata URL (default: a temp SQLite)")
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from ctloop.core.settings import load_settings
    from ctloop.metadata import open_metadata_store
    from ctloop.ui import create_app

    tmp = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    url = args.url or f"sqlite:///{tmp / 'metadata.db'}"
    scratch = None
    if args.url:  # a throwaway database on the server: others' data is never touched
        scratch, url = _scratch_database(args.url)
    t0 = time.perf_counter()
    ids = fill(url, args.runs)
    print(f"filled {args.runs:,} runs and {ids['n_steps']:,} steps in "
          f"{time.perf_counter() - t0:.1f}s ({url.split('://')[0]})")
    os.chdir(tmp)
    settings = load_settings(tmp, metadata_url=url, artifacts_url=(tmp / "artifacts").as_uri())
    client = TestClient(create_app(settings))
    store = open_metadata_store(url)

    def get(path: str) -> Callable[[], None]:
        def fetch() -> None:
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code, response.text[:300])
        return fetch

    def naive_runs_list() -> None:  # what a client of the plain interface would do: N+1
        for run in store.list_runs(limit=50):
            store.get_steps(run.id)

    pages = {
        "runs list (page 1)": get("/runs"),
        "runs list, page 100": get("/runs?page=100"),
        "runs, failed+drift+dates": get("/runs?status=failed&trigger=drift"
                                        "&since=2025-01-10&until=2025-02-20"),
        "run page (10 steps, DAG)": get(f"/runs/{ids['run']}"),
        "compare 10 runs": get("/compare?" + "&".join(f"run={r}" for r in ids["runs"])),
        "artifacts list": get("/artifacts"),
        "models list": get("/models"),
        "model page (20 versions)": get("/models/bench-model"),
        "version page": get("/models/bench-model/versions/3"),
        "monitoring": get("/monitoring"),
        "lineage index": get("/lineage"),
        "features": get("/features"),
        "baseline: list_runs + get_steps x50": naive_runs_list,
    }
    for fn in pages.values():  # warm up: templates compiled, connections open
        fn()
    times: dict[str, list[float]] = {name: [] for name in pages}
    for _ in range(args.repeat):  # interleaved: each round visits every page once
        for name, fn in pages.items():
            times[name] += time_it(fn, 1)
    print(f"\nload average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'page':40} {'median ms':>10} {'p90 ms':>8}")
    for name, values in times.items():
        values.sort()
        p90 = values[min(len(values) - 1, int(0.9 * len(values)))]
        print(f"{name:40} {pystats.median(values):10.1f} {p90:8.1f}")
    ratio = pystats.median(times["baseline: list_runs + get_steps x50"]) / pystats.median(
        times["runs list (page 1)"])
    print(f"\nruns list page vs N+1 baseline (data only, no HTML): {ratio:.1f}x "
          f"({'faster' if ratio > 1 else 'slower'})")
    print(f"runs list data with the outcome and headline queries vs without: "
          f"{outcome_cost(url, args.repeat * 4):.2f}x")
    slowest = max((n for n in times if not n.startswith("baseline")),
                  key=lambda n: pystats.median(times[n]))
    print(f"slowest page: {slowest} ({pystats.median(times[slowest]):.0f} ms median; "
          "aim < 300 ms)")
    store.close()
    client.close()
    if scratch is not None:
        scratch()


def _scratch_database(server_url: str) -> tuple[Callable[[], None], str]:
    """Create ``bench_ui_<random>`` on the server; returns its dropper and URL."""
    from sqlalchemy.engine import make_url

    from ctloop.metadata.engine import create_engine

    name = f"bench_ui_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        with admin.connect() as conn:
            if admin.dialect.name == "postgresql":
                conn.execute(sa.text(f"DROP DATABASE {name} WITH (FORCE)"))
            else:
                conn.execute(sa.text(f"DROP DATABASE {name}"))
        admin.dispose()

    return drop, url


if __name__ == "__main__":
    main()
