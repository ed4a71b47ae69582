"""`ctloop models import` of every file kind teams bring, then promoted and scored like any
version; bad input is one clear line. MLflow folders come from real `mlflow` in its own venv."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import catboost as cb
import joblib
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from skl2onnx import to_onnx
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ctloop.core.hashing import hash_file
from ctloop.metadata import open_metadata_store
from ctloop.models.flavors import as_categories
from ctloop.registry import ModelRegistry
from ctloop.testing.cli import cli, one_error_line
from ctloop.testing.peers import MLFLOW, require_peer

NUMERIC = ["x1", "x2", "x3"]
FEATURES = [*NUMERIC, "shop"]


def _data(classes: list[Any], n: int = 500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=NUMERIC)
    frame["shop"] = rng.choice(["north", "south", "east"], size=n)
    score = frame["x1"] - frame["x2"] + 0.5 * frame["x3"] + (frame["shop"] == "east")
    frame["label"] = np.asarray(classes, dtype=object)[pd.qcut(score, len(classes), labels=False)]
    frame["value"] = 2.0 * score
    return frame


def _import(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code, out, err = cli(capsys, "models", "import", *args, "--json")
    assert code == 0, err
    return dict(json.loads(out))


def _scored(capsys: pytest.CaptureFixture[str], ref: str, rows: pd.DataFrame, home: Path
            ) -> pd.DataFrame:
    rows.to_parquet(home / "rows.parquet")
    code, _, err = cli(capsys, "predict", ref, "rows.parquet", "scored.parquet", "--json")
    assert code == 0, err
    return pd.read_parquet(home / "scored.parquet")


def test_a_joblib_pipeline_is_registered_with_provenance_promoted_and_scored(
    ctloop_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _data(["no", "yes"])
    pipe = make_pipeline(
        ColumnTransformer([("shop", OneHotEncoder(handle_unknown="ignore"), ["shop"]),
                           ("numbers", StandardScaler(), NUMERIC)]),
        LogisticRegression(max_iter=500),
    ).fit(data[FEATURES], data["label"])
    joblib.dump(pipe, ctloop_home / "churn.joblib")
    data[FEATURES].head(50).to_csv(ctloop_home / "sample.csv", index=False)

    code, _, err = cli(capsys, "models", "import", "churn", "churn.joblib")
    assert code != 0 and "give --sample" in one_error_line(err)
    record = _import(capsys, "churn", "churn.joblib", "--sample", "sample.csv")
    assert record["version"] == 1 and record["flavor"] == "sklearn"
    assert record["task"] == "binary" and record["signature"]["classes"] == ["no", "yes"]
    assert [c["name"] for c in record["signature"]["inputs"]] == FEATURES
    imported = record["properties"]["imported"]
    assert imported["sha256"] == hash_file(ctloop_home / "churn.joblib")
    assert imported["source"] == str(ctloop_home / "churn.joblib")
    assert imported["format"] == "joblib/pickle"
    assert record["description"].startswith(f"imported from {ctloop_home / 'churn.joblib'}")

    code, out, _ = cli(capsys, "models", "show", "churn:1")
    shown = f"imported_from: {ctloop_home / 'churn.joblib'} (joblib/pickle, sha256 " \
        f"{imported['sha256']})"
    assert code == 0 and "".join(shown.split()) in "".join(out.split())  # however it wraps
    assert cli(capsys, "models", "promote", "churn", "1")[0] == 0
    scored = _scored(capsys, "churn", data[FEATURES].head(100), ctloop_home)
    np.testing.assert_allclose(scored["score"], pipe.predict_proba(data[FEATURES].head(100))[:, 1])


def test_booster_files_and_onnx_import_with_their_own_columns(
    ctloop_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _data(["cat", "dog", "eel"])
    index = data["label"].map({"cat": 0, "dog": 1, "eel": 2})
    frame = as_categories(data[FEATURES])

    # LightGBM trained on class indices: --label names its classes (sorted, as encoded).
    booster = lgb.LGBMClassifier(n_estimators=10, verbose=-1, n_jobs=1).fit(frame, index).booster_
    booster.save_model(str(ctloop_home / "pets.txt"))
    data.head(60).to_parquet(ctloop_home / "sample.parquet")
    record = _import(capsys, "pets", "pets.txt", "--sample", "sample.parquet", "--label", "label")
    assert record["flavor"] == "lightgbm" and record["task"] == "multiclass"
    assert record["signature"]["classes"] == ["cat", "dog", "eel"]
    assert [c["name"] for c in record["signature"]["inputs"]] == FEATURES
    code, _, err = cli(capsys, "models", "import", "pets", "pets.txt")
    assert code != 0 and "categorical inputs" in one_error_line(err)

    # XGBoost regression in JSON: its feature names and types are in the file.
    reg = xgb.XGBRegressor(n_estimators=10, n_jobs=1, enable_categorical=True,
                           tree_method="hist").fit(frame, data["value"])
    reg.save_model(str(ctloop_home / "value.json"))
    record = _import(capsys, "value", "value.json")
    assert record["flavor"] == "xgboost" and record["task"] == "regression"
    assert {c["name"]: c["type"] for c in record["signature"]["inputs"]} == {
        "x1": "float", "x2": "float", "x3": "float", "shop": "string"}
    assert cli(capsys, "models", "promote", "value", "1")[0] == 0
    scored = _scored(capsys, "value", data[FEATURES].head(100), ctloop_home)
    np.testing.assert_allclose(scored["score"], reg.predict(frame.head(100)), rtol=1e-6)

    # CatBoost .cbm: string classes and categorical columns from the file.
    model = cb.CatBoostClassifier(iterations=10, verbose=False, thread_count=1,
                                  cat_features=["shop"], allow_writing_files=False)
    model.fit(data[FEATURES], data["label"]).save_model(str(ctloop_home / "pets.cbm"))
    record = _import(capsys, "pets", "pets.cbm")
    assert record["version"] == 2 and record["flavor"] == "catboost"
    assert record["task"] == "multiclass" and record["signature"]["classes"] == [
        "cat", "dog", "eel"]
    assert record["signature"]["inputs"][3] == {"name": "shop", "type": "string",
                                                "nullable": True, "finite": True}

    # ONNX (skl2onnx): classes from the graph, columns x0..x2 without a sample.
    clf = LogisticRegression(max_iter=500).fit(data[NUMERIC].to_numpy(np.float32), data["label"])
    graph = to_onnx(clf, data[NUMERIC].to_numpy(np.float32)[:1], target_opset=17,
                    options={"zipmap": False})
    (ctloop_home / "pets.onnx").write_bytes(graph.SerializeToString())
    record = _import(capsys, "pets_onnx", "pets.onnx")
    assert record["flavor"] == "onnx" and record["signature"]["classes"] == ["cat", "dog", "eel"]
    assert [c["name"] for c in record["signature"]["inputs"]] == ["x0", "x1", "x2"]
    assert record["signature"]["tensors"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 3]}]


PREDICTOR = '''
class Doubler:
    def predict(self, frame):
        return 2.0 * frame["x1"].to_numpy()
'''


def test_bad_imports_are_one_clear_line(
    ctloop_home: Path, capsys: pytest.CaptureFixture[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    # A pickle whose class lives in a module that does not import here.
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "doubling.py").write_text(PREDICTOR)
    subprocess.run(
        ["python3", "-c", textwrap.dedent(f"""
            import pickle, sys
            sys.path.insert(0, {str(elsewhere)!r})
            import doubling
            pickle.dump(doubling.Doubler(), open({str(ctloop_home / 'd.pkl')!r}, 'wb'))
        """)], check=True,
    )
    code, _, err = cli(capsys, "models", "import", "d", "d.pkl", "--task", "regression")
    line = one_error_line(err)
    assert code != 0 and "class from the module 'doubling', which cannot be imported" in line

    data = _data([0, 1])
    booster = lgb.LGBMRegressor(n_estimators=5, verbose=-1).fit(data[NUMERIC], data["value"])
    booster.booster_.save_model(str(ctloop_home / "m.txt"))
    code, _, err = cli(capsys, "models", "import", "m", "m.txt", "--task", "ranking")
    assert code != 0 and "--task must be one of binary, multiclass, regression" in one_error_line(
        err)
    data.assign(label="same").head(20).to_csv(ctloop_home / "one.csv", index=False)
    code, _, err = cli(capsys, "models", "import", "m", "m.txt", "--sample", "one.csv",
                       "--label", "label")
    assert code != 0 and "has 1 class(es) ['same']" in one_error_line(err)
    code, _, err = cli(capsys, "models", "import", "m", "nope.txt")
    assert code != 0 and "No model file or folder" in one_error_line(err)
    (ctloop_home / "junk.bin").write_bytes(b"\x00junk")
    code, _, err = cli(capsys, "models", "import", "m", "junk.bin")
    assert code != 0 and "give --flavor" in one_error_line(err)
    code, _, err = cli(capsys, "models", "import", "m", "m.txt", "--flavor", "torch")
    assert code != 0 and "--flavor must be one of" in one_error_line(err)

    folder = ctloop_home / "torch_model"
    folder.mkdir()
    (folder / "MLmodel").write_text(textwrap.dedent("""
        flavors:
          python_function:
            loader_module: mlflow.pytorch
            data: data
          pytorch:
            model_data: data
            pytorch_version: 2.5.0
        mlflow_version: 3.17.2
    """))
    code, _, err = cli(capsys, "models", "import", "m", "torch_model")
    line = one_error_line(err)
    assert code != 0 and "flavor(s) ['python_function', 'pytorch'" in line
    assert "Export it to ONNX" in line
    code, out, _ = cli(capsys, "models", "list", "--json")
    assert json.loads(out) == []  # nothing was registered by a refused import


MLFLOW_WRITER = '''
import sys
import lightgbm as lgb
import mlflow.lightgbm
import mlflow.pyfunc
import mlflow.sklearn
import pandas as pd
from mlflow.models import infer_signature
from sklearn.linear_model import LogisticRegression

data = pd.read_csv(sys.argv[1])
features = ["x1", "x2", "x3"]
clf = LogisticRegression(max_iter=500).fit(data[features], data["label"])
signature = infer_signature(data[features], clf.predict(data[features]))
mlflow.sklearn.save_model(clf, sys.argv[2] + "/sk", signature=signature)  # skops: the default
mlflow.sklearn.save_model(clf, sys.argv[2] + "/skpickle", signature=signature,
                          serialization_format="cloudpickle")
booster = lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1},
                    lgb.Dataset(data[features], data["value"]), num_boost_round=10)
mlflow.lightgbm.save_model(booster, sys.argv[2] + "/lgb")


class Constant(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return [0.5] * len(model_input)


mlflow.pyfunc.save_model(sys.argv[2] + "/pyfunc", python_model=Constant())
pd.DataFrame(clf.predict_proba(data[features])).to_csv(sys.argv[2] + "/proba.csv", index=False)
pd.DataFrame({"value": booster.predict(data[features])}).to_csv(sys.argv[2] + "/value.csv",
                                                                index=False)
'''


@pytest.mark.slow
def test_mlflow_model_folders_written_by_mlflow(
    ctloop_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    python = require_peer(MLFLOW)
    data = _data(["cat", "dog", "eel"])
    data.to_csv(ctloop_home / "train.csv", index=False)
    (ctloop_home / "writer.py").write_text(MLFLOW_WRITER)
    written = subprocess.run(
        [str(python), "-I", str(ctloop_home / "writer.py"), str(ctloop_home / "train.csv"),
         str(ctloop_home / "mlruns")], capture_output=True, text=True, timeout=600,
    )
    assert written.returncode == 0, written.stderr

    for folder, serialization in (("sk", "skops"), ("skpickle", "cloudpickle")):
        record = _import(capsys, "pets", f"mlruns/{folder}")
        assert record["flavor"] == "sklearn" and record["task"] == "multiclass"
        assert record["signature"]["classes"] == ["cat", "dog", "eel"]
        assert [(c["name"], c["type"]) for c in record["signature"]["inputs"]] == [
            ("x1", "float"), ("x2", "float"), ("x3", "float")]
        imported = record["properties"]["imported"]
        assert imported["format"] == f"MLflow sklearn ({serialization})"
    assert imported["mlflow"]["flavor"] == "sklearn" and imported["mlflow"]["model_uuid"]
    assert any(r.startswith("scikit-learn==") for r in imported["mlflow"]["requirements"])
    assert cli(capsys, "models", "promote", "pets", "2")[0] == 0

    record = _import(capsys, "value", "mlruns/lgb")
    assert record["flavor"] == "lightgbm" and record["task"] == "regression"
    assert [c["name"] for c in record["signature"]["inputs"]] == NUMERIC
    assert record["properties"]["imported"]["format"] == "MLflow lightgbm"

    # A PythonModel derives from MLflow's class: without mlflow here, one line says so.
    code, _, err = cli(capsys, "models", "import", "constant", "mlruns/pyfunc", "--task",
                       "regression")
    assert code != 0 and "is a pyfunc PythonModel" in one_error_line(err)

    # Loaded as the server loads them (hash-checked from the store), they answer as in MLflow.
    store = open_metadata_store()
    registry = ModelRegistry(store)
    try:
        proba = pd.read_csv(ctloop_home / "mlruns" / "proba.csv").to_numpy()
        for ref in ("pets:1", "pets@champion"):
            np.testing.assert_allclose(registry.load(ref).predict(data), proba, rtol=1e-9)
        value = pd.read_csv(ctloop_home / "mlruns" / "value.csv")["value"].to_numpy()
        np.testing.assert_allclose(registry.load("value:1").predict(data), value, rtol=1e-9)
    finally:
        store.close()


def test_an_exported_image_network_is_imported_with_its_tensors_and_named_classes(
    ctloop_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What torch.onnx.export writes: [N,3,32,32] -> softmax [N,3], no class names inside."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = {"w": rng.normal(size=(3, 3, 3, 3)).astype(np.float32),
               "b": rng.normal(size=3).astype(np.float32)}
    graph = helper.make_model(helper.make_graph(
        [helper.make_node("Conv", ["image", "w", "b"], ["conv"], pads=[1, 1, 1, 1]),
         helper.make_node("GlobalAveragePool", ["conv"], ["pool"]),
         helper.make_node("Flatten", ["pool"], ["flat"]),
         helper.make_node("Softmax", ["flat"], ["probabilities"], axis=1)],
        "cnn", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3])],
        initializer=[numpy_helper.from_array(v, k) for k, v in weights.items()],
    ), opset_imports=[helper.make_opsetid("", 17)])
    graph.ir_version = 8
    (ctloop_home / "cnn.onnx").write_bytes(graph.SerializeToString())

    code, _, err = cli(capsys, "models", "import", "cnn", "cnn.onnx", "--task", "multiclass")
    assert code != 0 and "--classes a,b,c" in one_error_line(err)
    record = _import(capsys, "cnn", "cnn.onnx", "--task", "multiclass",
                     "--classes", "plane, car, bird")
    assert record["flavor"] == "onnx" and record["task"] == "multiclass"
    assert record["signature"]["classes"] == ["plane", "car", "bird"]
    assert record["signature"]["inputs"] == []
    assert record["signature"]["tensors"] == [
        {"name": "image", "datatype": "FP32", "shape": [-1, 3, 32, 32]}]
    assert record["signature"]["tensor_outputs"] == [
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}]
    store = open_metadata_store()
    try:
        loaded = ModelRegistry(store).load("cnn:1")
        images = rng.normal(size=(2, 3, 32, 32)).astype(np.float32)
        out = loaded.predict_tensors({"image": images})["probabilities"]
        assert out.shape == (2, 3)
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    finally:
        store.close()
