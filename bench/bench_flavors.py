"""Benchmark: what each flavor's ``LoadedModel.predict`` costs over the library's own call.

Same models, same rows, same run: for every flavor (a scikit-learn Pipeline, LightGBM
and XGBoost 4-class boosters, CatBoost with a categorical column, an skl2onnx
classifier, an ONNX image model through ``predict_tensors``) the median time of
ctloop's call (signature check, column order, the contract's shape) is divided by
the median time of the raw library call on the same prepared input (the floor).
Calls are interleaved, one thread, after an untimed warm-up.

    .venv/bin/python bench/bench_flavors.py
    .venv/bin/python bench/bench_flavors.py --repeat 400 --rows 1 100 1000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ctloop.models import Signature, load_model, save_model
from ctloop.models.flavor_catboost import catboost_frame
from ctloop.models.flavors import as_categories

NUMERIC = ["x1", "x2", "x3", "x4"]
FEATURES = [*NUMERIC, "shop"]
CLASSES = ["wd", "ac", "zz", "bb"]


def generate(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 4)), columns=NUMERIC)
    frame["shop"] = rng.choice(["north", "south", "east"], size=n)
    score = frame["x1"] - frame["x2"] + (frame["shop"] == "east")
    frame["label"] = np.asarray(CLASSES, dtype=object)[pd.qcut(score, 4, labels=False)]
    return frame


def models(train: pd.DataFrame, folder: Path) -> dict[str, tuple[Any, Callable[..., Any]]]:
    """name -> (loaded model, raw call on a frame of FEATURES)."""
    import catboost as cb
    import lightgbm as lgb
    import xgboost as xgb
    from onnx import TensorProto, helper, numpy_helper
    from skl2onnx import to_onnx
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    y = train["label"]
    index = y.map({c: i for i, c in enumerate(CLASSES)})
    signature = Signature.from_frame(train, FEATURES)
    out: dict[str, tuple[Any, Callable[..., Any]]] = {}

    pipe = make_pipeline(
        ColumnTransformer([("shop", OneHotEncoder(handle_unknown="ignore"), ["shop"]),
                           ("numbers", StandardScaler(), NUMERIC)]),
        LogisticRegression(max_iter=500),
    ).fit(train[FEATURES], y)
    save_model(pipe, folder / "sklearn", signature=signature)
    out["sklearn Pipeline"] = (load_model(folder / "sklearn"), pipe.predict_proba)

    booster = lgb.LGBMClassifier(n_estimators=100, verbose=-1, n_jobs=1).fit(
        as_categories(train[FEATURES]), index).booster_
    save_model(booster, folder / "lgb", signature=signature, classes=CLASSES)
    out["LightGBM 4-class"] = (load_model(folder / "lgb"),
                               lambda f: booster.predict(as_categories(f), num_threads=1))

    xgbm = xgb.XGBClassifier(n_estimators=100, n_jobs=1, tree_method="hist",
                             enable_categorical=True).fit(as_categories(train[FEATURES]), index)
    raw_xgb = xgbm.get_booster()
    save_model(raw_xgb, folder / "xgb", signature=signature, classes=CLASSES)
    out["XGBoost 4-class"] = (
        load_model(folder / "xgb"),
        lambda f: raw_xgb.predict(xgb.DMatrix(as_categories(f), enable_categorical=True)),
    )

    cat = cb.CatBoostClassifier(iterations=100, verbose=False, thread_count=1,
                                cat_features=["shop"], allow_writing_files=False)
    cat.fit(train[FEATURES], y)
    save_model(cat, folder / "cat", signature=signature)
    out["CatBoost 4-class"] = (
        load_model(folder / "cat"),
        lambda f: cat.predict_proba(catboost_frame(f, ["shop"]), thread_count=1),
    )

    matrix = train[NUMERIC].to_numpy(np.float32)
    clf = LogisticRegression(max_iter=500).fit(matrix, y)
    graph = to_onnx(clf, matrix[:1], target_opset=17, options={"zipmap": False})
    save_model(graph, folder / "onnx", signature=Signature.from_frame(train, NUMERIC))
    onnx_model = load_model(folder / "onnx")
    session = onnx_model.model.session
    out["ONNX (skl2onnx) 4-class"] = (
        onnx_model,
        lambda f: session.run(["probabilities"],
                              {"X": f[NUMERIC].to_numpy(np.float32)})[0],
    )

    rng = np.random.default_rng(0)
    weights = {"w": rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
               "b": rng.normal(size=4).astype(np.float32)}
    image_graph = helper.make_model(helper.make_graph(
        [helper.make_node("Conv", ["image", "w", "b"], ["conv"], pads=[1, 1, 1, 1]),
         helper.make_node("GlobalAveragePool", ["conv"], ["pool"]),
         helper.make_node("Flatten", ["pool"], ["out"])],
        "cnn", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 4])],
        initializer=[numpy_helper.from_array(v, k) for k, v in weights.items()],
    ), opset_imports=[helper.make_opsetid("", 17)])
    image_graph.ir_version = 8
    save_model(image_graph, folder / "image", signature=Signature(inputs=()))
    image = load_model(folder / "image")
    out["ONNX image [N,3,32,32] (tensors)"] = (
        image, lambda t: image.model.session.run(["out"], {"image": t})[0])
    return out


def median_us(call: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 100])
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    train = generate(4000)
    with threadpool_limits(limits=1), tempfile.TemporaryDirectory() as tmp:
        built = models(train, Path(tmp))
        print(f"{'flavor':34} {'rows':>5} {'ctloop us':>10} {'library us':>11} {'ratio':>6}")
        pool = generate(5000, seed=1)[FEATURES]
        for name, (loaded, raw) in built.items():
            for n in args.rows:
                ours, floor = calls(name, loaded, raw, pool.head(n), n)
                ours(), floor()  # warm-up
                a = b = 0.0
                for _ in range(4):  # interleaved quarters
                    a += median_us(ours, args.repeat // 4) / 4
                    b += median_us(floor, args.repeat // 4) / 4
                print(f"{name:34} {n:>5} {a:>10.0f} {b:>11.0f} {a / b:>6.2f}")


def calls(
    name: str, loaded: Any, raw: Callable[..., Any], rows: pd.DataFrame, n: int
) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """(ctloop's call, the library's call) on the same input, checked to agree."""
    if "image" in name:
        tensor = np.random.default_rng(n).normal(size=(n, 3, 32, 32)).astype(np.float32)

        def ours() -> Any:
            return loaded.predict_tensors({"image": tensor})["out"]

        def floor() -> Any:
            return raw(tensor)
    else:
        prepared = loaded.signature.prepare(rows)

        def ours() -> Any:
            return loaded.predict(rows)

        def floor() -> Any:
            return raw(prepared)
    np.testing.assert_allclose(np.asarray(ours()), np.asarray(floor()), rtol=1e-5, atol=1e-6)
    return ours, floor

if __name__ == "__main__":
    main()
