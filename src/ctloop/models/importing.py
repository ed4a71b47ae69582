"""Bring the models teams already have: a model file or an MLflow model folder.

``import_model`` reads a joblib/pickle (a scikit-learn estimator or Pipeline, or
any object with ``predict``), a LightGBM text model, an XGBoost JSON/UBJSON model,
a CatBoost ``.cbm``, an ONNX graph, or an MLflow model folder (``MLmodel``: its
sklearn, lightgbm, xgboost, catboost, onnx and pyfunc flavors), and saves it as a
ctloop model folder with a signature, a task and, for classifiers, their classes.

The bytes are read once, hashed, and only those bytes are parsed (a pickle is
unpickled from the hashed bytes, as ``load_model`` does), so the hash recorded as
the model's provenance is the hash of what was loaded. The signature comes from
``sample`` (rows like the training data) when given, else from the MLflow
signature, else from the input names the model itself records.
"""

from __future__ import annotations

import importlib.util
import inspect
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ctloop.artifacts.treefile import read_tree
from ctloop.core.errors import NotFound, NotTrainable, UserInputError
from ctloop.core.hashing import hash_bytes
from ctloop.core.plugins import require
from ctloop.models.flavors import detect_flavor, fitted_task, save_model
from ctloop.models.signature import ColumnSpec, Signature
from ctloop.models.tasks import Task, check_task, infer_task

__all__ = ["FILE_FLAVORS", "Imported", "MlflowPythonModel", "Provenance", "import_model"]

FILE_FLAVORS = ("sklearn", "python", "lightgbm", "xgboost", "catboost", "onnx")
# MLflow flavor names -> ours, in the order one is chosen when a folder has several.
_MLFLOW_FLAVORS = {"onnx": "onnx", "catboost": "catboost", "lightgbm": "lightgbm",
                   "xgboost": "xgboost", "sklearn": "sklearn", "python_function": "python"}
_MLFLOW_TYPES = {"double": "float", "float": "float", "long": "integer", "integer": "integer",
                 "string": "string", "boolean": "boolean", "datetime": "datetime"}
_BOOSTERS = frozenset({"lightgbm", "xgboost", "catboost"})


@dataclass(frozen=True)
class Provenance:
    """Where an imported model came from: the path, the hash of the bytes read, the format."""

    source: str
    sha256: str
    format: str
    mlflow: dict[str, Any] = field(default_factory=dict)  # run_id, model_uuid, requirements...

    def describe(self) -> str:
        return f"imported from {self.source} ({self.format}, sha256 {self.sha256[:12]})"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"source": self.source, "sha256": self.sha256,
                                "format": self.format}
        if self.mlflow:
            data["mlflow"] = self.mlflow
        return data


@dataclass(frozen=True)
class Imported:
    """A saved ctloop model folder made from an imported file, with its provenance."""

    folder: Path
    manifest: dict[str, Any]
    provenance: Provenance


@dataclass
class _Read:
    """What a source holds once read: the model object and what the source says about it."""

    model: Any
    flavor: str
    format: str
    signature: Signature | None = None
    mlflow: dict[str, Any] = field(default_factory=dict)
    code_paths: list[Path] = field(default_factory=list)
    requirements: dict[str, str] = field(default_factory=dict)


