"""Save and load models of several libraries ("flavors") behind one interface.

A saved model is a folder holding the model file and ``ctloop-model.json``:
the flavor, the task, the signature, the packages (and versions) it needs and
the sha256 of the model file. Loading checks the hash (``IntegrityError`` when
the file changed), fails with the install command when a needed package is
missing and warns when an installed version differs from the one it was saved
with. The folder's bytes depend only on the model, so the same fit gives the
same hash.

scikit-learn and plain Python predictors are pickled (joblib). Unpickling runs
code, and a manifest beside the model proves nothing (whoever can plant a
pickle can rewrite it). So a model from the artifact store is loaded with the
sha256 the metadata store recorded for its folder (``load_model(path,
sha256=...)``, which the registry does): every file is read once into memory,
hashed as the store hashes folders, and only those checked bytes are parsed —
nothing is read from disk again between the check and the unpickling.
LightGBM and XGBoost models use their libraries' own text/binary formats.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import joblib
import numpy as np
import pandas as pd

from ctloop.artifacts.treefile import read_tree
from ctloop.core.errors import BackendUnavailable, IntegrityError, NotFound, UserInputError
from ctloop.core.hashing import hash_bytes, hash_file, stable_json
from ctloop.core.plugins import require
from ctloop.models.signature import Signature

if TYPE_CHECKING:
    from ctloop.models.compiled import CompiledPredictor

__all__ = [
    "FLAVORS",
    "MANIFEST",
    "TASKS",
    "LoadedModel",
    "ModelEnvironmentWarning",
    "detect_flavor",
    "load_model",
    "read_manifest",
    "save_model",
]

MANIFEST = "ctloop-model.json"
TASKS = ("classification", "regression")


class ModelEnvironmentWarning(UserWarning):
    """A package the model was saved with has a different version here."""


def as_categories(frame: pd.DataFrame) -> pd.DataFrame:
    """String columns as pandas categoricals, the form LightGBM and XGBoost read natively."""
    out = frame.copy()
    for column in out.columns:
        dtype = out[column].dtype
        if not (
            pd.api.types.is_numeric_dtype(dtype)
            or pd.api.types.is_bool_dtype(dtype)
            or isinstance(dtype, pd.CategoricalDtype)
        ):
            out[column] = out[column].astype("category")
    return out


class Flavor(Protocol):
    name: ClassVar[str]
    packages: ClassVar[tuple[str, ...]]  # modules needed to load the model
    file_name: ClassVar[str]

    def save(self, model: Any, path: Path) -> None: ...
    def load(self, data: bytes) -> Any:
        """The model from the (already verified) bytes of its file."""
        ...

    def predict(self, model: Any, frame: pd.DataFrame, task: str) -> np.ndarray: ...


class SklearnFlavor:
    """Any scikit-learn estimator or pipeline, pickled with joblib."""

    name: ClassVar[str] = "sklearn"
    packages: ClassVar[tuple[str, ...]] = ("sklearn", "numpy", "pandas")
    file_name: ClassVar[str] = "model.joblib"

    def save(self, model: Any, path: Path) -> None:
        joblib.dump(model, path)

    def load(self, data: bytes) -> Any:
        return joblib.load(io.BytesIO(data))

    def predict(self, model: Any, frame: pd.DataFrame, task: str) -> np.ndarray:
        if task == "classification":
            return np.asarray(model.predict_proba(frame))[:, 1]
        return np.asarray(model.predict(frame), dtype=float)


class PythonFlavor(SklearnFlavor):
    """A plain Python object with ``predict(frame) -> array``, pickled with joblib.

    Its class must be importable where the model is loaded (a module, not a
    notebook cell).
    """

    name = "python"
    packages = ("numpy", "pandas")
    file_name = "predictor.joblib"

    def predict(self, model: Any, frame: pd.DataFrame, task: str) -> np.ndarray:
        return np.asarray(model.predict(frame), dtype=float)


class LightGBMFlavor:
    """A LightGBM booster (or its scikit-learn wrapper) in LightGBM's text format."""

    name: ClassVar[str] = "lightgbm"
    packages: ClassVar[tuple[str, ...]] = ("lightgbm", "numpy", "pandas")
    file_name: ClassVar[str] = "model.txt"

    def save(self, model: Any, path: Path) -> None:
        booster = getattr(model, "booster_", model)
        booster.save_model(str(path))

    def load(self, data: bytes) -> Any:
        lgb = require("lightgbm", "all", "Loading a LightGBM model")
        return lgb.Booster(model_str=data.decode("utf-8"))

    def predict(self, model: Any, frame: pd.DataFrame, task: str) -> np.ndarray:
        # A binary-objective booster already returns the positive-class probability.
        return np.asarray(model.predict(as_categories(frame)), dtype=float)


