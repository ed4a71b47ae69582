"""Python models that carry their code: stored, hash-checked, imported from checked bytes."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctloop.artifacts.treefile import read_tree
from ctloop.core.errors import BackendUnavailable, IntegrityError, UserInputError
from ctloop.models import Signature, load_model, save_model
from ctloop.models.flavors import MANIFEST

FRAME = pd.DataFrame({"x": [0.1, 0.4, 0.9], "shop": ["a", "b", "a"]})

PREDICTOR = '''
"""A user's predictor module, outside every installed package."""
import numpy as np
import scipy.special

from {helpers} import offset


class Scorer:
    def __init__(self, weight):
        self.weight = weight

    def predict(self, frame):
        return scipy.special.expit(self.weight * frame["x"].to_numpy() + offset())
'''

HELPERS = '''
def offset():
    return {offset}
'''


def _write_project(root: Path, name: str, offset: float) -> Path:
    """``root/<name>.py`` (the predictor) and ``root/<name>_helpers.py`` (what it imports)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{name}.py").write_text(PREDICTOR.format(helpers=f"{name}_helpers"))
    (root / f"{name}_helpers.py").write_text(HELPERS.format(offset=offset))
    return root


def _forget(root: Path, *modules: str) -> None:
    """As in another process: the project is off sys.path and its modules unloaded."""
    while str(root) in sys.path:
        sys.path.remove(str(root))
    for name in modules:
        sys.modules.pop(name, None)
    importlib.invalidate_caches()


def _save(root: Path, name: str, folder: Path, weight: float = 2.0) -> dict[str, object]:
    sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(name)
        scorer = module.Scorer(weight)
        return save_model(scorer, folder, signature=Signature.from_frame(FRAME, ["x"]))
    finally:
        _forget(root, name, f"{name}_helpers")


def test_a_predictor_carries_its_modules_and_their_requirements(tmp_path: Path) -> None:
    root = _write_project(tmp_path / "project", "carried_a", 0.5)
    manifest = _save(root, "carried_a", tmp_path / "m")
    code, requirements = manifest["code"], manifest["requirements"]
    assert isinstance(code, dict) and isinstance(requirements, dict)
    assert sorted(code) == ["code/carried_a.py", "code/carried_a_helpers.py"]
    assert requirements["scipy"].startswith("scipy==")
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("carried_a")
    loaded = load_model(tmp_path / "m")
    expected = 1 / (1 + np.exp(-(2.0 * FRAME["x"].to_numpy() + 0.5)))
    np.testing.assert_allclose(loaded.predict(FRAME), expected)
    # Verified against the folder's hash as the registry loads it, too.
    sha = read_tree(tmp_path / "m").sha256
    np.testing.assert_allclose(load_model(tmp_path / "m", sha256=sha).predict(FRAME), expected)
    _forget(root, "carried_a", "carried_a_helpers")


def test_changed_code_is_refused(tmp_path: Path) -> None:
    root = _write_project(tmp_path / "project", "carried_b", 0.0)
    _save(root, "carried_b", tmp_path / "m")
    helpers = tmp_path / "m" / "code" / "carried_b_helpers.py"
    sha = read_tree(tmp_path / "m").sha256
    helpers.write_text(HELPERS.format(offset=99))
    with pytest.raises(IntegrityError, match=r"code file .*carried_b_helpers\.py was changed"):
        load_model(tmp_path / "m")
    with pytest.raises(IntegrityError, match="does not match the sha256 recorded"):
        load_model(tmp_path / "m", sha256=sha)
    helpers.unlink()
    with pytest.raises(IntegrityError, match=r"carried_b_helpers\.py is missing"):
        load_model(tmp_path / "m")
    assert "carried_b_helpers" not in sys.modules


def test_two_versions_with_different_code_each_run_their_own(tmp_path: Path) -> None:
    first = _write_project(tmp_path / "v1", "carried_c", 1.0)
    _save(first, "carried_c", tmp_path / "m1", weight=0.0)
    second = _write_project(tmp_path / "v2", "carried_c", -1.0)
    _save(second, "carried_c", tmp_path / "m2", weight=0.0)
    one, two = load_model(tmp_path / "m1"), load_model(tmp_path / "m2")
    np.testing.assert_allclose(one.predict(FRAME), 1 / (1 + np.exp(-1.0)))
    np.testing.assert_allclose(two.predict(FRAME), 1 / (1 + np.exp(1.0)))
    _forget(first, "carried_c", "carried_c_helpers")


def test_code_paths_store_a_package(tmp_path: Path) -> None:
    package = tmp_path / "project" / "carried_pkg"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "models" / "__init__.py").write_text("from carried_pkg.models.rule import Rule\n")
    (package / "models" / "rule.py").write_text(textwrap.dedent('''
        from . import constants
        class Rule:
            def predict(self, frame):
                return (frame["x"].to_numpy() > constants.CUT).astype(float)
    '''))
    (package / "models" / "constants.py").write_text("CUT = 0.3\n")
    sys.path.insert(0, str(package.parent))
    try:
        rule = importlib.import_module("carried_pkg.models").Rule()
        manifest = save_model(rule, tmp_path / "m", signature=Signature.from_frame(FRAME, ["x"]),
                              code_paths=[package], task="regression")
    finally:
        _forget(package.parent, "carried_pkg", "carried_pkg.models", "carried_pkg.models.rule",
                "carried_pkg.models.constants")
    assert "code/carried_pkg/models/constants.py" in manifest["code"]
    np.testing.assert_allclose(load_model(tmp_path / "m").predict(FRAME), [0.0, 1.0, 1.0])
    _forget(package.parent, "carried_pkg", "carried_pkg.models", "carried_pkg.models.rule",
            "carried_pkg.models.constants")


class InMain:
    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.zeros(len(frame))


def test_bad_code_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserInputError, match=r"code path .* does not exist"):
        save_model(InMain(), tmp_path / "b", signature=Signature.from_frame(FRAME, ["x"]),
                   code_paths=[tmp_path / "nope.py"])
    monkeypatch.setattr(InMain, "__module__", "__main__")
    with pytest.raises(UserInputError, match="defined in __main__"):
        save_model(InMain(), tmp_path / "a", signature=Signature.from_frame(FRAME, ["x"]))


def test_a_pickle_whose_module_is_gone_says_so(tmp_path: Path) -> None:
    """A model saved before code was carried: the missing module is named."""
    root = _write_project(tmp_path / "project", "carried_d", 0.0)
    _save(root, "carried_d", tmp_path / "m")
    path = tmp_path / "m" / MANIFEST
    manifest = json.loads(path.read_text())
    manifest.pop("code")
    path.write_text(json.dumps(manifest))
    with pytest.raises(BackendUnavailable, match=r"needs the module .carried_d.*carries no code"):
        load_model(tmp_path / "m")


def test_a_class_from_a_file_imported_by_path_keeps_its_module_name(tmp_path: Path) -> None:
    """ctloop imports a user's trainer file under a generated name; the code is stored so."""
    from ctloop.core.importing import import_file

    (tmp_path / "trainer.py").write_text(textwrap.dedent('''
        class Half:
            def predict(self, frame):
                return frame["x"].to_numpy() / 2
    '''))
    module = import_file(tmp_path / "trainer.py", "carried_user")
    manifest = save_model(module.Half(), tmp_path / "m", task="regression",
                          signature=Signature.from_frame(FRAME, ["x"]))
    assert list(manifest["code"]) == [f"code/{module.__name__}.py"]
    sys.modules.pop(module.__name__)
    np.testing.assert_allclose(load_model(tmp_path / "m").predict(FRAME), FRAME["x"] / 2)


def test_code_imported_lazily_works_and_unused_modules_never_run(tmp_path: Path) -> None:
    """Only what the model uses runs: a broken script in the package is never imported,
    and a module first imported inside predict still comes from the checked bytes."""
    package = tmp_path / "project" / "carried_lazy"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "model.py").write_text(textwrap.dedent('''
        class Lazy:
            def predict(self, frame):
                from carried_lazy import scale  # first imported here, after loading
                return frame["x"].to_numpy() * scale.FACTOR
    '''))
    (package / "scale.py").write_text("FACTOR = 3.0\n")
    (package / "train_script.py").write_text("raise SystemExit('a script, never imported')\n")
    sys.path.insert(0, str(package.parent))
    try:
        model = importlib.import_module("carried_lazy.model").Lazy()
        manifest = save_model(model, tmp_path / "m", task="regression",
                              signature=Signature.from_frame(FRAME, ["x"]))
    finally:
        _forget(package.parent, "carried_lazy", "carried_lazy.model")
    assert "code/carried_lazy/train_script.py" in manifest["code"]
    loaded = load_model(tmp_path / "m")
    assert "carried_lazy.train_script" not in sys.modules
    np.testing.assert_allclose(loaded.predict(FRAME), FRAME["x"] * 3.0)
    _forget(package.parent, "carried_lazy", "carried_lazy.model", "carried_lazy.scale")
