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

Every flavor answers in one shape per task (``Flavor.predict``): binary, the
probability of the positive class ``classes[1]``, shape (n,); regression, the
value, (n,); multiclass, one probability column per class in
``signature.classes`` order, (n, k). The classes are recorded when a classifier
is saved (from its ``classes_`` or given), so labels, probability columns and
answers agree everywhere the model is read.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import io
import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from ctloop.artifacts.treefile import read_tree
from ctloop.core.arrays import Floats, Values
from ctloop.core.errors import BackendUnavailable, IntegrityError, NotFound, UserInputError
from ctloop.core.hashing import hash_bytes, hash_file, stable_json
from ctloop.core.lazy import lazy_module
from ctloop.core.plugins import require
from ctloop.models.flavor_catboost import CatBoostFlavor
from ctloop.models.flavor_onnx import OnnxFlavor
from ctloop.models.model_code import code_imports, import_code, store_code
from ctloop.models.signature import Signature
from ctloop.models.tasks import TASKS, Task, check_task, normalize_task, shaped

if TYPE_CHECKING:
    import numpy.typing as npt
    import pandas as pd

    from ctloop.models.compiled import CompiledPredictor
    from ctloop.models.outliers import OutlierDetector
else:
    pd = lazy_module("pandas", globals(), "pd")

__all__ = [
    "FLAVORS",
    "MANIFEST",
    "TASKS",
    "ColumnsScorer",
    "LoadedModel",
    "ModelEnvironmentWarning",
    "as_task",
    "class_array",
    "detect_flavor",
    "fitted_classes",
    "fitted_task",
    "lean_call",
    "load_model",
    "numpy_estimator",
    "read_manifest",
    "resolve_classes",
    "save_model",
    "shaped",
]

MANIFEST = "ctloop-model.json"
# Flavors whose model file is a pickle: their classes' modules travel with them.
_PICKLED = frozenset({"sklearn", "python"})


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


def as_task(value: object, *, where: str = "task") -> Task:
    """``value`` as a :data:`Task` (``models.tasks.normalize_task``), errors naming ``where``."""
    try:
        task = normalize_task(str(value))
    except UserInputError:
        return check_task(str(value), where=where)
    return task or check_task(str(value), where=where)


# Typed columns (one array per signature column) -> the answer ``Flavor.predict`` would
# give on their frame, or None when these values need the frame path's conversions.
ColumnsScorer = Callable[[Mapping[str, Values]], Floats | None] | None


class Flavor(Protocol):
    name: ClassVar[str]
    packages: ClassVar[tuple[str, ...]]  # modules needed to load the model
    file_name: ClassVar[str]

    def save(self, model: Any, path: Path) -> None: ...
    def load(self, data: bytes) -> Any:
        """The model from the (already verified) bytes of its file."""
        ...

    def predict(self, model: Any, frame: pd.DataFrame, task: Task) -> Floats:
        """Binary: (n,) P(positive); regression: (n,) values; multiclass: (n, k) probabilities."""
        ...


