"""Every flavor x task x protocol, 1, 2 and 100 rows, against a real running service.

Models are fitted in the test on generated data (binary, four string classes,
three integer classes, regression) by scikit-learn, LightGBM, XGBoost, CatBoost, a
plain Python predictor and skl2onnx, saved and registered as users do, then served
by one ``ctloop`` app over KServe v1 (httpx), v2 HTTP JSON and binary tensors
(NVIDIA's ``tritonclient.http``) and gRPC (``tritonclient.grpc``). Every answer
must equal the loaded model's own in-process prediction: probabilities and values
to 1e-12, class labels exactly, and every output's shape its data's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tritonclient.utils import InferenceServerException

from ctloop.artifacts import open_artifact_store
from ctloop.core.errors import UserInputError
from ctloop.metadata import ArtifactRecord, new_id, open_metadata_store
from ctloop.models import Signature, save_model
from ctloop.models.flavors import FLAVORS, LoadedModel
from ctloop.registry import ModelRegistry
from ctloop.serving import ServingConfig, create_app
from ctloop.serving.background import background_server

# The prediction contract of ctloop.models (multiclass (n, k), predict_labels) is needed.
pytestmark = pytest.mark.skipif(not hasattr(LoadedModel, "predict_labels"),
                                reason="needs the flavors' prediction contract")

FEATURES = ["x1", "x2", "x3"]  # FP64, INT64, FP64 on the wire
ROWS = (1, 2, 100)
PROTOCOLS = ("v1", "v2-json", "v2-binary", "grpc")


class MeanPredictor:
    """A plain Python model: probabilities from a softmax of fixed weights (or a value)."""

    def __init__(self, k: int) -> None:
        self.weights = np.linspace(-1.0, 1.0, 3 * max(k, 1)).reshape(3, max(k, 1))
        self.k = k

    def _logits(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(frame[FEATURES].to_numpy(dtype=float) @ self.weights)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        z = self._logits(frame)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self._logits(frame)[:, 0]


class PythonRegressor:
    """A Python regressor without predict_proba."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(frame["x1"].to_numpy(dtype=float) * 2.0 + frame["x2"].to_numpy())


def _data(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "x1": rng.normal(size=n),
        "x2": rng.integers(0, 10, size=n).astype(np.int64),
        "x3": rng.normal(size=n),
    })
    score = frame["x1"] + 0.3 * frame["x2"] - frame["x3"] + rng.normal(scale=0.5, size=n)
    frame["binary"] = (score > score.median()).astype(int)
    frame["multi"] = pd.cut(score, 4, labels=["ash", "birch", "cedar", "dogwood"]).astype(str)
    frame["ints"] = pd.cut(score, 3, labels=[0, 1, 2]).astype(int)
    frame["value"] = score * 10
    return frame


@dataclass(frozen=True)
class Case:
    name: str
    flavor: str
    task: str
    label: str
    fit: Callable[[pd.DataFrame, pd.Series], Any]
    classes: list[Any] | None = None


def _sklearn(kind: str) -> Callable[[pd.DataFrame, pd.Series], Any]:
    def fit(x: pd.DataFrame, y: pd.Series) -> Any:
        from sklearn.linear_model import LogisticRegression, Ridge

        model = Ridge() if kind == "regression" else LogisticRegression(max_iter=500)
        return model.fit(x, y)

    return fit


def _lightgbm(kind: str) -> Callable[[pd.DataFrame, pd.Series], Any]:
    def fit(x: pd.DataFrame, y: pd.Series) -> Any:
        import lightgbm as lgb

        params: dict[str, Any] = {"n_estimators": 15, "n_jobs": 1, "verbose": -1,
                                  "min_child_samples": 5}
        model = lgb.LGBMRegressor(**params) if kind == "regression" else lgb.LGBMClassifier(
            **params)
        return model.fit(x, y)

    return fit


def _xgboost(kind: str) -> Callable[[pd.DataFrame, pd.Series], Any]:
    def fit(x: pd.DataFrame, y: pd.Series) -> Any:
        import xgboost as xgb

        params = {"n_estimators": 15, "n_jobs": 1, "max_depth": 3}
        model = xgb.XGBRegressor(**params) if kind == "regression" else xgb.XGBClassifier(
            **params)
        return model.fit(x, y)

    return fit


def _catboost(kind: str) -> Callable[[pd.DataFrame, pd.Series], Any]:
    def fit(x: pd.DataFrame, y: pd.Series) -> Any:
        import catboost

        params = {"iterations": 15, "verbose": False, "thread_count": 1, "random_seed": 0,
                  "allow_writing_files": False}
        model = (catboost.CatBoostRegressor(**params) if kind == "regression"
                 else catboost.CatBoostClassifier(**params))
        return model.fit(x, y)

    return fit