def import_model(
    path: str | Path,
    folder: str | Path,
    *,
    flavor: str | None = None,
    sample: pd.DataFrame | None = None,
    label: str | None = None,
    task: str | None = None,
    classes: list[str | int] | None = None,
) -> Imported:
    """Read the model at ``path`` and save it as a ctloop model in ``folder``.

    ``flavor`` forces how a file is read (or which flavor of an MLflow folder);
    ``sample`` gives the input columns and their types; ``label`` names a column
    of the sample whose values decide the task (and name a booster's classes)
    when ``task`` is not given; ``classes`` names the probability columns of a
    model that does not record them (an ONNX export of a network, a booster).
    Every refusal is one line naming what is wrong.
    """
    source = Path(path).resolve()
    if not source.exists():
        raise NotFound(f"No model file or folder at {source}.")
    if flavor is not None and flavor not in FILE_FLAVORS:
        raise UserInputError(
            f"--flavor must be one of {', '.join(FILE_FLAVORS)}; got {flavor!r}."
        )
    if source.is_dir():
        read, sha256 = _read_mlflow(source, flavor)
    else:
        data = source.read_bytes()
        sha256 = hash_bytes(data)
        read = _read_file(source, data, flavor)
    features = [c for c in sample.columns if c != label] if sample is not None else None
    signature = _signature(read, sample, features, source)
    chosen, from_label = _task_and_classes(read, sample, label, task, source)
    provenance = Provenance(str(source), sha256, read.format, read.mlflow)
    manifest = save_model(
        read.model, folder, signature=signature, task=chosen, classes=classes or from_label,
        flavor=read.flavor, code_paths=read.code_paths or None,
        requirements=read.requirements or None,
        metadata={"imported": provenance.to_dict()},
    )
    return Imported(Path(folder), manifest, provenance)


# --- files -----------------------------------------------------------------------------------


def _sniff(path: Path, data: bytes) -> str:
    """The flavor a model file's bytes (or, failing that, its suffix) say it is."""
    suffix = path.suffix.lower()
    if data.startswith(b"CBM1"):
        return "catboost"
    if data.startswith((b"tree\n", b"tree\r\n")):
        return "lightgbm"
    if data[:1] == b"\x80" or suffix in (".pkl", ".pickle", ".joblib", ".sav"):
        return "pickle"
    if suffix == ".onnx":
        return "onnx"
    if suffix in (".ubj", ".xgb", ".json") or data[:1] == b"{":
        return "xgboost"
    raise UserInputError(
        f"Cannot tell what kind of model {path} holds (not a pickle, LightGBM, XGBoost, "
        "CatBoost or ONNX file by its content or suffix); give --flavor."
    )


def _read_file(path: Path, data: bytes, flavor: str | None) -> _Read:
    kind = flavor or _sniff(path, data)
    if kind in ("pickle", "sklearn", "python"):
        model = _unpickle(path, data)
        found = detect_flavor(model)
        return _Read(model, flavor or found, "joblib/pickle")
    return _Read(_read_native(kind, data, path), kind, _FORMATS[kind])


_FORMATS = {"lightgbm": "LightGBM text model", "xgboost": "XGBoost model",
            "catboost": "CatBoost .cbm", "onnx": "ONNX graph"}


def _read_native(kind: str, data: bytes, path: Path) -> Any:
    try:
        if kind == "lightgbm":
            lgb = require("lightgbm", "all", "Importing a LightGBM model")
            return lgb.Booster(model_str=data.decode("utf-8"))
        if kind == "xgboost":
            xgb = require("xgboost", "boost", "Importing an XGBoost model")
            booster = xgb.Booster()
            booster.load_model(bytearray(data))
            return booster
        if kind == "catboost":
            cb = require("catboost", "catboost", "Importing a CatBoost model")
            model = cb.CatBoost()
            model.load_model(blob=data)
            return model
        return data  # ONNX: the flavor reads the graph itself
    except UserInputError:
        raise
    except Exception as exc:
        raise UserInputError(f"{path} is not a readable {_FORMATS[kind]}: {exc}") from exc


def _unpickle(path: Path, data: bytes) -> Any:
    """The object in a pickle's (already hashed) bytes, or one line saying why not."""
    import joblib

    try:
        return joblib.load(io.BytesIO(data))
    except ModuleNotFoundError as exc:
        raise UserInputError(
            f"{path} is a pickle of a class from the module {exc.name!r}, which cannot be "
            "imported here: install it, or run the import where your project's code imports "
            "(PYTHONPATH); ctloop then stores that code with the model."
        ) from exc
    except AttributeError as exc:
        raise UserInputError(
            f"{path} is a pickle of a class that its module no longer defines ({exc}); import "
            "it with the code it was saved with."
        ) from exc
    except Exception as exc:
        raise UserInputError(f"{path} is not a readable pickle: {exc}") from exc


