"""``ctloop init NAME --template ci``: a loop project with its tests and CI pipelines.

What it writes, and why each file is there (level 2: CI/CD of the pipeline):

- ``ctloop.toml``: a declared loop whose trainer is the project's own component
  (``trainer.py:train_model``), and ``staging`` / ``prod`` environments;
- ``trainer.py`` and ``pipeline.py``: the component and a training pipeline
  built from it, so there is project code to unit-test and integrate;
- ``tests/``: component unit tests, an integration test of the pipeline and
  of a replay of the loop (the scaffold's own tests pass as written);
- ``.github/workflows/ctloop.yml`` and ``.gitlab-ci.yml``: test, then replay
  the loop on the base commit and on the change and ``ctloop loop compare``
  them (exit 1 when worse), then build the image;
- ``landing/``: six generated weekly spans to replay.
"""

from __future__ import annotations

from pathlib import Path

from ctloop.cli.loop_template import loop_toml

__all__ = ["ci_files", "write_ci_project"]

_ENVIRONMENTS = """\

[ctloop.environments.staging]     # stores under .ctloop/environments/staging by default
# metadata = "postgresql+psycopg://ctloop@staging-db/ctloop"
# artifacts = "s3://{loop}-staging/artifacts"

[ctloop.environments.prod]
# metadata = "postgresql+psycopg://ctloop@prod-db/ctloop"
# artifacts = "s3://{loop}-prod/artifacts"
"""

_TRAINER = '''\
"""The project's trainer: the standard LightGBM trainer with this project's defaults and
checks. The loop calls it (``train = "trainer.py:train_model"`` in ctloop.toml)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ctloop.components.training import train as standard
from ctloop.core.errors import NotTrainable
from ctloop.pipeline import Dataset, Input, Model, Output, component

LABEL = "churned"
FEATURES = ["usage", "tenure", "spend", "plan"]
DEFAULTS: dict[str, Any] = {"n_estimators": 50, "learning_rate": 0.1, "n_jobs": 1}


def training_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """This project's defaults, overridden by what the loop or the caller gives."""
    return {**DEFAULTS, **(params or {})}


def check_training_frame(frame: pd.DataFrame, label: str) -> None:
    """Refuse a window that cannot train a classifier (the loop records it and waits)."""
    if label not in frame:
        raise NotTrainable(f"The training data has no {label!r} column.")
    classes = frame[label].dropna().unique()
    if len(classes) < 2:
        raise NotTrainable(f"The training window holds one class of {label!r} only "
                           f"({list(classes)}); wait for more data.")


@component(version="1")
def train_model(data: Input[Dataset], model: Output[Model], label: str, features: list[str],
                algorithm: str = "lightgbm", params: dict[str, Any] | None = None,
                seed: int = 0) -> dict[str, Any]:
    """Check the window, then train with this project's defaults."""
    check_training_frame(data.read(columns=[label]), label)
    assert standard.func is not None
    return standard.func(data=data, model=model, label=label, features=features,
                         algorithm=algorithm, params=training_params(params), seed=seed)
'''

_PIPELINE = '''\
"""The training pipeline, runnable and testable on its own: ctloop run pipeline.py"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the project's own modules

from ctloop.components.training import evaluate  # noqa: E402
from ctloop.pipeline import Dataset, Output, component, pipeline  # noqa: E402
from trainer import FEATURES, LABEL, train_model  # noqa: E402


@component(version="1")
def landed_spans(folder: str, first: int, last: int, out: Output[Dataset]) -> int:
    """Landed spans ``first`` to ``last - 1`` (in name order) as one table."""
    import pandas as pd

    files = sorted(Path(folder).glob("*.parquet"))[first:last]
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    out.write(frame)
    return len(frame)


@pipeline
def train_once(folder: str = "landing", model_name: str = "{loop}"):
    """Train on the first two spans, judge on the third (before the concept changes)."""
    model = train_model(data=landed_spans(folder=folder, first=0, last=2), label=LABEL,
                        features=FEATURES)
    evaluate(candidate=model, data=landed_spans(folder=folder, first=2, last=3),
             model_name=model_name, gate={{"floors": {{"roc_auc": 0.7}}}}, n_boot=50)
'''

_CONFTEST = '''\
"""Each test works on a fresh copy of the project, with its own state, as CI's checkout."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))  # `import trainer` in the unit tests


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / PROJECT.name
    shutil.copytree(PROJECT, root, ignore=shutil.ignore_patterns(
        ".ctloop", ".git", "__pycache__", ".pytest_cache", "deploy"))
    monkeypatch.chdir(root)
    for name in [n for n in os.environ if n.startswith("CTLOOP_")]:
        monkeypatch.delenv(name)
    return root
'''