def _python(kind: str, k: int) -> Callable[[pd.DataFrame, pd.Series], Any]:
    def fit(x: pd.DataFrame, y: pd.Series) -> Any:
        return PythonRegressor() if kind == "regression" else MeanPredictor(k)

    return fit


def _sklearn_pipeline(by_name: bool) -> Callable[[pd.DataFrame, pd.Series], Any]:
    """A Pipeline: scaled then logistic (served from NumPy arrays), or with a
    ColumnTransformer that picks columns by name (served from a frame)."""
    def fit(x: pd.DataFrame, y: pd.Series) -> Any:
        from sklearn.compose import ColumnTransformer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        first = (ColumnTransformer([("scaled", StandardScaler(), ["x1", "x3"])],
                                   remainder="passthrough") if by_name else StandardScaler())
        return make_pipeline(first, LogisticRegression(max_iter=500)).fit(x, y)

    return fit


def _onnx_columns(x: pd.DataFrame, y: pd.Series) -> Any:
    """An ONNX graph with one [N, 1] input per column (x2 INT64), as skl2onnx converts a
    ColumnTransformer pipeline."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType

    model = _sklearn_pipeline(by_name=True)(x, y)
    inputs = [("x1", FloatTensorType([None, 1])), ("x2", Int64TensorType([None, 1])),
              ("x3", FloatTensorType([None, 1]))]
    return to_onnx(model, initial_types=inputs, target_opset=17, options={"zipmap": False})


def _onnx(kind: str) -> Callable[[pd.DataFrame, pd.Series], Any]:
    def fit(x: pd.DataFrame, y: pd.Series) -> Any:
        from skl2onnx import to_onnx

        model = _sklearn(kind)(x.astype(np.float32), y)
        return to_onnx(model, x.to_numpy(dtype=np.float32)[:1],
                       options={id(model): {"zipmap": False}} if kind != "regression" else None)

    return fit


def _cases() -> list[Case]:
    cases = [
        Case("sk-bin", "sklearn", "binary", "binary", _sklearn("binary")),
        Case("sk-multi", "sklearn", "multiclass", "multi", _sklearn("multiclass")),
        Case("sk-reg", "sklearn", "regression", "value", _sklearn("regression")),
        Case("skpipe-multi", "sklearn", "multiclass", "multi", _sklearn_pipeline(False)),
        Case("skcols-bin", "sklearn", "binary", "binary", _sklearn_pipeline(True)),
        Case("lgb-bin", "lightgbm", "binary", "binary", _lightgbm("binary")),
        Case("lgb-multi", "lightgbm", "multiclass", "ints", _lightgbm("multiclass")),
        Case("lgb-reg", "lightgbm", "regression", "value", _lightgbm("regression")),
        Case("xgb-bin", "xgboost", "binary", "binary", _xgboost("binary")),
        Case("xgb-multi", "xgboost", "multiclass", "ints", _xgboost("multiclass")),
        Case("xgb-reg", "xgboost", "regression", "value", _xgboost("regression")),
        Case("py-bin", "python", "binary", "binary", _python("binary", 2)),
        Case("py-multi", "python", "multiclass", "multi", _python("multiclass", 4),
             classes=["ash", "birch", "cedar", "dogwood"]),
        Case("py-reg", "python", "regression", "value", _python("regression", 0)),
    ]
    if "catboost" in FLAVORS:
        cases += [
            Case("cb-bin", "catboost", "binary", "binary", _catboost("binary")),
            Case("cb-multi", "catboost", "multiclass", "multi", _catboost("multiclass")),
            Case("cb-reg", "catboost", "regression", "value", _catboost("regression")),
        ]
    if "onnx" in FLAVORS:
        cases += [
            Case("onnx-bin", "onnx", "binary", "binary", _onnx("binary")),
            Case("onnx-multi", "onnx", "multiclass", "multi", _onnx("multiclass")),
            Case("onnx-reg", "onnx", "regression", "value", _onnx("regression")),
            Case("onnx-cols-multi", "onnx", "multiclass", "multi", _onnx_columns),
        ]
    return cases


CASES = _cases()


@dataclass
class Service:
    http: str  # host:port
    grpc: str
    models: dict[str, LoadedModel]
    registry: ModelRegistry | None = None
    artifacts: Any = None
    home: Path | None = None  # the project's state folder (CTLOOP_HOME), for the CLI


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("flavors")
    store = open_metadata_store(f"sqlite:///{root / 'meta.db'}")
    artifacts = open_artifact_store((root / "artifacts").as_uri())
    registry = ModelRegistry(store, actor="test")
    train = _data(600, seed=1)
    signature = Signature.from_frame(train, FEATURES)
    for case in CASES:
        model = case.fit(train[FEATURES], train[case.label])
        folder = root / case.name
        save_model(model, folder, signature=signature, task=case.task, flavor=case.flavor,
                   classes=case.classes)
        stored = artifacts.put(folder)
        record = store.add_artifact(ArtifactRecord(id=new_id(), type="Model", uri=stored.uri,
                                                   sha256=stored.sha256, size=stored.size))
        registry.register(case.name, record.id)
        registry.promote(case.name, 1)
    models = {c.name: registry.load(f"{c.name}:1", artifacts) for c in CASES}
    config = ServingConfig.from_table({"grpc_port": 0})
    app = create_app([c.name for c in CASES], config=config, metadata=store,
                     artifacts=artifacts, feature_store=False, prediction_log=False)
    with background_server(app) as url:
        yield Service(url.removeprefix("http://"), f"127.0.0.1:{app.state.grpc_port}", models,
                      registry, artifacts)
    store.close()


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return _data(100, seed=2)[FEATURES]


def _v2_inputs(module: Any, frame: pd.DataFrame, binary: bool | None) -> list[Any]:
    out = []
    for column in FEATURES:
        values = frame[column].to_numpy()
        datatype = "INT64" if values.dtype.kind == "i" else "FP64"
        tensor = module.InferInput(column, [len(frame)], datatype)
        if binary is None:
            tensor.set_data_from_numpy(values)
        else:
            tensor.set_data_from_numpy(values, binary_data=binary)
        out.append(tensor)
    return out


def _answer(service: Service, name: str, frame: pd.DataFrame, protocol: str
            ) -> dict[str, np.ndarray]:
    """The service's outputs by v2 name (v1's keys mapped onto them)."""
    if protocol == "v1":
        body = {"instances": frame.to_dict(orient="records")}
        got = httpx.post(f"http://{service.http}/v1/models/{name}:predict", json=body,
                         timeout=60)
        assert got.status_code == 200, got.text
        answer = got.json()
        out = {"v1_predictions": np.asarray(answer["predictions"])}
        for key, v2 in (("decisions", "decision"), ("labels", "label"),
                        ("probabilities", "probabilities")):
            if key in answer:
                out[v2] = np.asarray(answer[key])
        return out
    names = [o["name"] for o in _metadata(service, name)["outputs"]]
    if protocol == "grpc":
        client = tgrpc.InferenceServerClient(service.grpc)
        result = client.infer(name, _v2_inputs(tgrpc, frame, None))
        response = result.get_response()
        shapes = {o.name: list(o.shape) for o in response.outputs}
    else:
        binary = protocol == "v2-binary"
        client = thttp.InferenceServerClient(service.http)
        outputs = [thttp.InferRequestedOutput(n, binary_data=binary) for n in names]
        result = client.infer(name, _v2_inputs(thttp, frame, binary), outputs=outputs)
        shapes = {o["name"]: o["shape"] for o in result.get_response()["outputs"]}
    out = {}
    for output in names:
        array = result.as_numpy(output)
        assert array is not None, (name, protocol, output)
        assert list(array.shape) == shapes[output], (name, protocol, output)
        out[output] = array
    return out


_META: dict[str, dict[str, Any]] = {}


def _metadata(service: Service, name: str) -> dict[str, Any]:
    if name not in _META:
        _META[name] = httpx.get(f"http://{service.http}/v2/models/{name}", timeout=30).json()
    return _META[name]


def _text(values: np.ndarray) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values.tolist()]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_every_flavor_and_task_answers_as_in_process(service: Service, rows: pd.DataFrame,
                                                     case: Case, protocol: str) -> None:
    model = service.models[case.name]
    meta = _metadata(service, case.name)
    assert meta["parameters"]["task"] == case.task
    for n in ROWS:
        frame = rows.head(n)
        expected = model.predict(frame)
        got = _answer(service, case.name, frame, protocol)
        where = (case.name, protocol, n)
        if case.task == "regression":
            value = got["v1_predictions"] if protocol == "v1" else got["prediction"]
            assert value.shape == (n,), where
            np.testing.assert_allclose(value, expected, rtol=0, atol=1e-9, err_msg=str(where))
            continue
        classes = list(model.signature.classes or [])
        assert meta["parameters"]["classes"] == classes, where
        labels = model.predict_labels(frame)
        assert _text(got["label"]) == [str(v) for v in labels.tolist()], where
        probabilities = got["probabilities"]
        assert probabilities.shape == (n, len(classes)), where
        if case.task == "multiclass":
            np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-9,
                                       err_msg=str(where))
            if protocol == "v1":
                assert _text(got["v1_predictions"]) == _text(got["label"]), where
            continue
        np.testing.assert_allclose(probabilities[:, 1], expected, rtol=0, atol=1e-9,
                                   err_msg=str(where))
        score = got["v1_predictions"] if protocol == "v1" else got["prediction"]
        np.testing.assert_allclose(score, expected, rtol=0, atol=1e-9, err_msg=str(where))
        decisions = (expected >= model.decision_threshold).astype(int)
        assert got["decision"].tolist() == decisions.tolist(), where


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_batch_scoring_writes_one_column_per_class(service: Service, rows: pd.DataFrame,
                                                  case: Case, tmp_path: Path) -> None:
    from ctloop.batch import predict_file

    assert service.registry is not None
    model = service.models[case.name]
    rows.to_parquet(tmp_path / "in.parquet")
    predict_file(service.registry, service.artifacts, f"{case.name}:1", tmp_path / "in.parquet",
                 tmp_path / "out.parquet")
    out = pd.read_parquet(tmp_path / "out.parquet")
    expected = model.predict(rows)
    if case.task == "multiclass":
        classes = list(model.signature.classes or [])
        assert list(out.columns) == [*FEATURES, "label", *(f"score_{c}" for c in classes)]
        np.testing.assert_allclose(out[[f"score_{c}" for c in classes]].to_numpy(), expected,
                                   rtol=0, atol=1e-9)
        assert [str(v) for v in out["label"]] == [str(v) for v in
                                                  model.predict_labels(rows).tolist()]
        return
    np.testing.assert_allclose(out["score"].to_numpy(), expected, rtol=0, atol=1e-9)
    if case.task == "binary":
        assert out["decision"].tolist() == (expected >= model.decision_threshold).astype(
            int).tolist()
    else:
        assert "decision" not in out.columns


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_explain_answers_shapes_that_match_their_data(service: Service, rows: pd.DataFrame,
                                                      case: Case) -> None:
    """v2 explain tensors (per class for multiclass) have the shape of their data; the tree
    flavors explain every task."""
    frame = rows.head(5)
    tensors = {"inputs": [
        {"name": c, "shape": [5], "datatype": "INT64" if c == "x2" else "FP64",
         "data": frame[c].tolist()} for c in FEATURES]}
    v2 = httpx.post(f"http://{service.http}/v2/models/{case.name}/explain", json=tensors,
                    timeout=60)
    v1 = httpx.post(f"http://{service.http}/v1/models/{case.name}:explain",
                    json={"instances": frame.to_dict(orient="records")}, timeout=60)
    if case.flavor in ("lightgbm", "xgboost", "catboost"):
        assert v2.status_code == 200 and v1.status_code == 200, (v2.text, v1.text)
    assert v1.status_code == v2.status_code, (v1.text, v2.text)
    if v2.status_code != 200:
        assert v2.status_code == 422, v2.text
        return
    outputs = {o["name"]: o for o in v2.json()["outputs"]}
    for name, tensor in outputs.items():
        assert len(tensor["data"]) == int(np.prod(tensor["shape"])), name
        assert tensor["shape"][0] == 5, name
    model = service.models[case.name]
    expected = model.predict(frame)
    if case.task == "multiclass":
        k = len(model.signature.classes or [])
        assert outputs["class_contributions"]["shape"] == [5, k, len(FEATURES)]
        np.testing.assert_allclose(np.reshape(outputs["probabilities"]["data"], (5, k)),
                                   expected, atol=1e-6)
        assert [str(v) for v in outputs["label"]["data"]] == [
            str(v) for v in model.predict_labels(frame).tolist()]
    else:
        # TreeSHAP sums float32 leaf values: equal to the prediction to float32 precision
        np.testing.assert_allclose(outputs["prediction"]["data"], expected, rtol=1e-5,
                                   atol=1e-6)


def test_metadata_lists_outputs_with_their_shapes(service: Service) -> None:
    for case in CASES:
        meta = _metadata(service, case.name)
        outputs = {o["name"]: (o["datatype"], o["shape"]) for o in meta["outputs"]}
        if case.task == "regression":
            assert outputs == {"prediction": ("FP64", [-1])}, case.name
            continue
        k = len(service.models[case.name].signature.classes or [])
        label = "BYTES" if case.label == "multi" else "INT64"
        expected = {"label": (label, [-1]), "probabilities": ("FP64", [-1, k])}
        if case.task == "binary":
            expected |= {"prediction": ("FP64", [-1]), "decision": ("INT64", [-1])}
        assert outputs == expected, case.name


def test_grpc_metadata_carries_the_task_and_class_names(service: Service) -> None:
    """MLServer's ``parameters`` fields of ModelMetadataResponse: our stub reads the task and
    classes (on the response and on the class-carrying outputs), and ``tritonclient.grpc``,
    whose proto lacks them, still parses the response."""
    import grpc

    from ctloop.serving.proto import grpc_predict_v2_pb2 as pb
    from ctloop.serving.proto import grpc_predict_v2_pb2_grpc as pb_grpc

    triton = tgrpc.InferenceServerClient(service.grpc)
    with grpc.insecure_channel(service.grpc) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        for case in CASES:
            meta = stub.ModelMetadata(pb.ModelMetadataRequest(name=case.name), timeout=30)
            assert meta.parameters["task"].string_param == case.task, case.name
            outputs = {o.name: o for o in meta.outputs}
            parsed = triton.get_model_metadata(case.name)
            assert [o.name for o in parsed.outputs] == list(outputs), case.name
            assert [list(o.shape) for o in parsed.outputs] == [
                list(o.shape) for o in outputs.values()], case.name
            if case.task == "regression":
                assert "classes" not in meta.parameters, case.name
                assert not outputs["prediction"].parameters, case.name
                continue
            classes = list(service.models[case.name].signature.classes or [])
            assert json.loads(meta.parameters["classes"].string_param) == classes, case.name
            for name in ("label", "probabilities"):
                carried = outputs[name].parameters["classes"].string_param
                assert json.loads(carried) == classes, (case.name, name)
            assert not any(o.parameters for o in meta.inputs), case.name


def test_served_rows_take_the_numpy_path_where_it_is_exact(service: Service) -> None:
    """The request path's scorer per case (the answers above are the same either way)."""
    from ctloop.serving.scoring.fastpath import predictor_for

    fast = {c.name for c in CASES if predictor_for(service.models[c.name]).fast}
    assert {"sk-bin", "sk-multi", "sk-reg", "skpipe-multi", "lgb-bin"} <= fast
    assert {"onnx-bin", "onnx-multi", "onnx-reg", "onnx-cols-multi"} & set(
        c.name for c in CASES) <= fast
    assert not fast & {"skcols-bin", "py-bin", "py-multi", "py-reg"}