# Libraries whose types a skops file may hold: they only rebuild estimators from their state.
_SKOPS_TRUSTED = ("sklearn", "numpy", "scipy", "lightgbm", "xgboost", "catboost")


def _read_skops(path: Path, data: bytes) -> Any:
    """A skops file: loaded only when every type it holds is from a trusted library."""
    skops = require("skops.io", "skops", "Importing a skops (MLflow 3) scikit-learn model")
    try:
        untrusted = skops.get_untrusted_types(data=data)
    except Exception as exc:
        raise UserInputError(f"{path} is not a readable skops file: {exc}") from exc
    foreign = [t for t in untrusted if t.split(".")[0] not in _SKOPS_TRUSTED]
    if foreign:
        raise UserInputError(
            f"{path} holds types {foreign} from outside {', '.join(_SKOPS_TRUSTED)}; "
            "skops refuses to rebuild them unless trusted. Save that model with "
            "serialization_format='cloudpickle' and import it again."
        )
    return skops.loads(data, trusted=untrusted)


# --- MLflow model folders ----------------------------------------------------------------------


class MlflowPythonModel:
    """An MLflow pyfunc ``PythonModel`` as a ctloop python model: ``predict(frame)``.

    MLflow calls ``predict(context, model_input[, params])`` (or, since MLflow 2.20,
    ``predict(model_input)``); ctloop calls ``predict(frame)``.
    """

    def __init__(self, python_model: Any) -> None:
        self.python_model = python_model

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        method: Callable[..., Any] = self.python_model.predict
        names = [p for p in inspect.signature(method).parameters if p != "self"]
        answer = method(frame) if names[:1] == ["model_input"] else method(None, frame)
        return np.asarray(answer)


def _read_mlflow(folder: Path, flavor: str | None) -> tuple[_Read, str]:
    if not (folder / "MLmodel").is_file():
        raise UserInputError(
            f"{folder} is a folder without an MLmodel file: give a model file, or an MLflow "
            "model folder (the one holding MLmodel)."
        )
    snapshot = read_tree(folder)  # the folder read once; everything below parses these bytes
    files = snapshot.files
    import yaml

    mlmodel = yaml.safe_load(files["MLmodel"]) or {}
    flavors: dict[str, dict[str, Any]] = mlmodel.get("flavors") or {}
    key = _mlflow_flavor(folder, flavors, flavor)
    spec = flavors[key]
    info = {k: mlmodel[k] for k in ("run_id", "model_uuid", "mlflow_version",
                                    "utc_time_created", "artifact_path") if mlmodel.get(k)}
    info["flavor"] = key
    if "requirements.txt" in files:
        info["requirements"] = [
            line.strip() for line in files["requirements.txt"].decode().splitlines()
            if line.strip() and not line.startswith("#")
        ]
    read = _read_mlflow_flavor(folder, key, spec, files)
    read.mlflow = info
    if key == "python_function":  # its class derives from MLflow's PythonModel
        version = mlmodel.get("mlflow_version")
        read.requirements = {"mlflow": f"mlflow=={version}" if version else "mlflow"}
    read.signature = _mlflow_signature(mlmodel.get("signature"), folder)
    return read, snapshot.sha256


