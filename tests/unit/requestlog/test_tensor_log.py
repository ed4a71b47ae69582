"""A tensor model's requests are logged with their tensors' digests, shapes and outputs.

An ONNX image model (built here) served over v2 JSON with 1, 2 and many images: each
logged row holds the BLAKE2b-128 digest of its own image (equal images, equal digests),
the image's shape, the model's 10 logits as numbers and their shape, not a NaN row.
Once through the writer thread (a log object handed in), once through the writer
process (the log the service opens from its settings).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from ctloop.artifacts import open_artifact_store
from ctloop.metadata import ArtifactRecord, new_id, open_metadata_store
from ctloop.models import Signature, save_model
from ctloop.models.flavors import FLAVORS
from ctloop.registry import ModelRegistry
from ctloop.requestlog.log import open_prediction_log
from ctloop.serving import create_app

pytestmark = pytest.mark.skipif("onnx" not in FLAVORS, reason="no ONNX flavor in this build")


def _image_model() -> Any:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = {"conv_w": rng.normal(size=(2, 3, 3, 3)).astype(np.float32),
               "conv_b": rng.normal(size=2).astype(np.float32),
               "dense_w": rng.normal(size=(10, 2)).astype(np.float32),
               "dense_b": rng.normal(size=10).astype(np.float32)}
    nodes = [
        helper.make_node("Conv", ["image", "conv_w", "conv_b"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["conv"], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["flat"]),
        helper.make_node("Gemm", ["flat", "dense_w", "dense_b"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        initializer=[numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tensor-log")
    store = open_metadata_store(f"sqlite:///{root / 'meta.db'}")
    artifacts = open_artifact_store((root / "artifacts").as_uri())
    save_model(_image_model(), root / "cnn", signature=Signature(inputs=()), flavor="onnx")
    stored = artifacts.put(root / "cnn")
    record = store.add_artifact(ArtifactRecord(id=new_id(), type="Model", uri=stored.uri,
                                               sha256=stored.sha256, size=stored.size))
    registry = ModelRegistry(store, actor="test")
    registry.register("cnn", record.id)
    registry.promote("cnn", 1)
    store.close()
    return root


def _digest(image: np.ndarray) -> str:
    digest = hashlib.blake2b(f"{image.dtype.str}{list(image.shape)}".encode(), digest_size=16)
    digest.update(np.ascontiguousarray(image).data)
    return digest.hexdigest()


@pytest.mark.parametrize("writer", ["thread", "process"])
def test_an_image_models_rows_keep_digest_shape_and_logits(project: Path, writer: str) -> None:
    store = open_metadata_store(f"sqlite:///{project / 'meta.db'}")
    artifacts = open_artifact_store((project / "artifacts").as_uri())
    folder = project / f"log-{writer}"
    log: Any = open_prediction_log(folder) if writer == "thread" else str(folder)
    app = create_app("cnn", metadata=store, artifacts=artifacts, feature_store=False,
                     prediction_log=log)
    rng = np.random.default_rng(1)
    sent: dict[str, tuple[np.ndarray, list[float]]] = {}
    with TestClient(app) as client:
        assert type(app.state.serving.logger).__name__ == (
            "RequestLogger" if writer == "thread" else "ProcessLogger")
        for n in (1, 2, 17):
            images = rng.normal(size=(n, 3, 8, 8)).astype(np.float32)
            if n == 2:
                images[1] = images[0]  # the same image twice: the same digest
            ids = [f"{writer}-{n}-{i}" for i in range(n)]
            body = {"id": ids[0], "inputs": [{"name": "image", "shape": list(images.shape),
                                              "datatype": "FP32",
                                              "data": images.ravel().tolist()}],
                    "parameters": {"request_ids": ids}}
            got = client.post("/v2/models/cnn/infer", json=body)
            assert got.status_code == 200, got.text
            answered = np.asarray(got.json()["outputs"][0]["data"]).reshape(n, 10)
            for i, rid in enumerate(ids):
                sent[rid] = (images[i], answered[i].tolist())
        app.state.serving.logger.flush()
    store.close()
    frame = open_prediction_log(folder).read(model_name="cnn")
    assert sorted(frame["request_id"]) == sorted(sent)
    for row in frame.to_dict("records"):
        image, logits = sent[str(row["request_id"])]
        assert row["f_image"] == _digest(image)
        assert np.asarray(row["f_image_shape"]).tolist() == [3, 8, 8]
        np.testing.assert_allclose(np.asarray(row["o_logits"], dtype=float), logits, rtol=1e-6)
        assert np.asarray(row["o_logits_shape"]).tolist() == [10]
    twice = frame[frame["request_id"].isin([f"{writer}-2-0", f"{writer}-2-1"])]
    assert twice["f_image"].nunique() == 1
