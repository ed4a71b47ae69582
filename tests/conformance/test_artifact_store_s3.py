"""The artifact store on S3, against a moto server on loopback that checks credentials.

The shared suite (``test_artifacts_conformance.py``) proves the store behaves
the same on S3 as on a folder; this file covers what only S3 has: credentials
and endpoint from the standard AWS variables, wrong credentials, a missing
bucket and multipart uploads of large files. The server runs in its own
process with IAM checks on (``INITIAL_NO_AUTH_ACTION_COUNT``), so a wrong
secret really is refused.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ctloop.artifacts import open_artifact_store
from ctloop.core.errors import ConfigError
from ctloop.testing.s3 import S3Server, moto_server

pytest.importorskip("s3fs")
pytest.importorskip("moto")



@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with moto_server(["ctloop-arts"]) as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_clients() -> Iterator[None]:
    """fsspec caches file systems by their options; credentials in the env must be re-read."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    yield
    s3fs.S3FileSystem.clear_instance_cache()


def _file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_credentials_and_endpoint_from_the_standard_aws_variables(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    store = open_artifact_store(f"s3://{s3.bucket}/env", cache_dir=tmp_path / "cache")
    obj = store.put(_file(tmp_path, "a.json", b'{"a": 1}'))
    assert obj.uri.startswith(f"s3://{s3.bucket}/env/") and obj.uri.endswith(".json")
    assert store.get(obj.uri, obj.sha256).read_bytes() == b'{"a": 1}'


def test_folder_round_trip_with_explicit_options(s3: S3Server, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(os.urandom(4096))
    (folder / "sub" / "meta.json").write_text("{}")
    store = open_artifact_store(
        f"s3://{s3.bucket}/opts", cache_dir=tmp_path / "cache", storage_options=s3.options()
    )
    obj = store.put(folder)
    fresh = open_artifact_store(
        f"s3://{s3.bucket}/opts", cache_dir=tmp_path / "other", storage_options=s3.options()
    )
    back = fresh.get(obj.uri, obj.sha256)
    assert (back / "weights.bin").read_bytes() == (folder / "weights.bin").read_bytes()
    assert (back / "sub" / "meta.json").read_text() == "{}"


@pytest.mark.parametrize("wrong", [{"secret": "not-the-secret"}, {"key": "AKIAUNKNOWN00000"}])
def test_wrong_credentials_are_a_clear_config_error(
    s3: S3Server, tmp_path: Path, wrong: dict[str, str]
) -> None:
    store = open_artifact_store(
        f"s3://{s3.bucket}/arts", cache_dir=tmp_path / "cache", storage_options=s3.options(**wrong)
    )
    with pytest.raises(ConfigError, match="permission denied") as info:
        store.put(_file(tmp_path, "x.txt", b"x"))
    assert "Check the credentials" in info.value.message
    assert f"s3://{s3.bucket}/arts" in info.value.message
    with pytest.raises(ConfigError, match="permission denied"):
        store.get(f"s3://{s3.bucket}/arts/ab/abc.txt", "ab" * 32)


def test_wrong_credentials_in_the_environment(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "stale-secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    store = open_artifact_store(f"s3://{s3.bucket}/arts", cache_dir=tmp_path / "cache")
    with pytest.raises(ConfigError, match="Check the credentials"):
        store.put(_file(tmp_path, "y.txt", b"y"))


def test_missing_bucket_is_a_clear_error(s3: S3Server, tmp_path: Path) -> None:
    store = open_artifact_store(
        "s3://no-such-bucket/arts", cache_dir=tmp_path / "cache", storage_options=s3.options()
    )
    with pytest.raises(ConfigError) as info:
        store.put(_file(tmp_path, "z.txt", b"z"))
    # A person can tell which store is wrong, and what to do, from the one line the CLI prints.
    line = info.value.one_line()
    assert "bucket 'no-such-bucket'" in line and "does not exist" in line
    assert "s3://no-such-bucket/arts" in line
    with pytest.raises(ConfigError, match="does not exist"):  # not "rerun with --no-cache"
        store.get("s3://no-such-bucket/arts/ab/abc.txt", "ab" * 32)


@pytest.mark.slow
def test_large_file_is_uploaded_in_parts_and_read_back_intact(s3: S3Server, tmp_path: Path) -> None:
    import boto3

    big = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with open(big, "wb") as fh:
        for _ in range(110):  # 110 MiB: above s3fs's multipart threshold (2 x 50 MiB parts)
            chunk = os.urandom(1 << 20)
            digest.update(chunk)
            fh.write(chunk)
    store = open_artifact_store(
        f"s3://{s3.bucket}/big", cache_dir=tmp_path / "cache", storage_options=s3.options()
    )
    obj = store.put(big)
    assert obj.sha256 == digest.hexdigest() and obj.size == 110 << 20
    client = boto3.client(
        "s3",
        endpoint_url=s3.endpoint,
        region_name="us-east-1",
        aws_access_key_id=s3.key,
        aws_secret_access_key=s3.secret,
    )
    head = client.head_object(Bucket=s3.bucket, Key=obj.uri.split(f"{s3.bucket}/", 1)[1])
    assert head["ETag"].strip('"').endswith("-3")  # a multipart upload of three parts
    big.unlink()
    fresh = open_artifact_store(
        f"s3://{s3.bucket}/big", cache_dir=tmp_path / "other", storage_options=s3.options()
    )
    back = fresh.get(obj.uri, obj.sha256)
    assert back.stat().st_size == 110 << 20


def test_endpoint_and_region_from_ctloop_toml(
    s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "CTLOOP_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret)
    (tmp_path / "ctloop.toml").write_text(
        f'[ctloop]\nartifacts = "s3://{s3.bucket}/toml"\n\n'
        f'[ctloop.s3]\nendpoint_url = "{s3.endpoint}"\nregion = "us-east-1"\n'
    )
    store = open_artifact_store(cache_dir=tmp_path / "cache")  # URL and options from settings
    obj = store.put(_file(tmp_path, "t.txt", b"from toml"))
    assert obj.uri.startswith(f"s3://{s3.bucket}/toml/")
    assert store.get(obj.uri, obj.sha256).read_bytes() == b"from toml"
    (tmp_path / "ctloop.toml").write_text("[ctloop.s3]\nsecret = \"no\"\n")
    with pytest.raises(ConfigError, match="Credentials belong in AWS_"):
        open_artifact_store(f"s3://{s3.bucket}/toml")