_TEST_COMPONENTS = '''\
"""Unit tests of the project's components: plain calls, no pipeline, no stores."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import trainer
from ctloop.core.errors import NotTrainable
from ctloop.models import load_model
from ctloop.pipeline import Dataset, Model

SPAN = sorted((Path(__file__).resolve().parents[1] / "landing").glob("*.parquet"))[0]


def test_training_params_keep_the_defaults_unless_overridden() -> None:
    assert trainer.training_params(None)["n_estimators"] == 50
    assert trainer.training_params({{"n_estimators": 5}})["n_estimators"] == 5


def test_a_window_with_one_class_is_not_trainable() -> None:
    frame = pd.read_parquet(SPAN).assign(churned=0)
    with pytest.raises(NotTrainable, match="one class"):
        trainer.check_training_frame(frame, "churned")
    with pytest.raises(NotTrainable, match="no 'label' column"):
        trainer.check_training_frame(frame, "label")


def test_train_model_writes_a_model_that_predicts_probabilities(tmp_path: Path) -> None:
    frame = pd.read_parquet(SPAN)
    data = Dataset(tmp_path / "data.parquet")
    data.write(frame)
    model = Model(tmp_path / "model")
    model.path.mkdir()
    trainer.train_model(data=data, model=model, label=trainer.LABEL,
                        features=trainer.FEATURES, params={{"n_estimators": 10}})
    scores = load_model(model.path).predict(frame.head(5))
    assert scores.shape == (5,) and ((scores >= 0) & (scores <= 1)).all()
'''

_TEST_PIPELINE = '''\
"""Integration tests: the training pipeline end to end, and the loop replayed on history."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ctloop.pipeline import run

LOOP = "{loop}"


def _ctloop(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ctloop", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=900)


def test_the_training_pipeline_trains_a_blessed_model(project: Path) -> None:
    result = run("pipeline.py:train_once", {{}})
    assert result.ok, result.run.error
    assert result.steps["evaluate"].outputs["return"]["blessed"]


def test_the_loop_replays_promotes_and_compares_equal_to_itself(project: Path) -> None:
    done = _ctloop(project, "loop", "replay", LOOP, "--json")
    assert done.returncode == 0, done.stderr
    replay = json.loads(done.stdout)
    assert replay["spans"][0]["bootstrap"] and replay["spans"][0]["promoted"]
    assert all(span["status"] == "valid" for span in replay["spans"])
    (project / "replay.json").write_text(done.stdout)
    same = _ctloop(project, "loop", "compare", "replay.json", "replay.json")
    assert same.returncode == 0, same.stdout + same.stderr
'''

_GITHUB = """\
# CI/CD of the pipeline and the loop (ctloop, level 2): test the components and the
# pipeline, judge the change on history (replay the loop before and after it), build the image.
name: ctloop

on:
  push:
    branches: [main]
  pull_request:

jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - name: Install
        run: pip install -r requirements-dev.txt
      - name: Component unit tests and pipeline integration tests
        run: pytest -q tests

  replay-compare:
    needs: test
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - name: Install
        run: pip install -r requirements-dev.txt
      - name: Replay the loop on the base commit
        run: |
          BASE="${{{{ github.event.pull_request.base.sha || github.event.before }}}}"
          git cat-file -e "$BASE^{{commit}}" 2>/dev/null || BASE="$(git rev-parse HEAD~1)"
          git worktree add "$RUNNER_TEMP/base" "$BASE"
          cd "$RUNNER_TEMP/base" && ctloop loop replay {loop} --json > "$RUNNER_TEMP/base.json"
      - name: Replay the loop on this change
        run: ctloop loop replay {loop} --json > "$RUNNER_TEMP/new.json"
      - name: Compare (fails when the change is worse)
        run: >-
          ctloop loop compare "$RUNNER_TEMP/base.json" "$RUNNER_TEMP/new.json"
          --max-regression 0.01

  image:
    needs: [test, replay-compare]
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - name: Install
        run: pip install -r requirements-dev.txt
      - name: Export the deployment
        run: ctloop deploy export deploy --force
      - name: Build the image
        run: docker build -f deploy/Dockerfile -t "{loop}:${{{{ github.sha }}}}" .
"""