class SklearnFlavor:
    """Any scikit-learn estimator or pipeline, pickled with joblib."""

    name: ClassVar[str] = "sklearn"
    packages: ClassVar[tuple[str, ...]] = ("sklearn", "numpy", "pandas")
    file_name: ClassVar[str] = "model.joblib"

    def save(self, model: Any, path: Path) -> None:
        import joblib  # imported when a pickled model is saved or loaded, not before

        joblib.dump(model, path)

    def load(self, data: bytes) -> Any:
        import joblib

        return joblib.load(io.BytesIO(data))

    def predict(self, model: Any, frame: pd.DataFrame, task: Task) -> Floats:
        call = model.predict if task == "regression" else model.predict_proba
        try:
            return shaped(call(frame), task)
        except ValueError as exc:
            nulls = {str(c): int(n) for c, n in frame.isna().sum().items() if n}
            raise _refused_nulls(model, exc, nulls, len(frame)) from exc

    def columns_predictor(self, model: Any, signature: Signature, task: Task) -> ColumnsScorer:
        """:meth:`predict` on typed columns through a NumPy matrix, or None if unsafe.

        The serving row path (``serving.scoring.fastpath``): the same answers as on a
        frame, without building one. Only for estimators made of scikit-learn's own
        classes, fitted on the signature's numeric columns in order, that select no
        columns by name (:func:`numpy_estimator`), called through :func:`lean_call`.
        The scorer answers None for columns the frame path must convert (nulls in an
        object column, strings).
        """
        estimator = numpy_estimator(model, signature)
        if estimator is None:
            return None
        call = lean_call(estimator, "predict" if task == "regression" else "predict_proba")
        names = signature.columns

        def predict(columns: Mapping[str, Values]) -> Floats | None:
            arrays = [columns[name] for name in names]
            if any(a.ndim != 1 or a.dtype.kind not in "iuf" for a in arrays):
                return None
            # (k, n) transposed: the column-major matrix pandas hands scikit-learn, so
            # every product sums in the same order as on the frame path.
            matrix = _column_major(arrays)
            try:
                return shaped(call(matrix), task)
            except ValueError as exc:
                counts = np.isnan(matrix).sum(axis=0) if matrix.dtype.kind == "f" else []
                nulls = {n: int(k) for n, k in zip(names, counts, strict=False) if k}
                raise _refused_nulls(model, exc, nulls, len(matrix)) from exc

        return predict


def _column_major(arrays: list[Values]) -> npt.NDArray[Any]:
    """``np.stack(arrays).T``; float64 columns are copied into place (a third of the time)."""
    rows = len(arrays[0])
    if not all(a.dtype == np.float64 and len(a) == rows for a in arrays):
        return np.stack(arrays).T
    out = np.empty((len(arrays), rows), dtype=np.float64)
    for j, values in enumerate(arrays):
        out[j] = values
    return out.T


def _refused_nulls(
    model: Any, exc: ValueError, nulls: Mapping[str, int], rows: int
) -> Exception:
    """scikit-learn's "Input X contains NaN" as one line naming the columns, else ``exc``.

    An estimator without native missing-value support refuses NaN with a paragraph of
    advice; the rows are the sender's to fix (or the model's to refit), so it is a
    ``UserInputError`` (a 4xx at the service, one line in ``ctloop predict``).
    """
    if not nulls or "NaN" not in str(exc):
        return exc
    worst = max(nulls.values())
    return UserInputError(
        f"The {type(model).__name__} cannot score missing values: column(s) {list(nulls)} "
        f"hold null or NaN (in {worst} of {rows} row(s)), and scikit-learn refuses NaN for "
        "this estimator. Send a value in every row, or refit the model with an imputer in "
        "its Pipeline (sklearn.impute.SimpleImputer) or with an estimator that accepts NaN "
        "(HistGradientBoostingClassifier/Regressor)."
    )


def lean_call(estimator: Any, method: str) -> Callable[[Any], Any]:
    """``estimator.<method>`` on a matrix without the per-call checks that cannot fail on it.

    Each scikit-learn step validates its input on every call; on one row that costs more
    than the arithmetic. Two parts of it are skipped, and the answers are the same bits:
    (1) a Pipeline's own wrapper (its fitted check, its routing): its steps' ``transform``
    and the last step's ``method`` are called in its order, as ``Pipeline.<method>`` does;
    (2) the scan for NaN and infinity (``assume_finite``), done here once on the matrix and
    on each step's output instead. Where one holds a NaN or an infinity, the call is made
    again as ``estimator.<method>`` with every check, so what it answers or raises is
    scikit-learn's own. Where every step is one ``models.sklearn_kernels`` computes as
    scikit-learn does (a StandardScaler, a LogisticRegression...), a finite float64 matrix
    of the fitted width skips the steps' validation too: their arithmetic is run as is.
    """
    import sklearn

    from ctloop.models.sklearn_kernels import kernel_chain, run

    plain = getattr(estimator, method)
    steps: list[Any] = []
    last = plain
    if type(estimator).__module__ == "sklearn.pipeline" and type(estimator).__name__ == (
        "Pipeline"
    ):
        steps = [s for _, s in estimator.steps[:-1] if s is not None and s != "passthrough"]
        last = getattr(estimator.steps[-1][1], method)
        final = estimator.steps[-1][1]
    else:
        final = estimator
    kernels = kernel_chain(steps, final, method)
    width = getattr(steps[0] if steps else final, "n_features_in_", None)

    def call(matrix: Any) -> Any:
        if (kernels is not None and type(matrix) is np.ndarray and matrix.dtype == np.float64
                and matrix.ndim == 2 and matrix.shape[0] > 0 and matrix.shape[1] == width
                and _all_finite(matrix)):
            out = run(kernels, matrix)
            if out is not None:
                return out
        elif _all_finite(matrix):
            with sklearn.config_context(assume_finite=True):
                values = matrix
                for step in steps:
                    values = step.transform(values)
                    if not _all_finite(values):
                        break
                else:
                    return last(values)
        return plain(matrix)  # outside the context: every check runs

    return call


