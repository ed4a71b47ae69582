"""A replay you can look into: its last lines name the commands, ``--replay`` reads its
sandbox, an empty listing says where the replay's runs are, and a loop declared in
Python (the demo's) is found by ``loop status`` from its memory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ctloop.testing.cli import cli, one_error_line
from ctloop.testing.loops import churn_loop

pytestmark = pytest.mark.slow

LOOP = churn_loop(
    'window = "2 spans"',
    'train = { flavor = "lightgbm", params = { n_estimators = 10 } }',
)


@pytest.fixture
def project(project: Path) -> Path:
    """The shared three-span project, with the loop declared."""
    (project / "ctloop.toml").write_text(LOOP)
    return project


def _text(out: str) -> str:
    return " ".join(out.split())


def test_a_replay_names_the_commands_that_look_into_it(
    project: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = cli(capsys, "loop", "replay", "churn")
    assert code == 0, err
    lines = [line.strip() for line in out.splitlines()]
    assert lines[-5:] == ["look into it:", "ctloop loop status churn --replay",
                          "ctloop runs list --replay churn", "ctloop models list --replay churn",
                          "ctloop ui --replay churn"]
    code, out, err = cli(capsys, "loop", "status", "churn")  # nothing ran live
    assert code == 0, err
    text = _text(out)
    assert "vNone" not in text and "champion none yet" in text
    assert "no spans handled yet in" in text
    assert "ctloop loop status churn --replay" in text
    code, out, err = cli(capsys, "loop", "status", "churn", "--replay", "--json")
    assert code == 0, err
    status = json.loads(out)
    assert status["source"] == "replay" and status["champion"] == 1
    assert [s["span"] for s in status["spans"]] == ["week-00", "week-01", "week-02"]
    code, out, err = cli(capsys, "loop", "status", "churn", "--replay")
    assert code == 0 and "week-02" in out and "(replay sandbox)" in out
    code, out, err = cli(capsys, "runs", "list", "--replay", "churn", "--json")
    assert code == 0, err
    pipelines = {r["pipeline"] for r in json.loads(out)["runs"]}
    assert pipelines == {"loop_ingest", "loop_train"}
    code, out, err = cli(capsys, "models", "list", "--replay", "churn", "--json")
    assert code == 0 and [m["name"] for m in json.loads(out)] == ["churn"]
    code, out, err = cli(capsys, "runs", "list")  # the live project: empty, and says why
    assert code == 0, err
    assert "the replay's are in" in _text(out) and "ctloop runs list --replay churn" in _text(
        out)
    code, out, err = cli(capsys, "models", "list")
    assert code == 0 and "ctloop models list --replay churn" in _text(out)
    line = one_error_line(cli(capsys, "runs", "list", "--replay", "nosuch")[2])
    assert "No replay of loop 'nosuch'" in line and "replays: churn" in line


def test_a_loop_declared_in_python_is_found_by_its_memory(
    project: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """The demo's loop is a ``LoopSpec`` in Python replayed into the project's stores:
    ``ctloop loop status`` finds it there though ctloop.toml does not declare it."""
    from ctloop.core.settings import load_settings
    from ctloop.loop.declaration import parse_loop
    from ctloop.loop.replay import replay

    spec = parse_loop("pyloop", {"model": "py-model", "data": "landing/*.parquet",
                                 "event_time": "ts", "label": "churned",
                                 "window": "1 span",
                                 "train": {"params": {"n_estimators": 10}}}, root=project)
    replay(spec, load_settings(), sandbox=False)
    code, out, err = cli(capsys, "loop", "status", "pyloop", "--json")
    assert code == 0, err
    status = json.loads(out)
    assert (status["model"], len(status["spans"])) == ("py-model", 3)
    assert status["champion"] is not None and status["source"] == "live"
    assert [t["name"] for t in status["triggers"]] == ["new_span"]
    line = one_error_line(cli(capsys, "loop", "status", "nosuch")[2])
    assert "No loop named 'nosuch' in ctloop.toml" in line


def test_a_loop_command_where_there_is_no_ctloop_toml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CTLOOP_HOME", raising=False)
    for command in (["loop", "replay", "shop"], ["loop", "status", "shop"],
                    ["loop", "run", "shop", "--once"]):
        code, _, err = cli(capsys, *command)
        assert code == 2
        assert f"there is no ctloop.toml in {tmp_path.resolve()}" in one_error_line(err)
    assert not (tmp_path / ".ctloop").exists()
