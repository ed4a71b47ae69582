"""Metadata and artifact store overhead against the raw work underneath, measured in the same run.

    .venv/bin/python bench/bench_stores.py [--steps 1000] [--mb 64]

Metadata (SQLite, WAL): ``save_step`` / ``find_cached_step`` / ``get_run``
against raw ``sqlite3`` doing the same insert/select with the same pragmas,
one transaction per call. Artifacts (local folder): ``put`` and ``get`` of a
file against ``shutil.copyfile`` + ``hashlib.sha256``, the least work an
atomic, hash-checked store must do.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

from ctloop.artifacts import open_artifact_store
from ctloop.metadata import RunRecord, StepRecord, StepStatus, new_id, open_metadata_store


def _time(fn, n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - started) / n


def bench_metadata(folder: Path, n: int) -> None:
    store = open_metadata_store(f"sqlite:///{folder / 'ctloop.db'}")
    run = store.create_run(RunRecord(id=new_id(), pipeline="bench", pipeline_version="v"))

    def save(i: int) -> None:
        store.save_step(
            StepRecord(
                id=new_id(),
                run_id=run.id,
                name=f"s{i}",
                component="c",
                component_version="1",
                status=StepStatus.SUCCEEDED,
                cache_key=f"k{i}",
                parameters={"i": i},
            )
        )

    ours = {
        "save_step": _time(save, n),
        "find_cached_step": _time(lambda i: store.find_cached_step(f"k{i}"), n),
        "get_run": _time(lambda i: store.get_run(run.id), n),
    }
    store.close()

    raw = sqlite3.connect(folder / "raw.db", isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=NORMAL")
    raw.execute(
        "CREATE TABLE steps (pk INTEGER PRIMARY KEY, id TEXT UNIQUE, run_id TEXT, "
        "name TEXT, status TEXT, cache_key TEXT, parameters TEXT, UNIQUE(run_id, name))"
    )
    raw.execute("CREATE INDEX ix_ck ON steps(cache_key)")
    raw.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, body TEXT)")
    raw.execute("INSERT INTO runs VALUES ('r', '{}')")

    def raw_save(i: int) -> None:
        raw.execute("BEGIN IMMEDIATE")
        raw.execute("UPDATE steps SET status='succeeded' WHERE run_id='r' AND name=?", (f"s{i}",))
        raw.execute(
            "INSERT INTO steps (id, run_id, name, status, cache_key, parameters) "
            "VALUES (?, 'r', ?, 'succeeded', ?, ?)",
            (uuid.uuid4().hex, f"s{i}", f"k{i}", json.dumps({"i": i})),
        )
        raw.execute("COMMIT")

    def raw_select(sql: str, arg: str) -> None:
        raw.execute("BEGIN")
        raw.execute(sql, (arg,)).fetchall()
        raw.execute("COMMIT")

    base = {
        "save_step": _time(raw_save, n),
        "find_cached_step": _time(
            lambda i: raw_select(
                "SELECT * FROM steps WHERE cache_key=? AND status='succeeded' "
                "ORDER BY pk DESC LIMIT 1",
                f"k{i}",
            ),
            n,
        ),
        "get_run": _time(lambda i: raw_select("SELECT * FROM runs WHERE id=?", "r"), n),
    }
    raw.close()
    print(f"metadata store, SQLite WAL, {n} calls each")
    for op in ours:
        print(
            f"  {op:18s} ctloop {ours[op] * 1e3:7.3f} ms   raw sqlite3 {base[op] * 1e3:7.3f} ms"
            f"   ratio {ours[op] / base[op]:5.1f}x"
        )


def bench_artifacts(folder: Path, mb: int) -> None:
    source = folder / "payload.bin"
    source.write_bytes(os.urandom(mb << 20))
    store = open_artifact_store(str(folder / "store"))
    started = time.perf_counter()
    stored = store.put(source)
    put_s = time.perf_counter() - started
    started = time.perf_counter()
    store.get(stored.uri, stored.sha256)
    first_get_s = time.perf_counter() - started  # memo primed by put: a stat only
    store2 = open_artifact_store(str(folder / "store"))  # a fresh process: must re-hash
    started = time.perf_counter()
    store2.get(stored.uri, stored.sha256)
    cold_get_s = time.perf_counter() - started

    started = time.perf_counter()
    shutil.copyfile(source, folder / "copy.bin")
    digest = hashlib.sha256()
    with open(folder / "copy.bin", "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    raw_put_s = time.perf_counter() - started
    started = time.perf_counter()
    digest = hashlib.sha256()
    with open(folder / "copy.bin", "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    raw_hash_s = time.perf_counter() - started
    print(f"artifact store, local folder, {mb} MiB file")
    print(
        f"  put             ctloop {put_s * 1e3:8.1f} ms   copy+sha256 {raw_put_s * 1e3:8.1f} ms"
        f"   ratio {put_s / raw_put_s:5.2f}x"
    )
    print(
        f"  get (new store) ctloop {cold_get_s * 1e3:8.1f} ms"
        f"   sha256      {raw_hash_s * 1e3:8.1f} ms"
        f"   ratio {cold_get_s / raw_hash_s:5.2f}x"
    )
    print(f"  get (verified)  ctloop {first_get_s * 1e3:8.3f} ms   (stat-checked memo, no re-hash)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--mb", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_metadata(Path(tmp), args.steps)
        bench_artifacts(Path(tmp), args.mb)


if __name__ == "__main__":
    main()