def _mlflow_flavor(folder: Path, flavors: dict[str, dict[str, Any]], wanted: str | None) -> str:
    if wanted is not None:
        for key, ours in _MLFLOW_FLAVORS.items():
            if ours == wanted and key in flavors:
                return key
        raise UserInputError(
            f"The MLflow model at {folder} has no {wanted!r} flavor; it has {sorted(flavors)}."
        )
    for key in _MLFLOW_FLAVORS:
        if key not in flavors:
            continue
        loader = str(flavors[key].get("loader_module", ""))
        if key == "python_function" and loader != "mlflow.pyfunc.model":
            break  # a pyfunc wrapper around a flavor ctloop does not read (pytorch, ...)
        return key
    described = sorted(flavors)
    wrapped = (flavors.get("python_function") or {}).get("loader_module")
    if wrapped:
        described.append(f"python_function via {wrapped}")
    raise UserInputError(
        f"The MLflow model at {folder} has the flavor(s) {described}; ctloop imports sklearn, "
        "lightgbm, xgboost, catboost, onnx and pyfunc (PythonModel) models. Export it to "
        "ONNX (docs/models.md) and import the .onnx file."
    )


def _read_mlflow_flavor(
    folder: Path, key: str, spec: dict[str, Any], files: dict[str, bytes]
) -> _Read:
    def data_file(name: str | None) -> tuple[Path, bytes]:
        if not name or name not in files:
            raise UserInputError(
                f"The MLflow model at {folder} names the file {name!r} for its {key} flavor, "
                "but the folder has no such file."
            )
        return folder / name, files[name]

    if key == "sklearn":
        serialization = spec.get("serialization_format") or "pickle"
        path, data = data_file(spec.get("pickled_model"))
        if serialization == "skops":  # MLflow 3's default
            model = _read_skops(path, data)
        elif serialization in ("pickle", "cloudpickle"):
            model = _unpickle(path, data)
        else:
            raise UserInputError(
                f"The MLflow model at {folder} is serialized as {serialization!r}; ctloop "
                "reads skops, pickle and cloudpickle."
            )
        return _Read(model, detect_flavor(model), f"MLflow sklearn ({serialization})")
    if key == "python_function":
        if importlib.util.find_spec("mlflow") is None:
            raise UserInputError(
                f"The MLflow model at {folder} is a pyfunc PythonModel, whose class derives "
                "from MLflow's: install mlflow (pip install mlflow-skinny) where ctloop imports "
                "and serves it, or export the model to ONNX and import the .onnx file."
            )
        path, data = data_file(spec.get("python_model"))
        code = folder / str(spec["code"]) if spec.get("code") else None
        model = MlflowPythonModel(_unpickle(path, data))
        paths = sorted(code.iterdir()) if code is not None and code.is_dir() else []
        return _Read(model, "python", "MLflow pyfunc", code_paths=paths)
    ours = _MLFLOW_FLAVORS[key]
    path, data = data_file(spec.get("data"))
    if ours == "lightgbm" and "Booster" not in str(spec.get("model_class", "Booster")):
        model = _unpickle(path, data)  # MLflow pickles LightGBM's scikit-learn wrappers
        return _Read(model, "lightgbm", "MLflow lightgbm")
    return _Read(_read_native(ours, data, path), ours, f"MLflow {key}")


def _mlflow_signature(signature: Any, folder: Path) -> Signature | None:
    """Columns from an MLflow column signature; None for tensor signatures (ONNX reads its own)."""
    if not isinstance(signature, dict) or not signature.get("inputs"):
        return None
    inputs = json.loads(signature["inputs"])
    if any(i.get("type") == "tensor" for i in inputs):
        return None
    columns = []
    for spec in inputs:
        kind = _MLFLOW_TYPES.get(str(spec.get("type")))
        if kind is None or "name" not in spec:
            raise UserInputError(
                f"The MLflow signature of {folder} has an input {spec!r} ctloop cannot read; "
                "give --sample with rows like the training data instead."
            )
        columns.append(ColumnSpec(str(spec["name"]), kind, nullable=True))
    return Signature(inputs=tuple(columns))


# --- signature, task and classes -----------------------------------------------------------------