def _all_finite(values: Any) -> bool:
    """No NaN or infinity in a dense or sparse matrix; False when that cannot be told."""
    if not isinstance(values, np.ndarray):
        values = getattr(values, "data", None)  # a SciPy sparse matrix's stored values
    try:
        return bool(np.isfinite(values).all())
    except TypeError:  # not numbers (or no array): let scikit-learn check it
        return False


# scikit-learn steps that may pick columns by name or run user code on the frame as given.
_NAMED_STEPS = frozenset({"ColumnTransformer", "FunctionTransformer", "FeatureUnion"})


def numpy_estimator(model: Any, signature: Signature) -> Any | None:
    """``model`` made to take a NumPy matrix as it takes the frame, or None when it cannot.

    The frame path gives scikit-learn a frame whose columns are the signature's, in
    order; a matrix of the same columns in the same order is what scikit-learn turns
    it into, so the answers are the same when (1) every column is numeric, (2) the
    model was fitted on exactly those columns in that order (``feature_names_in_``,
    ``n_features_in_``), (3) every estimator inside is scikit-learn's own and none
    selects columns by name or calls user code (ColumnTransformer, FunctionTransformer,
    FeatureUnion), and (4) none is set to output frames (``set_output``). The returned
    estimator is a shallow copy without ``feature_names_in_`` (the names were checked
    here once), so scikit-learn does not warn on every call that a matrix has none;
    the fitted arrays are shared, not copied.
    """
    if not signature.inputs or any(c.type not in ("integer", "float") for c in signature.inputs):
        return None
    names = getattr(model, "feature_names_in_", None)
    if names is not None and [str(n) for n in names] != signature.columns:
        return None
    if getattr(model, "n_features_in_", None) != len(signature.inputs):
        return None
    try:
        params = model.get_params(deep=True)
    except Exception:  # not a scikit-learn estimator after all
        return None
    parts = [model, *(v for v in params.values() if hasattr(v, "get_params"))]
    for part in parts:
        kind = type(part)
        if not kind.__module__.startswith("sklearn.") or kind.__name__ in _NAMED_STEPS:
            return None
        if getattr(part, "_sklearn_output_config", {}).get("transform") not in (None, "default"):
            return None
    return _unnamed(model, 0)


def _unnamed(value: Any, depth: int) -> Any:
    """``value`` with ``feature_names_in_`` dropped from every scikit-learn object inside.

    Objects holding no such name are returned as they are; those that do are shallow
    copies (their other attributes, fitted arrays included, are shared).
    """
    if depth > 8:
        return value
    if type(value) in (list, tuple):
        items = [_unnamed(v, depth + 1) for v in value]
        same = all(a is b for a, b in zip(items, value, strict=True))
        return value if same else type(value)(items)
    state = getattr(value, "__dict__", None)
    if not isinstance(state, dict) or not type(value).__module__.startswith("sklearn."):
        return value
    kept = {k: _unnamed(v, depth + 1) for k, v in state.items() if k != "feature_names_in_"}
    if len(kept) == len(state) and all(kept[k] is state[k] for k in state):
        return value
    copy = object.__new__(type(value))
    copy.__dict__.update(kept)
    return copy