_GITLAB = """\
# CI/CD of the pipeline and the loop (ctloop, level 2): test, compare replays, build the image.
stages: [test, compare, image]

default:
  image: python:3.11-slim
  before_script:
    - apt-get update -qq && apt-get install -y -qq --no-install-recommends git libgomp1
    - pip install -r requirements-dev.txt

test:
  stage: test
  script:
    - pytest -q tests

replay-compare:
  stage: compare
  variables:
    GIT_DEPTH: 0
  script:
    - BASE="${{CI_MERGE_REQUEST_DIFF_BASE_SHA:-$CI_COMMIT_BEFORE_SHA}}"
    - git cat-file -e "$BASE^{{commit}}" 2>/dev/null || BASE="$(git rev-parse HEAD~1)"
    - git worktree add ../base "$BASE"
    - (cd ../base && ctloop loop replay {loop} --json > "$CI_PROJECT_DIR/base.json")
    - ctloop loop replay {loop} --json > new.json
    - ctloop loop compare base.json new.json --max-regression 0.01
  artifacts:
    when: always
    paths: [base.json, new.json]

image:
  stage: image
  image: docker:27
  services: [docker:27-dind]
  before_script:
    - apk add --no-cache python3 py3-pip git
    - pip install --break-system-packages -r requirements-dev.txt
  script:
    - ctloop deploy export deploy --force
    - docker build -f deploy/Dockerfile -t "$CI_REGISTRY_IMAGE:$CI_COMMIT_SHORT_SHA" .
"""

_README = """\
# {name}

A ctloop project set up for CI/CD of the pipeline and the loop (MLOps level 2).

    pytest -q tests                        # component unit tests, pipeline integration tests
    ctloop run pipeline.py                 # the training pipeline on its own
    ctloop loop replay {loop} --json > base.json
    # ... change trainer.py, pipeline.py or the loop in ctloop.toml ...
    ctloop loop replay {loop} --json > new.json
    ctloop loop compare base.json new.json --max-regression 0.01   # exit 1 when worse

What CI does (`.github/workflows/ctloop.yml`, `.gitlab-ci.yml`, the same three steps):

1. **test**: `pytest tests`: `tests/test_components.py` calls the components as plain
   functions; `tests/test_pipeline.py` runs the training pipeline and replays the loop.
2. **replay-compare**: replays the loop on the base commit and on the change, then
   `ctloop loop compare` fails the build when the mean live metric gets worse by more
   than `--max-regression`, naming the spans.
3. **image**: `ctloop deploy export deploy` and `docker build -f deploy/Dockerfile .`.

Promotion across environments (`[ctloop.environments]` in `ctloop.toml`):

    ctloop --env staging loop run {loop} --once      # the loop trains a champion in staging
    ctloop models test {loop}@champion --env staging --p99-ms 50
    ctloop promote {loop} --from staging --to prod --test   # checked, then a hash-checked
                                                            # bundle with its evidence

`requirements-dev.txt` is what CI installs; the image installs the project's
`requirements.txt` if you add one.
"""


def _toml(loop: str) -> str:
    """A loop whose trainer is the project's component, and the environments."""
    header = ("ctloop settings. A loop whose trainer is this project's own component, and the\n"
              "environments a model moves through (each has its own stores; see the README).")
    return (loop_toml(loop, header=header, retrain_on=["decay"],
                      train='"trainer.py:train_model"')
            + _ENVIRONMENTS.format(loop=loop))


def ci_files(name: str, loop: str) -> dict[str, str]:
    """Every file of the template but the generated spans, path -> text."""
    return {
        "ctloop.toml": _toml(loop),
        "trainer.py": _TRAINER,
        "pipeline.py": _PIPELINE.format(loop=loop),
        "tests/conftest.py": _CONFTEST,
        "tests/test_components.py": _TEST_COMPONENTS.format(),
        "tests/test_pipeline.py": _TEST_PIPELINE.format(loop=loop),
        ".github/workflows/ctloop.yml": _GITHUB.format(loop=loop),
        ".gitlab-ci.yml": _GITLAB.format(loop=loop),
        "requirements-dev.txt": "ctloop\npytest\n",
        "README.md": _README.format(name=name, loop=loop),
        ".gitignore": ".ctloop/\ndeploy/\n__pycache__/\n",
    }


def write_ci_project(root: Path, loop: str, *, force: bool = False) -> list[str]:
    """Write the template into ``root``; returns the files written (existing ones are kept
    unless ``force``)."""
    from ctloop.loop.sample import write_sample_spans

    written = []
    for relative, text in ci_files(root.resolve().name, loop).items():
        path = root / relative
        if path.exists() and not force:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(relative)
    write_sample_spans(root / "landing", spans=6, rows=600, change_at=3, shift_at=None)
    return written
