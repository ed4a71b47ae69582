"""The strict-typing ratchet is wired: CI runs it on a list of packages that exist.

The type check itself runs in ``.ci/run`` (``.ci/strict_types.py``), once per CI
run, rather than inside the test suite.
"""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("strict_types", ROOT / ".ci" / "strict_types.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ci_runs_the_ratchet_after_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    command = "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/pytest"
    assert command in readme
    assert ".venv/bin/pytest" in ci and ".venv/bin/python .ci/strict_types.py" in ci


def test_listed_packages_exist_and_mypy_is_strict() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["tool"]["mypy"]["strict"] is True
    assert "ignore-without-code" in config["tool"]["mypy"]["enable_error_code"]
    listed = _script().strict_packages()
    assert {"core", "metadata", "pipeline"} <= set(listed)
    assert len(listed) == len(set(listed))


def test_the_ratchet_counts_errors_of_listed_packages_only(tmp_path: Path) -> None:
    """A copy of the config over a tiny tree: one clean package, one with an error."""
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    pkg = tmp_path / "src" / "ctloop"
    for name, body in {"clean": "def f() -> int:\n    return 1\n",
                       "broken": "def f() -> int:\n    return 'one'\n"}.items():
        (pkg / name).mkdir(parents=True)
        (pkg / name / "__init__.py").write_text(body)
    (pkg / "__init__.py").write_text("")
    script = _script()
    counts, lines = script.errors_by_package(["clean", "broken"], root=tmp_path)
    assert counts == {"broken": 1}
    assert "src/ctloop/broken/__init__.py:2: error:" in lines[0] and "[return-value]" in lines[0]


def test_the_ratchet_checks_the_bodies_of_tests(tmp_path: Path) -> None:
    """tests/ is checked in the same run: an unannotated test's body counts under "tests"."""
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    pkg = tmp_path / "src" / "ctloop" / "clean"
    pkg.mkdir(parents=True)
    (pkg.parent / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("def f() -> int:\n    return 1\n")
    (tmp_path / "tests" / "unit").mkdir(parents=True)
    (tmp_path / "tests" / "unit" / "test_a.py").write_text(
        "from ctloop.clean import f\n\n\ndef test_a():\n    name: str = f()\n")
    (tmp_path / "tests" / "conftest.py").write_text("")  # a second module name, no clash
    counts, lines = _script().errors_by_package(["clean"], root=tmp_path, tests=True)
    assert counts == {"tests": 1}
    assert lines[0].startswith("tests/unit/test_a.py:5: error:") and "[assignment]" in lines[0]


def test_the_no_any_ratchet_names_modules_that_exist(tmp_path: Path) -> None:
    """The ``disallow_any_explicit`` modules are listed; a misspelt one fails the script."""
    patterns = _script().no_any_modules()
    assert {"ctloop.metadata.*", "ctloop.registry.*", "ctloop.deploy", "ctloop.monitoring.*",
            "ctloop.batch.*", "ctloop.components.*", "ctloop.ui.*", "ctloop.data.*"
            } <= set(patterns)
    config = (ROOT / "pyproject.toml").read_text().replace(
        '"ctloop.deploy",', '"ctloop.deplox",', 1)
    (tmp_path / "pyproject.toml").write_text(config)
    (tmp_path / "src").symlink_to(ROOT / "src")
    with pytest.raises(SystemExit, match=r"do not exist: \['ctloop.deplox'\]"):
        _script().no_any_modules(root=tmp_path)