class XGBoostFlavor:
    """An XGBoost booster (or its scikit-learn wrapper) in UBJSON, categories included."""

    name: ClassVar[str] = "xgboost"
    packages: ClassVar[tuple[str, ...]] = ("xgboost", "numpy", "pandas")
    file_name: ClassVar[str] = "model.ubj"

    def save(self, model: Any, path: Path) -> None:
        booster = model.get_booster() if hasattr(model, "get_booster") else model
        booster.save_model(str(path))

    def load(self, data: bytes) -> Any:
        xgb = require("xgboost", "boost", "Loading an XGBoost model")
        booster = xgb.Booster()
        booster.load_model(bytearray(data))
        return booster

    def predict(self, model: Any, frame: pd.DataFrame, task: str) -> np.ndarray:
        xgb = require("xgboost", "boost", "Predicting with an XGBoost model")
        matrix = xgb.DMatrix(as_categories(frame), enable_categorical=True)
        return np.asarray(model.predict(matrix), dtype=float)


FLAVORS: dict[str, Flavor] = {
    f.name: f for f in (SklearnFlavor(), PythonFlavor(), LightGBMFlavor(), XGBoostFlavor())
}


def detect_flavor(model: Any) -> str:
    """The flavor name for a model object, from the library that defines it."""
    module = type(model).__module__.split(".")[0]
    if module in ("lightgbm", "xgboost"):
        return module
    if module == "sklearn" or (hasattr(model, "get_params") and hasattr(model, "fit")):
        return "sklearn"
    if callable(getattr(model, "predict", None)):
        return "python"
    raise UserInputError(
        f"Cannot save a {type(model).__name__}: it is not a scikit-learn, LightGBM or XGBoost "
        "model and has no predict(frame) method."
    )


@functools.cache
def _module_distributions() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


def _installed(module: str) -> tuple[str, str] | None:
    """(distribution, version) providing import name ``module``, or None if not installed."""
    if importlib.util.find_spec(module) is None:
        return None
    for dist in _module_distributions().get(module, []):
        try:
            return dist, importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return module, ""


def _flavor(name: str) -> Flavor:
    try:
        return FLAVORS[name]
    except KeyError:
        raise UserInputError(
            f"Unknown model flavor {name!r}; known flavors are {sorted(FLAVORS)}."
        ) from None


