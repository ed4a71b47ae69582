"""Compiled tree ensembles answer as their library does; their cache is hash-checked."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctloop.metadata import ModelVersionUpdate
from ctloop.models.compiled import (
    MemoryCompiledCache,
    _pack,
    _unpack,
    attach_compiled,
    compile_predictor,
    compiles_held,
    pending_compile,
    probe_matrix,
)
from ctloop.models.compiled_lleaves import available
from ctloop.models.flavors import load_model, save_model
from ctloop.models.signature import Signature
from ctloop.testing.services import patience

lgb = pytest.importorskip("lightgbm")
pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

CATS = ["JFK", "LGA", "EWR", "BOS", "SFO"]


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "distance": rng.gamma(2.0, 500.0, n),
            "hour": rng.integers(0, 24, n).astype(float),
            "origin": rng.choice(CATS[:3], n),
            "dest": rng.choice(CATS, n),
            "temp": rng.normal(50, 20, n),
        }
    )
    frame.loc[rng.random(n) < 0.15, "temp"] = np.nan  # missing values
    frame.loc[rng.random(n) < 0.05, "distance"] = np.nan
    return frame


def _target(frame: pd.DataFrame, task: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    score = (
        frame["distance"].fillna(800) / 1000
        + (frame["origin"] == "JFK") * 1.5
        + frame["temp"].fillna(30) / 40
        + rng.normal(0, 0.5, len(frame))
    )
    if task == "binary":
        return (score > score.median()).to_numpy().astype(int)
    if task == "multiclass":
        return np.digitize(score, np.quantile(score, [0.33, 0.66]))
    return score.to_numpy()


def _categorical(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column in ("origin", "dest"):
        out[column] = out[column].astype("category")
    return out


def _matrix(booster: object, frame: pd.DataFrame) -> np.ndarray:
    """The float matrix LightGBM builds from a frame: categories as training codes, NaN unseen."""
    cats = dict(zip(["origin", "dest"], booster.pandas_categorical, strict=True))  # type: ignore[attr-defined]
    columns = []
    for name in frame.columns:
        if name in cats:
            codes = pd.Index(cats[name]).get_indexer(frame[name]).astype(float)
            codes[codes < 0] = np.nan
            columns.append(codes)
        else:
            columns.append(frame[name].to_numpy(dtype=float))
    return np.column_stack(columns)


def _save(task: str, folder: Path) -> tuple[str, Path]:
    train = _frame(3000, 1)
    params = {"objective": task, "verbose": -1, "num_threads": 1, "min_data_per_group": 20,
              "cat_smooth": 1.0, "max_cat_to_onehot": 2}
    if task == "multiclass":
        params["num_class"] = 3
    booster = lgb.train(params, lgb.Dataset(_categorical(train), _target(train, task, 2)), 25)
    signature = Signature.from_frame(train, list(train.columns), nullable=list(train.columns))
    save_model(booster, folder, signature=signature,
               task="regression" if task == "regression" else "classification")
    return task, folder


@pytest.fixture(scope="module", params=["binary", "multiclass", "regression"])
def saved(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    return _save(request.param, tmp_path_factory.mktemp(request.param))


def test_compiled_answers_equal_the_library(saved: tuple[str, Path]) -> None:
    """Through the service's "auto" path: the compile worker (a child process) builds
    the code while the library answers, then the checked code is swapped in."""
    task, folder = saved
    model = load_model(folder)
    with compiles_held():
        job = attach_compiled(model, MemoryCompiledCache(), background=True)
        assert job is not None and pending_compile(model) is job
        assert model.compiled is None  # the library answers until the worker is done
    assert job.join(patience(300)), "the background compile did not finish"
    assert pending_compile(model) is None
    predictor = model.compiled
    assert predictor is not None and predictor.backend == "lleaves" and predictor.seconds > 0
    booster = model.model
    for rows in (1, 2, 500):
        frame = _frame(rows, 10 + rows)
        frame.loc[frame.index[:1], "dest"] = "ORD"  # a category never seen in training
        expected = booster.predict(_categorical(frame))  # the library, from the user's frame
        got = predictor.predict(_matrix(booster, frame))
        assert got.shape == expected.shape
        if task == "multiclass":
            assert got.shape == (rows, 3)
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=0)
    probes = probe_matrix(model)
    assert np.isnan(probes).any() and len(probes) > 100
    np.testing.assert_allclose(predictor.predict(probes), booster.predict(probes), rtol=1e-9)
    with pytest.raises(ValueError, match="columns"):
        predictor.predict(np.zeros((1, 2)))  # a wrong width never reaches the native code


def _registry(tmp_path: Path, folder: Path):  # type: ignore[no-untyped-def]
    from ctloop.artifacts import open_artifact_store
    from ctloop.metadata import open_metadata_store
    from ctloop.metadata.base import ArtifactRecord
    from ctloop.registry import ModelRegistry

    store = open_metadata_store(f"sqlite:///{tmp_path / 'md.db'}")
    artifacts = open_artifact_store((tmp_path / "artifacts").as_uri())
    stored = artifacts.put(folder)
    store.add_artifact(ArtifactRecord(id="a1", type="Model", uri=stored.uri,
                                      sha256=stored.sha256, size=stored.size))
    registry = ModelRegistry(store, artifacts=artifacts)
    registry.register("m", "a1")
    return registry, store, artifacts


def test_cached_with_the_version_and_tamper_or_stale_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, folder = _save("binary", tmp_path / "model")
    from ctloop.models.compiled_cache import VersionCompiledCache

    registry, store, artifacts = _registry(tmp_path, folder)
    model = registry.load("m:1")
    cache = VersionCompiledCache(store, artifacts, "m", 1)
    assert attach_compiled(model, cache, background=False) is None
    assert model.compiled is not None and model.compiled.seconds > 0  # compiled now
    entry = next(iter(store.get_model_version("m", 1).properties["compiled"].values()))

    again = registry.load("m:1")
    assert attach_compiled(again, cache, background=True) is None  # no thread: it was cached
    assert again.compiled is not None and again.compiled.seconds == 0.0

    # Tampered: the stored object's bytes changed. Refused, never loaded, compiled again.
    path = artifacts.get(entry["uri"], entry["sha256"])
    path.chmod(0o644)
    path.write_bytes(b"\x7fELF" + path.read_bytes()[4:-16] + b"\0" * 16)
    third = registry.load("m:1")
    with caplog.at_level(logging.WARNING, logger="ctloop.models.compiled"):
        attach_compiled(third, cache, background=False)
    assert "refused the compiled object of m:1" in caplog.text
    assert third.compiled is not None and third.compiled.seconds > 0  # compiled afresh
    assert artifacts.verify(entry["uri"], entry["sha256"])  # and the store healed

    # Stale: a record under another key (another compiler or CPU) is never looked up.
    properties = dict(store.get_model_version("m", 1).properties)
    properties["compiled"] = {"0" * 64: entry}
    store.update_model_version("m", 1, ModelVersionUpdate(properties=properties))
    fourth = registry.load("m:1")
    assert compile_predictor(fourth, cache, compile=False) is None
    assert fourth.compiled is None
    job = attach_compiled(fourth, cache, background=True)
    assert job is not None
    assert job.join(patience(300))
    assert fourth.compiled is not None and fourth.compiled.seconds > 0
    assert len(store.get_model_version("m", 1).properties["compiled"]) == 2


def test_answers_that_differ_keep_the_library(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, folder = _save("regression", tmp_path)
    model = load_model(folder)
    cache = MemoryCompiledCache()
    assert compile_predictor(model, cache) is not None
    other = lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1},
                      lgb.Dataset(_categorical(_frame(500, 7)), np.arange(500.0)), 5)
    from ctloop.models.compiled_lleaves import compile_object

    key = next(iter(cache.objects))
    _, expected = _unpack(cache.objects[key])
    # A well-formed artifact whose object is another model's: its answers give it away.
    cache.objects[key] = _pack(compile_object(other.model_to_string()), expected)
    with caplog.at_level(logging.WARNING, logger="ctloop.models.compiled"):
        assert compile_predictor(load_model(folder), cache) is None
    assert "the library keeps answering" in caplog.text


def test_without_a_c_compiler_the_object_loads_through_llvm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ctloop.models import compiled_lleaves

    _, folder = _save("binary", tmp_path)
    model = load_model(folder)
    monkeypatch.setattr(compiled_lleaves.shutil, "which",  # type: ignore[attr-defined]
                        lambda name: None)
    cache = MemoryCompiledCache()
    predictor = compile_predictor(model, cache)
    assert predictor is not None
    data, _ = _unpack(next(iter(cache.objects.values())))
    assert int.from_bytes(data[16:18], "little") == 1  # a relocatable object, not a library
    probes = probe_matrix(model)
    np.testing.assert_allclose(predictor.predict(probes), model.model.predict(probes), rtol=1e-9)