# --- an ONNX image model: N-d tensors in and out ----------------------------------------------


def _image_model() -> Any:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = {"conv_w": rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
               "conv_b": rng.normal(size=4).astype(np.float32),
               "dense_w": rng.normal(size=(10, 4)).astype(np.float32),
               "dense_b": rng.normal(size=10).astype(np.float32)}
    nodes = [
        helper.make_node("Conv", ["image", "conv_w", "conv_b"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["flat"]),
        helper.make_node("Gemm", ["flat", "dense_w", "dense_b"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        initializer=[numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@pytest.fixture(scope="module")
def image_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    if "onnx" not in FLAVORS:
        pytest.skip("no ONNX flavor in this build")
    root = tmp_path_factory.mktemp("image")
    store = open_metadata_store(f"sqlite:///{root / 'meta.db'}")
    artifacts = open_artifact_store((root / "artifacts").as_uri())
    registry = ModelRegistry(store, actor="test")
    save_model(_image_model(), root / "cnn", signature=Signature(inputs=()), flavor="onnx")
    stored = artifacts.put(root / "cnn")
    record = store.add_artifact(ArtifactRecord(id=new_id(), type="Model", uri=stored.uri,
                                               sha256=stored.sha256, size=stored.size))
    registry.register("cnn", record.id)
    registry.promote("cnn", 1)
    app = create_app("cnn", config=ServingConfig.from_table({"grpc_port": 0}), metadata=store,
                     artifacts=artifacts, feature_store=False, prediction_log=False)
    with background_server(app) as url:
        yield Service(url.removeprefix("http://"), f"127.0.0.1:{app.state.grpc_port}",
                      {"cnn": registry.load("cnn:1", artifacts)})
    store.close()


@pytest.mark.parametrize("protocol", ["v2-json", "v2-binary", "grpc"])
def test_onnx_image_model_takes_n_d_tensors(image_service: Service, protocol: str) -> None:
    model = image_service.models["cnn"]
    meta = _metadata(image_service, "cnn")
    assert meta["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 3, 32, 32]}]
    assert meta["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]
    rng = np.random.default_rng(3)
    for n in ROWS:
        images = rng.normal(size=(n, 3, 32, 32)).astype(np.float32)
        expected = model.predict_tensors({"image": images})["logits"]
        if protocol == "grpc":
            client: Any = tgrpc.InferenceServerClient(image_service.grpc)
            tensor = tgrpc.InferInput("image", [n, 3, 32, 32], "FP32")
            tensor.set_data_from_numpy(images)
            result = client.infer("cnn", [tensor])
        else:
            binary = protocol == "v2-binary"
            client = thttp.InferenceServerClient(image_service.http)
            tensor = thttp.InferInput("image", [n, 3, 32, 32], "FP32")
            tensor.set_data_from_numpy(images, binary_data=binary)
            result = client.infer("cnn", [tensor], outputs=[
                thttp.InferRequestedOutput("logits", binary_data=binary)])
        logits = result.as_numpy("logits")
        assert logits.shape == (n, 10) and logits.dtype == np.float32, (protocol, n)
        np.testing.assert_array_equal(logits, expected)


def test_onnx_image_model_refuses_wrong_tensors_naming_the_spec(image_service: Service) -> None:
    url = f"http://{image_service.http}"
    spec = "'image' FP32 [-1, 3, 32, 32]"
    cases = {
        "rank": ({"name": "image", "shape": [1, 3, 32], "datatype": "FP32",
                  "data": [0.0] * 96}, spec),
        "size": ({"name": "image", "shape": [1, 3, 16, 16], "datatype": "FP32",
                  "data": [0.0] * 768}, spec),
        "datatype": ({"name": "image", "shape": [1, 3, 32, 32], "datatype": "FP64",
                      "data": [0.0] * 3072}, spec),
        "name": ({"name": "picture", "shape": [1, 3, 32, 32], "datatype": "FP32",
                  "data": [0.0] * 3072}, "'picture' is not an input of this model"),
    }
    for what, (tensor, words) in cases.items():
        got = httpx.post(f"{url}/v2/models/cnn/infer", json={"inputs": [tensor]}, timeout=30)
        assert 400 <= got.status_code < 500, (what, got.text)
        assert words in got.json()["error"], (what, got.text)
    v1 = httpx.post(f"{url}/v1/models/cnn:predict", json={"instances": [[0.0]]}, timeout=30)
    assert v1.status_code == 422 and "/v2/models/cnn/infer" in v1.json()["error"]
    image = {"name": "image", "shape": [1, 3, 32, 32], "datatype": "FP32", "data": [0.0] * 3072}
    explained = httpx.post(f"{url}/v2/models/cnn/explain", json={"inputs": [image]}, timeout=30)
    assert explained.status_code == 422 and "N-d tensors" in explained.json()["error"]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(pick=st.integers(0, len(CASES) - 1), n=st.integers(1, 100), binary=st.booleans(),
       start=st.integers(0, 99))
def test_no_flavor_or_task_can_produce_a_v2_answer_whose_shape_differs_from_its_data(
    service: Service, rows: pd.DataFrame, pick: int, n: int, binary: bool, start: int
) -> None:
    """Property: whatever a real model of any flavor and task answers for any rows, each
    encoded output's declared shape holds exactly its data (JSON and binary tensors)."""
    from ctloop.serving.inputs import Inputs
    from ctloop.serving.protocols.v2 import Infer, encode_outputs, output_tensors
    from ctloop.serving.scoring.answer import answer_of

    case = CASES[pick]
    model = service.models[case.name]
    frame = pd.concat([rows, rows]).iloc[start:start + n]
    tensors = output_tensors(answer_of(model, model.predict(frame)))
    inputs = Inputs({"x1": np.zeros(n)}, n, [str(i) for i in range(n)])
    names = frozenset(t.name for t in tensors) if binary else frozenset()
    body, length = encode_outputs(Infer(inputs, None, None, names, False), tensors, {})
    header = json.loads(body if length is None else body[:length])
    tail, offset = (b"" if length is None else body[length:]), 0
    for out in header["outputs"]:
        count = int(np.prod(out["shape"]))
        assert out["shape"][0] == n, (case.name, out)
        if "data" in out:
            assert len(out["data"]) == count, (case.name, out["name"])
            continue
        size = out["parameters"]["binary_data_size"]
        if out["datatype"] == "BYTES":
            raw, pos, values = tail[offset:offset + size], 0, 0
            while pos < len(raw):
                pos += 4 + int.from_bytes(raw[pos:pos + 4], "little")
                values += 1
            assert values == count, (case.name, out["name"])
        else:
            assert size == count * np.dtype(DATATYPE_SIZES[out["datatype"]]).itemsize
        offset += size
    assert offset == len(tail)


DATATYPE_SIZES = {"FP64": "<f8", "FP32": "<f4", "INT64": "<i8", "INT32": "<i4", "BOOL": "?"}


# --- a missing value for an integer input -----------------------------------------------------

# Models whose signature lets x2 (an integer column) be null: the ONNX graph whose x2 input is
# INT64, scikit-learn estimators that refuse NaN (on the NumPy path and on a frame), a float
# ONNX graph that passes NaN through to its probabilities, and the boosters, which score a
# missing value natively.
NULL_CASES = [c for c in CASES if c.name in {
    "onnx-cols-multi", "onnx-multi", "sk-multi", "skpipe-multi", "skcols-bin", "lgb-bin",
    "xgb-reg", "cb-multi"}]
REFUSED = {"onnx-cols-multi": ("'x2' is INT64 [-1, 1]", "cannot hold a missing value",
                               "export the model with a float input"),
           "sk-multi": ("['x2']", "Send a value in every row", "imputer"),
           "skpipe-multi": ("['x2']", "Send a value in every row", "imputer"),
           "skcols-bin": ("['x2']", "Send a value in every row", "imputer"),
           "onnx-multi": ("answered NaN", "['x2']", "cannot score a missing value")}


@pytest.fixture(scope="module")
def null_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A project (``.ctloop`` under its root) serving NULL_CASES; x2 declared nullable."""
    root = tmp_path_factory.mktemp("nulls")
    home = root / ".ctloop"
    store = open_metadata_store(f"sqlite:///{home / 'metadata.db'}")
    artifacts = open_artifact_store((home / "artifacts").as_uri())
    registry = ModelRegistry(store, actor="test")
    train = _data(600, seed=1)
    signature = Signature.from_frame(train, FEATURES, nullable=["x2"])
    for case in NULL_CASES:
        folder = root / case.name
        save_model(case.fit(train[FEATURES], train[case.label]), folder, signature=signature,
                   task=case.task, flavor=case.flavor, classes=case.classes)
        stored = artifacts.put(folder)
        record = store.add_artifact(ArtifactRecord(id=new_id(), type="Model", uri=stored.uri,
                                                   sha256=stored.sha256, size=stored.size))
        registry.register(case.name, record.id)
        registry.promote(case.name, 1)
    models = {c.name: registry.load(f"{c.name}:1", artifacts) for c in NULL_CASES}
    assert models["onnx-cols-multi"].signature.inputs[1].nullable
    app = create_app([c.name for c in NULL_CASES], config=ServingConfig.from_table(
        {"grpc_port": 0}), metadata=store, artifacts=artifacts, feature_store=False,
        prediction_log=False)
    with background_server(app) as url:
        yield Service(url.removeprefix("http://"), f"127.0.0.1:{app.state.grpc_port}", models,
                      registry, artifacts, home)
    store.close()


def _with_a_gap(rows: pd.DataFrame, n: int) -> pd.DataFrame:
    """``n`` rows whose x2 (integer) is missing in one of them (the second, if any)."""
    frame = rows.head(n).astype({"x2": "float64"}).reset_index(drop=True)
    frame.loc[min(1, n - 1), "x2"] = np.nan
    return frame


def _send_gap(service: Service, name: str, frame: pd.DataFrame, protocol: str
              ) -> tuple[int, str, np.ndarray | None]:
    """(status, error text, the answer the task reads) for rows holding NaN / null."""
    if protocol == "grpc":
        inputs = []
        for column in FEATURES:
            tensor = tgrpc.InferInput(column, [len(frame)], "FP64")
            tensor.set_data_from_numpy(frame[column].to_numpy(dtype=np.float64))
            inputs.append(tensor)
        try:
            result = tgrpc.InferenceServerClient(service.grpc).infer(name, inputs)
        except InferenceServerException as exc:
            assert exc.status() == "StatusCode.INVALID_ARGUMENT", exc
            return 400, str(exc.message()), None
        out = "prediction" if name == "xgb-reg" else "probabilities"
        return 200, "", result.as_numpy(out)
    if protocol == "v2-binary":
        inputs = []
        for column in FEATURES:
            tensor = thttp.InferInput(column, [len(frame)], "FP64")
            tensor.set_data_from_numpy(frame[column].to_numpy(dtype=np.float64),
                                       binary_data=True)
            inputs.append(tensor)
        body, size = thttp.InferenceServerClient.generate_request_body(inputs)
        got = httpx.post(f"http://{service.http}/v2/models/{name}/infer", content=body,
                         headers={"Inference-Header-Content-Length": str(size)}, timeout=60)
    elif protocol == "v2-json":  # JSON has no NaN: the gap is a null in an FP64 tensor
        records = json.loads(frame.to_json(orient="columns"))
        body = {"inputs": [{"name": c, "shape": [len(frame)], "datatype": "FP64",
                            "data": [records[c][str(i)] for i in range(len(frame))]}
                           for c in FEATURES]}
        got = httpx.post(f"http://{service.http}/v2/models/{name}/infer", json=body,
                         timeout=60)
    else:
        records = json.loads(frame.to_json(orient="records"))  # NaN -> null
        got = httpx.post(f"http://{service.http}/v1/models/{name}:predict",
                         json={"instances": records}, timeout=60)
    if got.status_code != 200:
        return got.status_code, got.json()["error"], None
    out_name = "prediction" if name == "xgb-reg" else "probabilities"
    if protocol == "v2-binary":
        length = got.headers.get("Inference-Header-Content-Length")
        parsed = thttp.InferenceServerClient.parse_response_body(
            got.content, header_length=None if length is None else int(length))
        return 200, "", parsed.as_numpy(out_name)
    answer = got.json()
    if protocol == "v1":
        key = "predictions" if name == "xgb-reg" else "probabilities"
        return 200, "", np.asarray(answer[key], dtype=float)
    out = {o["name"]: o for o in answer["outputs"]}[out_name]
    return 200, "", np.reshape(np.asarray(out["data"], dtype=float), out["shape"])


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("case", NULL_CASES, ids=lambda c: c.name)
def test_a_missing_integer_is_refused_where_the_model_cannot_hold_it(
        null_service: Service, rows: pd.DataFrame, case: Case, protocol: str) -> None:
    """A null (NaN) in x2, an integer column the signature lets be null: the INT64 ONNX input
    and scikit-learn estimators without NaN support answer 4xx with one message naming the
    input and what to do (never INT64_MIN scored as if sent); the boosters score it."""
    model = null_service.models[case.name]
    for n in ROWS:
        frame = _with_a_gap(rows, n)
        status, error, got = _send_gap(null_service, case.name, frame, protocol)
        where = (case.name, protocol, n)
        if case.name in REFUSED:
            with pytest.raises(UserInputError) as in_process:
                model.predict(frame)
            message = str(in_process.value)
            assert all(words in message for words in REFUSED[case.name]), message
            assert "\n" not in message and f"of {n} row(s)" in message, message
            assert 400 <= status < 500 and message in error, (where, status, error)
            continue
        assert status == 200, (where, error)
        expected = model.predict(frame)
        assert got is not None and np.isfinite(expected).all(), where
        if case.task == "binary":
            expected = np.column_stack([1 - expected, expected])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9, err_msg=str(where))


def test_a_null_in_an_int64_tensor_is_refused_saying_what_to_do(null_service: Service) -> None:
    """JSON null sent as INT64 (which has no missing value) is a 400 naming the input."""
    body = {"inputs": [{"name": "x1", "shape": [2], "datatype": "FP64", "data": [0.1, 0.2]},
                       {"name": "x2", "shape": [2], "datatype": "INT64", "data": [3, None]},
                       {"name": "x3", "shape": [2], "datatype": "FP64", "data": [0.3, 0.4]}]}
    for name in ("onnx-cols-multi", "lgb-bin"):
        got = httpx.post(f"http://{null_service.http}/v2/models/{name}/infer", json=body,
                         timeout=60)
        assert got.status_code == 400, got.text
        error = got.json()["error"]
        assert error.startswith("Input 'x2' is declared INT64 but holds NoneType"), error
        assert "cannot hold a missing value: send a value in every row" in error, error


def test_batch_scoring_says_the_same_in_one_line(
        null_service: Service, rows: pd.DataFrame, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from ctloop.testing.cli import cli, one_error_line

    assert null_service.home is not None
    project = tmp_path
    monkeypatch.chdir(project)
    monkeypatch.setenv("CTLOOP_HOME", str(null_service.home))
    _with_a_gap(rows, 100).to_parquet(project / "gap.parquet")
    for name in ("onnx-cols-multi", "sk-multi"):
        with pytest.raises(UserInputError) as in_process:
            null_service.models[name].predict(_with_a_gap(rows, 100))
        code, _, err = cli(capsys, "predict", f"{name}:1", "gap.parquet", "out.parquet")
        line = one_error_line(err)
        assert code == 2 and str(in_process.value) in line, (line, str(in_process.value))
        assert all(w in line for w in REFUSED[name]) and "of 100 row(s)" in line, line
    assert not (project / "out.parquet").exists()
