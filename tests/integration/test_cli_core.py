"""The command line: happy paths and one clear line for each kind of bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ctloop.testing.cli import cli, one_error_line

PIPES = Path(__file__).parent / "pipelines_for_tests.py"


def test_run_list_show_lineage_json(box: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "run", f"{PIPES}:diamond", "--param", "n=3", "--json")
    assert code == 0
    payload = json.loads(out)
    run_id = payload["run"]["id"]
    assert payload["run"]["status"] == "succeeded" and len(payload["steps"]) == 5
    code, out, _ = cli(capsys, "runs", "list", "--json")
    assert [r["id"] for r in json.loads(out)["runs"]] == [run_id]
    code, out, _ = cli(capsys, "runs", "show", run_id[:8], "--json")
    shown = json.loads(out)
    total = next(s for s in shown["steps"] if s["name"] == "total")
    art_id = next(e["artifact_id"] for e in total["events"] if e["kind"] == "output")
    code, out, _ = cli(capsys, "artifacts", "show", art_id[:10], "--verify", "--json")
    assert code == 0 and json.loads(out)["verified"] is True
    code, out, _ = cli(capsys, "lineage", art_id, "--json")
    graph = json.loads(out)
    assert graph["root"] == art_id and len(graph["steps"]) == 5
    code, out, _ = cli(capsys, "runs", "show", run_id)  # the human view renders
    assert code == 0 and "total" in out and "succeeded" in out
    code, out, _ = cli(capsys, "lineage", art_id)
    assert code == 0 and "source" in out


def test_missing_file(box: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "run", "nowhere.py:p")
    assert code != 0 and "does not exist" in one_error_line(err)


def test_unknown_pipeline_name(box: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "run", f"{PIPES}:diamnd")
    assert code != 0 and "Did you mean 'diamond'" in one_error_line(err)


def test_parameter_of_wrong_type(box: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "run", f"{PIPES}:diamond", "--param", "n=ten")
    line = one_error_line(err)
    assert code != 0 and "parameter 'n'" in line and "must be int" in line
    code, _, err = cli(capsys, "run", f"{PIPES}:diamond", "--param", "n")
    assert code != 0 and "KEY=VALUE" in one_error_line(err)


def test_bad_max_workers(box: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "run", f"{PIPES}:diamond", "--max-workers", "0")
    assert code != 0 and "--max-workers" in one_error_line(err)


def test_unknown_run_and_artifact(box: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "runs", "show", "feedbeef")
    assert code != 0 and "feedbeef" in one_error_line(err)
    code, _, err = cli(capsys, "artifacts", "show", "feedbeef")
    assert code != 0 and "feedbeef" in one_error_line(err)


def test_unreachable_database(box: Path, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTLOOP_METADATA_URL", "postgresql+psycopg://nobody@127.0.0.1:1/nodb")
    code, _, err = cli(capsys, "runs", "list")
    line = one_error_line(err)
    assert code != 0 and "127.0.0.1:1" in line


def test_wrong_database_url(box: Path, capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTLOOP_METADATA_URL", "oracle+nothing://x")
    code, _, err = cli(capsys, "runs", "list")
    assert code != 0 and one_error_line(err)


def test_failed_step_exits_nonzero_and_keeps_store(box: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (box / "fail-total").touch()
    code, _, err = cli(capsys, "run", f"{PIPES}:diamond", "--param", "n=2")
    assert code == 1 and "total was told to fail" in err and "ctloop resume" in err
    code, out, _ = cli(capsys, "runs", "list", "--json")
    (run,) = json.loads(out)["runs"]
    assert run["status"] == "failed"
    (box / "fail-total").unlink()
    code, out, _ = cli(capsys, "resume", run["id"][:12], "--json")
    assert code == 0 and json.loads(out)["run"]["status"] == "succeeded"


def test_init_scaffolds_a_project_that_runs(ctloop_home: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = cli(capsys, "init", "proj")
    assert code == 0
    assert {p.name for p in (ctloop_home / "proj").iterdir()} >= {
        "ctloop.toml", "pipeline.py", "README.md"}
    monkeypatch.chdir(ctloop_home / "proj")
    code, out, err = cli(capsys, "run", "pipeline.py", "--json")
    assert code == 0, err
    assert json.loads(out)["run"]["status"] == "succeeded"
    assert (ctloop_home / "proj" / ".ctloop" / "metadata.db").exists()
    code, _, err = cli(capsys, "init", ".")
    assert code != 0 and "not empty" in one_error_line(err)


def test_console_script_prints_one_line(ctloop_home: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "ctloop", "run", "missing.py"],
                          capture_output=True, text=True, cwd=ctloop_home, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "missing.py" in proc.stderr


def test_usage_errors_are_short(ctloop_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "nosuch")
    assert code == 2 and "No such command 'nosuch'" in err and "Traceback" not in err
    code, _, err = cli(capsys, "runs", "list", "--limit", "0")
    assert code == 2 and "--limit" in err and "Traceback" not in err


def test_edited_pipeline_file_is_reloaded(box: Path, ctloop_home: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    from ctloop.pipeline import load_pipeline

    f = ctloop_home / "p.py"
    f.write_text(PIPES.read_text())
    first, _ = load_pipeline(f"{f}:diamond")
    assert load_pipeline(f"{f}:diamond")[0] is first  # same content: same module
    f.write_text(PIPES.read_text() + "\n# edited\n")
    second, _ = load_pipeline(f"{f}:diamond")
    assert second is not first  # a long-running process sees the new code


def test_resume_keeps_the_runs_no_cache_choice(box: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "run", f"{PIPES}:diamond", "--param", "n=2")
    assert code == 0, err  # every step now has a cache entry a resume could hit
    (box / "fail-total").touch()
    code, _, err = cli(capsys, "run", f"{PIPES}:diamond", "--param", "n=2", "--no-cache")
    assert code == 1
    code, out, _ = cli(capsys, "runs", "list", "--json")
    failed = next(r for r in json.loads(out)["runs"] if r["status"] == "failed")
    assert failed["executor"]["cache"] is False
    (box / "fail-total").unlink()
    code, out, _ = cli(capsys, "resume", failed["id"][:12], "--json")
    assert code == 0
    steps = json.loads(out)["steps"]
    statuses = {s["name"]: s["status"] for s in (steps.values() if isinstance(steps, dict)
                                                 else steps)}
    assert statuses["total"] == "succeeded" and "cached" not in statuses.values(), statuses