class PythonFlavor(SklearnFlavor):
    """A plain Python object with ``predict(frame) -> array``, pickled with joblib.

    A classifier answers probabilities: ``predict_proba(frame)`` when it has one,
    else ``predict(frame)`` (binary: P(positive) or two columns; multiclass: one
    column per class). Its class must be importable where the model is loaded (a
    module, not a notebook cell).
    """

    name = "python"
    packages = ("numpy", "pandas")
    file_name = "predictor.joblib"

    def columns_predictor(self, model: Any, signature: Signature, task: Task) -> ColumnsScorer:
        return None  # a plain predictor reads its frame by column name

    def predict(self, model: Any, frame: pd.DataFrame, task: Task) -> Floats:
        proba = getattr(model, "predict_proba", None)
        if task != "regression" and callable(proba):
            out = shaped(proba(frame), task)
        else:
            out = shaped(model.predict(frame), task)
        _refuse_nan_answers(out, frame)
        return out


def _refuse_nan_answers(out: Floats, frame: pd.DataFrame) -> None:
    """A NaN answer is refused, naming its rows, as the ONNX flavor refuses them.

    A plain predictor that cannot score a row (often one with a null) may answer
    NaN; its likeliest class would then read as the first class and its value
    as no number, so the request gets a ``UserInputError`` (a 4xx) instead.
    """
    if out.dtype.kind != "f":
        return
    bad = np.isnan(out) if out.ndim == 1 else np.isnan(out).reshape(len(out), -1).any(axis=1)
    if not bad.any():
        return
    rows = np.flatnonzero(bad)
    shown = ", ".join(str(r) for r in rows[:10]) + (", ..." if len(rows) > 10 else "")
    missing = [str(c) for c in frame.columns if frame[c].iloc[rows].isna().any()]
    held = (f"; those rows hold a missing value (null or NaN) in column(s) {missing}"
            if missing else "")
    raise UserInputError(
        f"The python model answered NaN for {len(rows)} of {len(out)} row(s) (row "
        f"{shown}, counting from 0){held}: a NaN is no class and no value. Send a value in "
        "every column of those rows, or make the model answer them (impute missing values "
        "in its predict)."
    )


class LightGBMFlavor:
    """A LightGBM booster (or its scikit-learn wrapper) in LightGBM's text format."""

    name: ClassVar[str] = "lightgbm"
    packages: ClassVar[tuple[str, ...]] = ("lightgbm", "numpy", "pandas")
    file_name: ClassVar[str] = "model.txt"

    def save(self, model: Any, path: Path) -> None:
        booster = getattr(model, "booster_", model)
        booster.save_model(str(path))

    def load(self, data: bytes) -> Any:
        # LightGBM itself (and the SciPy and scikit-learn it imports) only on first use:
        # a model served by its compiled trees never needs it (models/lazy_booster.py).
        from ctloop.models.lazy_booster import LazyBooster

        booster = LazyBooster(data.decode("utf-8"))
        booster.num_feature()  # a text that is no LightGBM model fails here, at load
        return booster

    def predict(self, model: Any, frame: pd.DataFrame, task: Task) -> Floats:
        # Binary boosters answer P(positive), multiclass ones (n, k) in class-index order.
        return shaped(model.predict(as_categories(frame)), task)


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

    def predict(self, model: Any, frame: pd.DataFrame, task: Task) -> Floats:
        xgb = require("xgboost", "boost", "Predicting with an XGBoost model")
        matrix = xgb.DMatrix(as_categories(frame), enable_categorical=True)
        return shaped(model.predict(matrix), task)


FLAVORS: dict[str, Flavor] = {
    f.name: f
    for f in (
        SklearnFlavor(), PythonFlavor(), LightGBMFlavor(), XGBoostFlavor(), OnnxFlavor(),
        CatBoostFlavor(),
    )
}


