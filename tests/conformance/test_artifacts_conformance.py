"""One suite for every artifact backend: local folder, fsspec memory, S3 (moto server)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctloop.artifacts import ArtifactStore, open_artifact_store
from ctloop.core.errors import IntegrityError, NotFound, UserInputError
from ctloop.core.net import free_port
from ctloop.examples.flights.data import load_table
from ctloop.testing.services import unique_name


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    pytest.importorskip("s3fs")
    server_mod = pytest.importorskip("moto.server")
    port = free_port()
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def _s3_options(endpoint: str) -> dict:
    return {
        "endpoint_url": endpoint,
        "key": "test",
        "secret": "test",
        "client_kwargs": {"region_name": "us-east-1"},
    }


@pytest.fixture(params=["local", "memory", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return open_artifact_store((tmp_path / "store").as_uri())
    if request.param == "memory":
        return open_artifact_store(f"memory://{unique_name('b')}/arts", cache_dir=tmp_path / "c")
    endpoint = request.getfixturevalue("s3_endpoint")
    import boto3

    bucket = unique_name("b").replace("_", "-")
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)
    return open_artifact_store(
        f"s3://{bucket}/arts", cache_dir=tmp_path / "c", storage_options=_s3_options(endpoint)
    )


def _damage(store: ArtifactStore, uri: str) -> None:
    """Change stored bytes behind the store's back, as a disk fault or a person would."""
    key = uri[len(store.url.rstrip("/")) + 1 :]
    local = store.bytes.local_path(key)  # type: ignore[attr-defined]
    if local is not None:
        os.chmod(local, 0o644)
        data = bytearray(local.read_bytes())
        data[len(data) // 2] ^= 0xFF
        local.write_bytes(bytes(data))
        return
    fs, path = store.bytes.fs, store.bytes._path(key)  # type: ignore[attr-defined]
    data = bytearray(fs.cat_file(path))
    data[len(data) // 2] ^= 0xFF
    fs.pipe_file(path, bytes(data))


def test_file_round_trip_with_real_data(store: ArtifactStore, tmp_path: Path) -> None:
    weather = load_table("weather")
    source = tmp_path / "weather.parquet"
    weather.to_parquet(source, index=False)
    stored = store.put(source)
    assert stored.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert stored.size == source.stat().st_size
    assert stored.uri.startswith(store.url) and stored.uri.endswith(".parquet")
    back = store.get(stored.uri, stored.sha256, name="weather")
    pd.testing.assert_frame_equal(pd.read_parquet(back), weather)
    assert store.verify(stored.uri, stored.sha256)
    assert store.exists(stored.uri)


def test_same_content_is_stored_once(store: ArtifactStore, tmp_path: Path) -> None:
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    payload = np.random.default_rng(1).bytes(300_000)
    a.write_bytes(payload)
    b.write_bytes(payload)
    assert store.put(a).uri == store.put(b).uri
    b.write_bytes(payload + b"!")
    assert store.put(b).uri != store.put(a).uri


def test_folder_round_trip_and_stable_hash(store: ArtifactStore, tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "weights").mkdir(parents=True)
    (model / "weights" / "w.npy").write_bytes(np.arange(1000).tobytes())
    (model / "MLmodel").write_text("flavor: sklearn\n")
    (model / "empty").mkdir()
    first = store.put(model)
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in sorted(model.rglob("*"), reverse=True):  # other creation order, other mtimes
        target = copy / path.relative_to(model)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    assert store.put(copy).sha256 == first.sha256
    back = store.get(first.uri, first.sha256, name="model")
    assert back.is_dir()
    assert {
        p.relative_to(back).as_posix(): p.read_bytes() for p in back.rglob("*") if p.is_file()
    } == {p.relative_to(model).as_posix(): p.read_bytes() for p in model.rglob("*") if p.is_file()}
    assert (back / "empty").is_dir()


def test_changed_bytes_raise_integrity_error_naming_the_artifact(
    store: ArtifactStore, tmp_path: Path
) -> None:
    source = tmp_path / "data.csv"
    load_table("airlines").to_csv(source, index=False)
    stored = store.put(source)
    store.get(stored.uri, stored.sha256)  # verified once: the memo must not hide a change
    _damage(store, stored.uri)
    if hasattr(store, "cache_dir"):  # a remote store's cached copy is fine; force a re-read
        for cached in Path(store.cache_dir).rglob(f"{stored.sha256}*"):
            cached.unlink()
    with pytest.raises(IntegrityError, match="airlines-table") as info:
        store.get(stored.uri, stored.sha256, name="airlines-table")
    assert stored.sha256[:16] in str(info.value)
    assert not store.verify(stored.uri, stored.sha256)


def test_wrong_recorded_hash_is_an_integrity_error(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "x.txt"
    source.write_text("abc")
    stored = store.put(source)
    with pytest.raises(IntegrityError):
        store.get(stored.uri, "0" * 64, name="x")


def test_missing_bytes_and_bad_inputs(store: ArtifactStore, tmp_path: Path) -> None:
    gone = store.url.rstrip("/") + "/ab/" + "ab" * 32 + ".bin"
    with pytest.raises(NotFound, match="gone"):
        store.get(gone, "ab" * 32, name="old-model")
    assert not store.exists(gone)
    with pytest.raises(NotFound, match="no such file"):
        store.put(tmp_path / "nothing-here")
    with pytest.raises(UserInputError, match="not in this artifact store"):
        store.get("file:///elsewhere/x", "ab" * 32)


def test_concurrent_puts_of_the_same_content(store: ArtifactStore, tmp_path: Path) -> None:
    payload = np.random.default_rng(2).bytes(1_000_000)
    sources = []
    for i in range(8):
        path = tmp_path / f"p{i}.bin"
        path.write_bytes(payload)
        sources.append(path)
    with ThreadPoolExecutor(8) as pool:
        stored = list(pool.map(store.put, sources))
    assert len({s.uri for s in stored}) == 1
    assert store.get(stored[0].uri, stored[0].sha256).read_bytes() == payload
