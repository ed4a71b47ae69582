"""``ctloop init NAME --template ci``: the scaffold's own tests pass as written, in a fresh
process, and its CI files have the expected shape (test -> replay-compare -> image)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ctloop.testing.cli import cli
from ctloop.testing.services import user_environment


def _runs(steps: list[dict[str, object]]) -> str:
    return "\n".join(str(step.get("run", "")) for step in steps)


@pytest.mark.slow
def test_the_ci_template_tests_pass_and_its_workflows_have_the_expected_shape(
    ctloop_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "init", "shop", "--template", "ci")
    assert code == 0, err
    root = ctloop_home / "shop"
    for name in ("ctloop.toml", "trainer.py", "pipeline.py", "tests/test_components.py",
                 "tests/test_pipeline.py", "README.md", "requirements-dev.txt"):
        assert (root / name).is_file(), name
    assert len(list((root / "landing").glob("*.parquet"))) == 6

    github = yaml.safe_load((root / ".github/workflows/ctloop.yml").read_text())
    assert set(github.get("on") or github[True]) == {"push", "pull_request"}  # YAML 1.1: on
    jobs = github["jobs"]
    assert list(jobs) == ["test", "replay-compare", "image"]
    assert jobs["replay-compare"]["needs"] == "test"
    assert jobs["image"]["needs"] == ["test", "replay-compare"]
    assert "pytest -q tests" in _runs(jobs["test"]["steps"])
    compare = _runs(jobs["replay-compare"]["steps"])
    assert compare.count("ctloop loop replay shop --json") == 2
    assert "ctloop loop compare" in compare and "--max-regression" in compare
    assert "git worktree add" in compare
    image = _runs(jobs["image"]["steps"])
    assert "ctloop deploy export deploy" in image and "docker build -f deploy/Dockerfile" in image
    assert all(step.get("uses") or step.get("run") for job in jobs.values()
               for step in job["steps"])

    gitlab = yaml.safe_load((root / ".gitlab-ci.yml").read_text())
    assert gitlab["stages"] == ["test", "compare", "image"]
    assert {gitlab[j]["stage"] for j in ("test", "replay-compare", "image")} == {
        "test", "compare", "image"}
    assert any("ctloop loop compare" in line for line in gitlab["replay-compare"]["script"])
    assert any("docker build" in line for line in gitlab["image"]["script"])

    # the scaffold's tests, as a user runs them: pytest in the project, a fresh process
    env = user_environment()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "5 passed" in done.stdout
    # a second init into the same folder is refused unless --force
    code, _, err = cli(capsys, "init", "shop", "--template", "ci")
    assert code == 2 and "not empty" in err