def save_model(
    model: Any,
    path: str | Path,
    *,
    signature: Signature,
    task: str = "classification",
    flavor: str | None = None,
    requirements: dict[str, str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Save ``model`` into the folder ``path`` and return its manifest.

    ``requirements`` adds modules a Python predictor needs, as import name ->
    pip requirement (``{"scipy": "scipy==1.14.1"}``); the flavor's own are added.
    ``metadata`` is stored as given (JSON-able: label, parameters, seed...).
    """
    if task not in TASKS:
        raise UserInputError(f"The 'task' must be one of {TASKS}. Got {task!r}.")
    flavor_name = flavor or detect_flavor(model)
    impl = _flavor(flavor_name)
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    model_file = folder / impl.file_name
    impl.save(model, model_file)
    packages = {}
    for module in impl.packages:
        dist, version = _installed(module) or (module, "")
        packages[module] = f"{dist}=={version}" if version else dist
    packages.update(requirements or {})
    manifest = {
        "format": 1,
        "flavor": flavor_name,
        "task": task,
        "model_file": impl.file_name,
        "sha256": hash_file(model_file),
        "signature": signature.to_dict(),
        "requirements": dict(sorted(packages.items())),
        "metadata": metadata or {},
    }
    (folder / MANIFEST).write_text(stable_json(manifest))
    return manifest


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of a saved model folder."""
    manifest_path = Path(path) / MANIFEST
    if not manifest_path.is_file():
        raise NotFound(
            f"{path} is not a saved ctloop model (no {MANIFEST}); save it with "
            "ctloop.models.save_model."
        )
    return _parse_manifest(manifest_path.read_bytes(), manifest_path)


def _parse_manifest(data: bytes, where: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{where} is not valid JSON ({exc}); the model is damaged.") from exc
    if not isinstance(manifest, dict):
        raise IntegrityError(f"{where} is not a JSON object; the model is damaged.")
    return manifest


def _check_requirements(requirements: dict[str, str], where: str) -> None:
    for module, spec in requirements.items():
        wanted_dist, _, wanted = spec.partition("==")
        found = _installed(module)
        if found is None:
            raise BackendUnavailable(
                f"The model at {where} needs the module {module!r}, which is not installed: "
                f"pip install '{spec}'"
            )
        dist, have = found
        if wanted and have and have != wanted:
            warnings.warn(
                f"The model at {where} was saved with {wanted_dist} {wanted}; {dist} {have} "
                "is installed. Predictions may differ; retrain or pin the version.",
                ModelEnvironmentWarning,
                stacklevel=3,
            )


@dataclass
class LoadedModel:
    """A model read back from a folder, ready to predict on data frames."""

    flavor: str
    task: str
    signature: Signature
    manifest: dict[str, Any]
    model: Any
    # Native code answering as ``model`` does (ctloop.models.compiled); set once checked.
    compiled: CompiledPredictor | None = field(default=None, repr=False, compare=False)

    def predict(self, frame: pd.DataFrame, *, what: str = "The input data") -> np.ndarray:
        """Positive-class probability (classification) or the value (regression), as floats.

        ``what`` names the frame in the error raised when it lacks a needed column.
        """
        prepared = self.signature.prepare(frame, what=what)
        return FLAVORS[self.flavor].predict(self.model, prepared, self.task)

    def predict_label(self, frame: pd.DataFrame, threshold: float = 0.5) -> np.ndarray:
        """0/1 decisions at ``threshold`` for a classifier."""
        return (self.predict(frame) >= threshold).astype("int8")

    @property
    def sha256(self) -> str:
        return str(self.manifest["sha256"])

    @property
    def decision_threshold(self) -> float:
        """The score at or above which a classifier decides 1.

        Chosen at evaluation to minimise expected cost when costs are declared
        (stored as ``metadata.decision_threshold``); 0.5 otherwise.
        """
        return float(self.manifest.get("metadata", {}).get("decision_threshold", 0.5))

    def outlier_scores(self, frame: pd.DataFrame) -> np.ndarray | None:
        """Per-row outlier scores against the training data, or None without a detector.

        The detector is fitted at training time and stored in the manifest
        (``metadata.outliers``, see ``ctloop.models.outliers``); models saved
        without one score nothing.
        """
        detector = self._outlier_detector
        return None if detector is None else detector.score(frame)

    @functools.cached_property
    def _outlier_detector(self) -> Any:
        data = self.manifest.get("metadata", {}).get("outliers")
        if not data:
            return None
        from ctloop.models.outliers import OutlierDetector

        return OutlierDetector.from_dict(data)


def _model_files(folder: Path, sha256: str | None) -> dict[str, bytes]:
    """The folder's files as checked bytes: against ``sha256`` (the whole folder) when given.

    Without ``sha256`` only the manifest and the model file are read (the
    manifest's own hash of the model file is checked by the caller).
    """
    if sha256 is None:
        manifest_path = folder / MANIFEST
        if not manifest_path.is_file():
            read_manifest(folder)  # raises the NotFound that explains it
        files = {MANIFEST: manifest_path.read_bytes()}
        name = str(_parse_manifest(files[MANIFEST], manifest_path).get("model_file", ""))
        model_file = folder / name
        if name and model_file.is_file():
            files[name] = model_file.read_bytes()
        return files
    if not (folder / MANIFEST).is_file():
        read_manifest(folder)
    snapshot = read_tree(folder)
    if snapshot.sha256 != sha256:
        raise IntegrityError(
            f"The model folder {folder} does not match the sha256 recorded for it: its files "
            f"hash to {snapshot.sha256[:16]}..., not {sha256[:16]}.... A file in it was "
            "changed, added or replaced; nothing was loaded. Delete the folder (ctloop "
            "unpacks it again from the verified artifact) and find out who changed it."
        )
    return snapshot.files


def load_model(path: str | Path, *, sha256: str | None = None) -> LoadedModel:
    """Load a model folder written by :func:`save_model`, checking hashes and packages.

    ``sha256`` is the content hash the artifact store recorded for the folder
    (its tree tar); given, the folder must match it exactly before anything is
    parsed, so a planted file or a rewritten manifest is refused. Without it
    only the model file is checked against the manifest: use that for folders
    you saved yourself, never for ones others could write to.
    """
    folder = Path(path)
    files = _model_files(folder, sha256)
    manifest = _parse_manifest(files[MANIFEST], folder / MANIFEST)
    impl = _flavor(str(manifest.get("flavor")))
    name = str(manifest.get("model_file", impl.file_name))
    model_file = folder / name
    data = files.get(name)
    if data is None:
        raise IntegrityError(f"The model file {model_file} is missing; the model is damaged.")
    actual = hash_bytes(data)
    if actual != manifest.get("sha256"):
        raise IntegrityError(
            f"The model file {model_file} has sha256 {actual[:12]}..., not the recorded "
            f"{str(manifest.get('sha256'))[:12]}...: it was changed or damaged. Load the "
            "model again from the artifact store or retrain it."
        )
    _check_requirements(manifest.get("requirements", {}), str(folder))
    try:
        model = impl.load(data)
    except (BackendUnavailable, IntegrityError):
        raise
    except ModuleNotFoundError as exc:
        raise BackendUnavailable(
            f"The model at {folder} needs the module {exc.name!r}, which is not installed."
        ) from exc
    except Exception as exc:
        raise IntegrityError(f"The model file {model_file} cannot be read: {exc}") from exc
    return LoadedModel(
        flavor=impl.name,
        task=str(manifest.get("task", "classification")),
        signature=Signature.from_dict(manifest.get("signature", {})),
        manifest=manifest,
        model=model,
    )