def _signature(
    read: _Read, sample: pd.DataFrame | None, features: list[str] | None, source: Path
) -> Signature:
    names = _feature_names(read.model)
    if sample is not None and features is not None:
        wanted = names or features
        missing = [c for c in wanted if c not in sample.columns]
        if missing:
            raise UserInputError(
                f"The sample has no column(s) {missing} that the model at {source} reads; "
                f"it has {list(sample.columns)}."
            )
        if read.flavor == "onnx":
            return Signature.from_frame(sample, features)
        # A sample is not the training data: a booster may have learned missing values.
        return Signature.from_frame(sample, wanted,
                                    nullable=wanted if read.flavor in _BOOSTERS else ())
    if read.signature is not None:
        return read.signature
    if read.flavor == "onnx":
        return Signature(inputs=())
    if names is None:
        raise UserInputError(
            f"The model at {source} does not record its input columns; give --sample FILE "
            "with rows like its training data."
        )
    return Signature(inputs=tuple(_typed_columns(read, names, source)))


def _feature_names(model: Any) -> list[str] | None:
    for attribute in ("feature_names_in_", "feature_name_", "feature_names_", "feature_names"):
        names = getattr(model, attribute, None)
        if names is not None and not callable(names) and len(names):
            return [str(n) for n in names]
    if hasattr(model, "feature_name") and callable(model.feature_name):  # a LightGBM Booster
        return [str(n) for n in model.feature_name()]
    return None


def _typed_columns(read: _Read, names: list[str], source: Path) -> list[ColumnSpec]:
    """Columns named by the model itself; their types from what the library records."""
    model, flavor = read.model, read.flavor
    types = dict.fromkeys(names, "float")
    if flavor == "catboost":
        for index in model.get_cat_feature_indices():
            types[names[index]] = "string"
    elif flavor == "xgboost":
        booster = model.get_booster() if hasattr(model, "get_booster") else model
        kinds = {"c": "string", "int": "integer", "i": "boolean"}
        for name, kind in zip(names, booster.feature_types or [], strict=False):
            types[name] = kinds.get(str(kind), "float")
    elif flavor == "lightgbm":
        booster = getattr(model, "booster_", model)
        if getattr(booster, "pandas_categorical", None):
            raise UserInputError(
                f"The LightGBM model at {source} has categorical inputs whose columns it does "
                "not name; give --sample FILE with rows like its training data."
            )
    elif type(model).__name__ in ("Pipeline", "ColumnTransformer"):
        raise UserInputError(
            f"The scikit-learn {type(model).__name__} at {source} may read text columns its "
            "pickle does not type; give --sample FILE with rows like its training data."
        )
    return [ColumnSpec(n, t, nullable=t == "float" or flavor in _BOOSTERS) for n, t in
            types.items()]


def _task_and_classes(
    read: _Read, sample: pd.DataFrame | None, label: str | None, task: str | None, source: Path
) -> tuple[Task | None, list[str | int] | None]:
    chosen: Task | None = check_task(task, where="--task") if task is not None else None
    classes: list[str | int] | None = None
    if label is not None:
        if sample is None or label not in sample.columns:
            raise UserInputError(f"--label {label!r} must be a column of the --sample rows.")
        values = sample[label].dropna()
        if values.nunique() < 2:
            raise NotTrainable(
                f"The label {label!r} in the sample has {values.nunique()} class(es) "
                f"{sorted(map(str, values.unique()))}; it cannot tell the model's task or "
                "classes: give rows of at least two classes, or --task."
            )
        chosen = chosen or infer_task(sample[label])
        if chosen != "regression" and getattr(read.model, "classes_", None) is None:
            # A booster trained on class indices: the indices follow the sorted labels
            # (as scikit-learn's LabelEncoder sorts them).
            classes = sorted(values.unique().tolist())
    if chosen is None and read.flavor != "onnx" and fitted_task(read.model) is None:
        raise UserInputError(
            f"Cannot tell the task of the model at {source}: give --task binary, multiclass "
            "or regression (or --sample with --label)."
        )
    return chosen, classes