def detect_flavor(model: Any) -> str:
    """The flavor name for a model object, from the library that defines it."""
    module = type(model).__module__.split(".")[0]
    if module in ("lightgbm", "xgboost", "onnx", "catboost"):
        return module
    if type(model).__name__ == "LazyBooster":  # a loaded LightGBM model (models/lazy_booster)
        return "lightgbm"
    if type(model).__module__ == "ctloop.models.flavor_onnx":
        return "onnx"
    if module == "sklearn" or (hasattr(model, "get_params") and hasattr(model, "fit")):
        return "sklearn"
    if callable(getattr(model, "predict", None)):
        return "python"
    raise UserInputError(
        f"Cannot save a {type(model).__name__}: it is not a scikit-learn, LightGBM, XGBoost, "
        "CatBoost or ONNX model and has no predict(frame) method (for an ONNX file's path "
        "or bytes, pass flavor='onnx')."
    )


# --- what a fitted model says about its task and classes -----------------------------------


def _class_value(value: Any) -> str | int:
    """A class label as JSON keeps it: integers (and integral floats, booleans) as int."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return str(value)


def fitted_classes(model: Any) -> list[str | int] | None:
    """The classes a fitted classifier was trained on (its ``classes_``), or None."""
    try:
        classes = model.classes_
    except Exception:  # unfitted wrappers raise their own errors from the property
        return None
    if classes is None or len(classes) == 0:  # a CatBoost regressor has empty classes_
        return None
    return [_class_value(c) for c in np.asarray(classes).tolist()]


def fitted_task(model: Any) -> Task | None:
    """The task a fitted model was trained for, from its classes or its objective."""
    classes = fitted_classes(model)
    if classes is not None:
        return "binary" if len(classes) <= 2 else "multiclass"
    objective = _objective(model)
    if objective is not None:
        return _task_of_objective(objective)
    if getattr(model, "_estimator_type", None) == "regressor":
        return "regression"
    if hasattr(model, "get_params") and hasattr(model, "fit"):
        try:
            from sklearn.base import is_regressor

            if is_regressor(model):
                return "regression"
        except Exception:  # a duck-typed estimator sklearn's tags cannot read
            return None
    return None


def _objective(model: Any) -> tuple[str, int] | None:
    """(objective, number of classes) of a raw LightGBM or XGBoost booster."""
    module = type(model).__module__.split(".")[0]
    lightgbm = module == "lightgbm" or type(model).__name__ == "LazyBooster"
    if lightgbm and hasattr(model, "num_model_per_iteration"):
        objective = str(getattr(model, "params", {}).get("objective", ""))
        if not objective:
            objective = str(model.dump_model(num_iteration=0).get("objective", ""))
        return objective.split()[0] if objective else "", int(model.num_model_per_iteration())
    if module == "xgboost" and hasattr(model, "save_config"):
        config = json.loads(model.save_config())["learner"]
        classes = int(config["learner_model_param"].get("num_class", "0") or 0)
        return str(config["objective"]["name"]), classes
    if module == "catboost" and hasattr(model, "get_all_params"):
        try:
            loss = str(model.get_all_params().get("loss_function", ""))
        except Exception:  # an unfitted model has no parameters to read
            return None
        return loss, len(fitted_classes(model) or ())
    return None


def _task_of_objective(objective: tuple[str, int]) -> Task:
    name, classes = objective[0].lower(), objective[1]
    if name.startswith(("multi", "softmax")) or classes > 2:
        return "multiclass"
    if name.startswith(("binary", "cross_entropy", "xentropy", "logloss", "crossentropy")):
        return "binary"
    return "regression"


def _booster_classes(model: Any) -> list[str | int] | None:
    objective = _objective(model)
    if objective is None:
        return None
    task = _task_of_objective(objective)
    if task == "multiclass":
        return list(range(max(objective[1], 2)))
    return [0, 1] if task == "binary" else None


def resolve_classes(
    model: Any, task: Task, given: Sequence[str | int] | None
) -> tuple[str | int, ...] | None:
    """The classes to record for ``model``: given ones (checked against the model's) or its own.

    Given classes may rename a model's class indices (a booster trained on 0..k-1);
    otherwise they must be the model's classes in the model's order, because the
    probability columns come out in that order.
    """
    found = fitted_classes(model) or _booster_classes(model)
    if task == "regression":
        if given:
            raise UserInputError(
                f"A regression model has no classes; got classes={list(given)!r}."
            )
        return None
    classes = [_class_value(c) for c in given] if given else found
    if classes is None:
        if task == "binary":
            classes = [0, 1]
        else:
            raise UserInputError(
                f"Cannot tell the classes of this {type(model).__name__}: it records none; "
                "pass classes=[...] (ctloop models import: --classes a,b,c) in the order of "
                "its probability columns."
            )
    if found is not None and given:
        indices = list(range(len(found)))
        if len(found) != len(classes) or (found != classes and found != indices):
            raise UserInputError(
                f"The classes {classes!r} do not match the model's own {found!r}; give them "
                "in the order of the model's probability columns."
            )
    if len(set(classes)) != len(classes):
        raise UserInputError(f"The classes {classes!r} repeat a class.")
    if task == "binary" and len(classes) != 2:
        raise UserInputError(
            f"A binary model has exactly two classes; got {len(classes)}: {classes!r}. "
            "Use task='multiclass' for more."
        )
    if task == "multiclass" and len(classes) < 2:
        raise UserInputError(f"A multiclass model needs two classes or more; got {classes!r}.")
    return tuple(classes)


def class_array(classes: Sequence[str | int]) -> Values:
    """Class labels as an array: int64 when all are integers, else objects (strings)."""
    if all(isinstance(c, int) for c in classes):
        return np.asarray(classes, dtype=np.int64)
    out = np.empty(len(classes), dtype=object)
    out[:] = [str(c) for c in classes]
    return out


@functools.cache
def _module_distributions() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


def _installed(module: str, dist_name: str = "") -> tuple[str, str] | None:
    """(distribution, version) providing import name ``module``, or None if not installed.

    ``dist_name``, the distribution the manifest names, is asked first: one metadata
    read, where mapping every installed distribution to its modules reads them all
    (about 1 s of a cold ``ctloop serve`` in an environment of 80 packages).
    """
    if importlib.util.find_spec(module) is None:
        return None
    if dist_name:
        try:
            return dist_name, importlib.metadata.version(dist_name)
        except importlib.metadata.PackageNotFoundError:
            pass  # installed under another distribution's name: look it up
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


def _with_task(
    model: Any,
    flavor_name: str,
    signature: Signature,
    task: str | None,
    classes: Sequence[str | int] | None,
) -> Signature:
    """``signature`` with the task and classes :func:`save_model` records for ``model``."""
    chosen = task if task is not None else signature.task
    resolved = as_task(chosen) if chosen is not None else (fitted_task(model) or "binary")
    if chosen != resolved and fitted_task(model) == "multiclass":  # a legacy "classification"
        resolved = "multiclass"
    kept = resolve_classes(model, resolved, classes if classes is not None else signature.classes)
    if resolved != "regression" and flavor_name == "sklearn" and not hasattr(
        model, "predict_proba"
    ):
        raise UserInputError(
            f"The {type(model).__name__} has no predict_proba, so it cannot answer "
            f"{resolved} probabilities; use a classifier with probabilities (for SVC, "
            "probability=True) or wrap it in CalibratedClassifierCV."
        )
    return replace(signature, task=resolved, classes=kept)


def _packages(impl: Flavor, code: Mapping[str, Path]) -> dict[str, str]:
    """Import name -> pip requirement: the flavor's modules and those its stored code imports."""
    needed = [*impl.packages, *sorted(code_imports({k: v.read_bytes() for k, v in code.items()}))]
    packages = {}
    for module in needed:
        found = _installed(module)
        if found is None and module not in impl.packages:
            continue  # an optional import of the user's code that this environment lacks
        dist, version = found or (module, "")
        packages[module] = f"{dist}=={version}" if version else dist
    return packages


def save_model(
    model: Any,
    path: str | Path,
    *,
    signature: Signature,
    task: str | None = None,
    classes: Sequence[str | int] | None = None,
    flavor: str | None = None,
    requirements: dict[str, str] | None = None,
    metadata: dict[str, Any] | None = None,
    code_paths: Sequence[str | Path] | None = None,
) -> dict[str, Any]:
    """Save ``model`` into the folder ``path`` and return its manifest.

    ``task`` (binary, multiclass, regression) defaults to the signature's, else to what
    the fitted model says (its ``classes_``, its objective), else binary. A classifier's
    ``classes`` come from its ``classes_`` unless given (in the order of its probability
    columns); they are recorded in the signature with the task.
    ``requirements`` adds modules a Python predictor needs, as import name ->
    pip requirement (``{"scipy": "scipy==1.14.1"}``); the flavor's own are added.
    ``metadata`` is stored as given (JSON-able: label, parameters, seed...).
    A pickled model (sklearn, python) carries its code: the project modules its pickle
    refers to, or ``code_paths`` (files, package folders), are stored under ``code/``
    with their hashes, and the third-party modules they import become requirements
    (see ``ctloop.models.model_code``).
    """
    flavor_name = flavor or detect_flavor(model)
    impl = _flavor(flavor_name)
    describe: Callable[[Any, Signature], tuple[Any, Signature]] | None = getattr(
        impl, "describe", None
    )
    if describe is not None:  # the flavor reads inputs, outputs (and classes) off the model
        model, signature = describe(model, signature)
    signature = _with_task(model, flavor_name, signature, task, classes)
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    code: dict[str, Path] = {}
    if code_paths or flavor_name in _PICKLED:
        code = store_code(model, folder, code_paths)
    model_file = folder / impl.file_name
    impl.save(model, model_file)
    packages = _packages(impl, code)
    packages.update(requirements or {})
    manifest: dict[str, Any] = {
        "format": 1,
        "flavor": flavor_name,
        "task": signature.task,
        "model_file": impl.file_name,
        "sha256": hash_file(model_file),
        "signature": signature.to_dict(),
        "requirements": dict(sorted(packages.items())),
        "metadata": metadata or {},
    }
    if code:
        manifest["code"] = {name: hash_file(file) for name, file in code.items()}
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
        found = _installed(module, wanted_dist.strip())
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
    task: Task
    signature: Signature
    manifest: dict[str, Any]
    model: Any
    # Native code answering as ``model`` does (ctloop.models.compiled); set once checked.
    compiled: CompiledPredictor | None = field(default=None, repr=False, compare=False)

    @property
    def classes(self) -> tuple[str | int, ...] | None:
        """A classifier's class labels in probability-column order (None for regression)."""
        if self.task == "regression":
            return None
        return self.signature.classes or (0, 1)

    def predict(self, frame: pd.DataFrame, *, what: str = "The input data") -> Floats:
        """Binary: (n,) P(positive class); regression: (n,) values; multiclass: (n, k).

        Multiclass columns follow ``classes``. ``what`` names the frame in the error
        raised when it lacks a needed column.
        """
        if not self.signature.inputs and self.signature.tensors:
            raise UserInputError(
                f"This {self.flavor} model takes tensors "
                f"{[t.describe() for t in self.signature.tensors]}, not table columns; "
                "send them as v2 tensors (LoadedModel.predict_tensors)."
            )
        prepared = self.signature.prepare(frame, what=what)
        out = FLAVORS[self.flavor].predict(self.model, prepared, self.task)
        self._check_shape(out, len(prepared))
        return out

    def predict_labels(self, frame: pd.DataFrame, *, what: str = "The input data") -> Values:
        """Class labels: binary by :attr:`decision_threshold`, multiclass the likeliest class.

        Integer classes come back as int64, others as an object array of strings.
        """
        classes = self.classes
        if classes is None:
            raise UserInputError(
                "A regression model answers values, not class labels; use predict()."
            )
        scores = self.predict(frame, what=what)
        index = (
            (scores >= self.decision_threshold).astype(np.intp)
            if self.task == "binary"
            else np.argmax(scores, axis=1)
        )
        labels: Values = class_array(classes)[index]
        return labels

    def predict_tensors(
        self, inputs: Mapping[str, np.ndarray], *, what: str = "The input"
    ) -> dict[str, np.ndarray]:
        """A tensor model's outputs by name for named N-d inputs, checked against the specs.

        A missing input, a wrong datatype, rank or fixed size raises ``UserInputError``
        naming the input and the spec (``signature.tensors``) it must meet.
        """
        run: Callable[[Any, Mapping[str, np.ndarray]], dict[str, np.ndarray]] | None = getattr(
            FLAVORS[self.flavor], "predict_tensors", None
        )
        if run is None or not self.signature.tensors:
            raise UserInputError(
                f"This {self.flavor} model takes table columns {self.signature.columns}, not "
                "tensors; send rows or columns."
            )
        return run(self.model, self.signature.check_tensors(inputs, what=what))

    def predict_label(self, frame: pd.DataFrame, threshold: float = 0.5
                      ) -> npt.NDArray[np.int8]:
        """0/1 decisions at ``threshold`` for a binary classifier."""
        return (self.predict(frame) >= threshold).astype("int8")

    def _check_shape(self, out: Floats, rows: int) -> None:
        classes = self.classes
        expected = (rows, len(classes)) if self.task == "multiclass" and classes else (rows,)
        if out.shape != expected:
            raise IntegrityError(
                f"The {self.flavor} model answered shape {list(out.shape)} for {rows} row(s); "
                f"a {self.task} model must answer {list(expected)}"
                + (f" (one column per class {list(classes)})" if len(expected) == 2 and classes
                   else "")
                + ". Save it with the task and classes it was trained for."
            )

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

    def outlier_scores(self, frame: pd.DataFrame) -> Floats | None:
        """Per-row outlier scores against the training data, or None without a detector.

        The detector is fitted at training time and stored in the manifest
        (``metadata.outliers``, see ``ctloop.models.outliers``); models saved
        without one score nothing.
        """
        detector = self._outlier_detector
        return None if detector is None else detector.score(frame)

    @functools.cached_property
    def _outlier_detector(self) -> OutlierDetector | None:
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
        manifest = _parse_manifest(files[MANIFEST], manifest_path)
        for name in [str(manifest.get("model_file", "")), *manifest.get("code", {})]:
            if name and (folder / name).is_file():
                files[name] = (folder / name).read_bytes()
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


def _checked_code(
    folder: Path, manifest: dict[str, Any], files: dict[str, bytes]
) -> dict[str, bytes]:
    """The model's stored code files, each checked against the sha256 its manifest records."""
    code: dict[str, bytes] = {}
    for name, recorded in dict(manifest.get("code", {})).items():
        data = files.get(name)
        if data is None or hash_bytes(data) != recorded:
            state = "is missing" if data is None else "was changed"
            raise IntegrityError(
                f"The model's code file {folder / name} {state} (its sha256 is recorded in "
                f"{MANIFEST}); nothing was loaded. Load the model again from the artifact store."
            )
        code[name] = data
    return code


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
    code = _checked_code(folder, manifest, files)
    _check_requirements(manifest.get("requirements", {}), str(folder))
    try:
        with import_code(folder, code):
            model = impl.load(data)
    except (BackendUnavailable, IntegrityError):
        raise
    except ModuleNotFoundError as exc:
        carried = " (the model carries no code of its own)" if not code else ""
        raise BackendUnavailable(
            f"The model at {folder} needs the module {exc.name!r}, which is not installed"
            f"{carried}: install it, or save the model where that module imports so its "
            "code is stored with it (save_model(..., code_paths=[...]))."
        ) from exc
    except Exception as exc:
        raise IntegrityError(f"The model file {model_file} cannot be read: {exc}") from exc
    task = as_task(manifest.get("task", "binary"), where=f"The task in {folder / MANIFEST}")
    signature = Signature.from_dict(manifest.get("signature", {}))
    if signature.task != task:
        signature = replace(signature, task=task)
    return LoadedModel(
        flavor=impl.name,
        task=task,
        signature=signature,
        manifest=manifest,
        model=model,
    )
