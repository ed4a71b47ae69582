"""``ctloop triggers`` and ``ctloop monitor`` from the command line, on a real project."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from ctloop.monitoring import PredictionRecord, open_prediction_log
from ctloop.testing.cli import cli, one_error_line

PIPES = Path(__file__).with_name("triggers_pipelines.py")




@pytest.fixture
def project(ctloop_home: Path) -> Path:
    (ctloop_home / "pipes.py").write_text(PIPES.read_text())
    (ctloop_home / "landing").mkdir()
    (ctloop_home / "ctloop.toml").write_text(
        """
[ctloop.triggers.landing]
pipeline = "pipes.py:ingest"
params = { path = "{path}" }
new_data = "landing/*.parquet"

[ctloop.triggers.by_hand]
pipeline = "pipes.py:broken"
manual = true
"""
    )
    return ctloop_home


def test_triggers_list_run_once_and_fire(project: Path, capsys) -> None:
    code, out, _ = cli(capsys, "triggers", "list", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)["triggers"]}
    assert rows["landing"]["kind"] == "new_data" and rows["by_hand"]["kind"] == "manual"
    pd.DataFrame({"x": [1, 2]}).to_parquet(project / "landing" / "a.parquet")
    code, out, _ = cli(capsys, "triggers", "run", "--once", "--json")
    assert code == 0
    (firing,) = json.loads(out)["firings"]
    assert firing["info"]["name"] == "a.parquet" and firing["status"] == "succeeded"
    code, out, _ = cli(capsys, "triggers", "run", "--once")
    assert code == 0 and "nothing to do" in out
    code, out, _ = cli(capsys, "triggers", "fire", "by_hand")
    assert code == 1 and "told to fail" in out
    code, out, _ = cli(capsys, "triggers", "list")
    assert code == 0 and "landing" in out and "failed" in out
    code, _, err = cli(capsys, "triggers", "fire", "nope")
    assert code == 2 and "No trigger named 'nope'" in one_error_line(err)


def test_bad_trigger_table_is_one_line(project: Path, capsys) -> None:
    (project / "ctloop.toml").write_text(
        '[ctloop.triggers.x]\npipeline = "pipes.py:hello"\ncron = "every day"\n')
    code, _, err = cli(capsys, "triggers", "list")
    assert code == 2 and "not a valid cron expression" in one_error_line(err)


def test_two_controller_processes_never_double_fire(project: Path) -> None:
    for i in range(4):
        pd.DataFrame({"x": [i]}).to_parquet(project / "landing" / f"f{i}.parquet")
    cmd = [sys.executable, "-m", "ctloop", "triggers", "run", "--once", "--json"]
    procs = [subprocess.Popen(cmd, cwd=project, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    names = sorted(f["info"]["name"] for o in outs for f in o["firings"])
    assert names == [f"f{i}.parquet" for i in range(4)]


def _serve(log_dir: Path, n: int = 400) -> None:
    log = open_prediction_log(log_dir)
    t0 = datetime(2013, 7, 1, tzinfo=UTC)
    log.append([PredictionRecord(f"r{i}", "delays", 1, "champion", t0 + timedelta(minutes=i),
                                 (i % 10) / 10, {"x": float(i % 10), "y": float(i)})
                for i in range(n)])
    log.add_labels(pd.DataFrame({"request_id": [f"r{i}" for i in range(n)],
                                 "label": [float(i % 10 >= 5) for i in range(n)]}))
    log.close()


def test_monitor_commands(ctloop_home: Path, capsys) -> None:
    _serve(ctloop_home / ".ctloop" / "predictions")
    code, out, _ = cli(capsys, "monitor", "log", "delays", "--limit", "3", "--labels", "--json")
    rows = json.loads(out)["rows"]
    assert code == 0 and [r["request_id"] for r in rows] == ["r397", "r398", "r399"]
    assert rows[0]["label"] == 1.0
    code, out, _ = cli(capsys, "monitor", "decay", "delays", "--baseline", "0.9", "--json")
    result = json.loads(out)
    assert code == 0 and result["value"] == pytest.approx(1.0) and not result["fired"]
    code, out, _ = cli(capsys, "monitor", "decay", "delays", "--baseline", "0.9",
                       "--since", "2013-07-01T06:00", "--min-labels", "50")
    assert code == 3 and "NO DATA" in out and "need 50" in out  # 40 labels: not judged
    pd.DataFrame({"x": [100.0 + i for i in range(500)], "y": [float(i) for i in range(500)]}
                 ).to_parquet(ctloop_home / "ref.parquet")
    code, out, _ = cli(capsys, "monitor", "drift", "delays", "--reference", "ref.parquet",
                       "--record")
    assert code == 1 and "FIRED" in out
    code, out, _ = cli(capsys, "artifacts", "list", "--type", "MonitorReport", "--json")
    assert len(json.loads(out)["artifacts"]) == 1
    code, _, err = cli(capsys, "monitor", "decay", "ghost")
    assert code == 2 and "No model named 'ghost'" in one_error_line(err)
    code, out, _ = cli(capsys, "monitor", "drift", "delays", "--reference", "missing.parquet")
    assert code == 3 and "does not exist" in out  # no_data, with the reason
    code, _, err = cli(capsys, "monitor", "log", "delays", "--since", "yesterday-ish")
    assert code == 2 and "--since must be an ISO date" in one_error_line(err)


def test_monitor_log_all_shows_what_monitors_skip(ctloop_home: Path, capsys) -> None:
    """Refused requests and explanations are logged unserved; ``--all`` shows them."""
    folder = ctloop_home / ".ctloop" / "predictions"
    _serve(folder, n=5)
    log = open_prediction_log(folder)
    t0 = datetime(2013, 7, 2, tzinfo=UTC)
    log.append([PredictionRecord("bad", "delays", 0, "", t0, float("nan"), served=False,
                                 status=422, error="rows: empty row", protocol="v1"),
                PredictionRecord("why", "delays", 1, "champion", t0, 0.5, {"x": 1.0},
                                 served=False, protocol="v1-explain")])
    log.close()
    code, out, _ = cli(capsys, "monitor", "log", "delays", "--json")
    assert code == 0 and [r["request_id"] for r in json.loads(out)["rows"]][-1] == "r4"
    code, out, _ = cli(capsys, "monitor", "log", "delays", "--all", "--json")
    rows = {r["request_id"]: r for r in json.loads(out)["rows"]}
    assert rows["bad"]["status"] == 422 and rows["why"]["protocol"] == "v1-explain"
    code, out, _ = cli(capsys, "monitor", "log", "delays", "--all")
    assert code == 0 and "predictions of delays (newest 7)" in out
