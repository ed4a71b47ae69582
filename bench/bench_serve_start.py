"""How fast ``ctloop serve`` starts and how much memory one served model holds.

    .venv/bin/python bench/bench_serve_start.py [--runs 5] [--baseline SRC] [--no-kserve]

Spawn to the first correct answer (the v2 body of one row, checked against the
booster within 1e-9), then the resident memory of the server's process group
(VmRSS) right after that answer and again after 200 more answers (the request
log's writer has run by then). The model is ``bench_serving``'s 200-tree
LightGBM model with its compiled trees cached, request log on. Servers:

- ``ctloop``: this checkout (``src/`` first on ``PYTHONPATH``);
- ``baseline``: the ctloop sources in ``--baseline`` (e.g. a ``git worktree`` of
  main), to see what a change bought in the same run;
- ``kserve``: KServe 0.21's Python server loading the booster as lgbserver does,
  tuned as in ``bench_serving`` (``ctloop.testing.peers``, cached venv).

Runs are interleaved (the order flips each round) and the load average is
printed with each round: the machine is shared, so quote ratios from one run.
Each server starts once untimed first, so every timed start finds its bytecode
compiled (ctloop's in a cache of the run's folder, as an installed package has
it) and its files in the page cache.
Also prints the heavy modules each ctloop imported before answering (from
``-X importtime``, one extra untimed start; read right after the answer, so the
request log's writer may just have added pyarrow and pandas).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_serving as serving  # the model, the servers and the answer check

from ctloop.testing.peers import ensure_peer

HEAVY = ("pandas", "pyarrow", "sklearn", "scipy", "lightgbm", "alembic", "sqlalchemy",
         "duckdb", "grpc", "fsspec", "rich", "fastapi", "pydantic")


def ctloop_server(name: str, root: Path, src: Path) -> serving.Server:
    env = serving.bytecode_cached({**os.environ, **serving.TUNED, "PYTHONPATH": str(src),
                                   "CTLOOP_HOME": str(root / ".ctloop")}, root)
    command = [sys.executable, "-m", "ctloop", "serve", "flights",
               "--port", "{port}", "--log-level", "warning", "--reload-interval", "0"]
    v2 = "/v2/models/flights/infer"
    return serving.Server(name, command, env, root, "/ready", v2, serving.v2_body)


def kserve_server(root: Path, model: Path) -> serving.Server:
    python = ensure_peer(serving.KSERVE_SERVER)
    script = root / "kserve_flights.py"
    script.write_text(serving.KSERVE_MODEL)
    v2 = "/v2/models/flights/infer"
    return serving.Server(
        "kserve", [str(python), str(script), "--model_name", "flights", "--model_path",
                   str(model / "model.txt"), "--http_port", "{port}", "--grpc_port", "{port2}",
                   "--enable_grpc", "false", "--enable_latency_logging", "false"],
        {**os.environ, **serving.TUNED}, root, "/v2/models/flights/ready", v2, serving.v2_body)


def imported_before_answer(server: serving.Server) -> list[str]:
    """The heavy top-level packages in the server's import report (stderr, ``-X importtime``)."""
    server.errors.seek(0)
    names = set()
    for line in server.errors.read().splitlines():
        if line.startswith("import time:"):
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return [n for n in HEAVY if n in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="cold starts per server")
    parser.add_argument("--baseline", type=Path, help="another ctloop src/ to compare with")
    parser.add_argument("--no-kserve", action="store_true")
    args = parser.parse_args()
    import lightgbm

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model, sample = serving.setup_numeric(root)
        booster = lightgbm.Booster(model_file=str(model / "model.txt"))
        here = Path(__file__).resolve().parent.parent / "src"
        targets = [ctloop_server("ctloop", root, here)]
        if args.baseline is not None:
            targets.append(ctloop_server("baseline", root, args.baseline.resolve()))
        if not args.no_kserve:
            targets.append(kserve_server(root, model))
        starts: dict[str, list[float]] = {}
        rss_first: dict[str, list[float]] = {}
        rss_later: dict[str, list[float]] = {}
        heavy: dict[str, list[str]] = {}
        one = sample.head(1)
        for server in targets:  # untimed: bytecode cached, files in the page cache
            server = replace(server)
            try:
                server.start()
                serving.check_answers(server, [one], booster)
            finally:
                server.stop()
        for n in range(args.runs):
            line = []
            for server in targets if n % 2 == 0 else targets[::-1]:
                server = replace(server)  # a fresh stderr file per start
                began = time.perf_counter()
                try:
                    server.start()
                    serving.check_answers(server, [one], booster)
                    took = time.perf_counter() - began
                    first = serving.rss_mb(server)
                    for _ in range(200):
                        serving.check_answers(server, [sample], booster)
                    later = serving.rss_mb(server)
                finally:
                    server.stop()
                starts.setdefault(server.name, []).append(took)
                rss_first.setdefault(server.name, []).append(first)
                rss_later.setdefault(server.name, []).append(later)
                line.append(f"{server.name} {took:.2f} s {first:.0f}/{later:.0f} MB")
            load = " ".join(f"{x:.1f}" for x in os.getloadavg())
            print(f"[round {n + 1}] load {load} | " + " | ".join(line), flush=True)
        for server in targets:  # once more with Python's import report, not timed
            if server.name == "kserve":
                continue
            server = replace(server, command=[*server.command[:1], "-X", "importtime",
                                              *server.command[1:]])
            try:
                server.start()
                serving.check_answers(server, [one], booster)
                heavy[server.name] = imported_before_answer(server)
            finally:
                server.stop()
    med = statistics.median
    print("\nmedian of", args.runs, "(spawn -> first correct answer; RSS after it / after "
          "200 more answers)")
    for name in starts:
        print(f"  {name:<9} {med(starts[name]):5.2f} s   RSS {med(rss_first[name]):4.0f} MB / "
              f"{med(rss_later[name]):4.0f} MB")
    for name in starts:
        if name == "ctloop":
            continue
        print(f"  ctloop / {name:<9} start {med(starts['ctloop']) / med(starts[name]):.2f}x   "
              f"RSS {med(rss_first['ctloop']) - med(rss_first[name]):+.0f} MB / "
              f"{med(rss_later['ctloop']) - med(rss_later[name]):+.0f} MB")
    for name, modules in heavy.items():
        shown = ", ".join(modules) or "none of " + ", ".join(HEAVY)
        print(f"  {name} imported before answering: {shown}")


if __name__ == "__main__":
    main()
