"""Local-folder specifics of the artifact store, and its bad inputs end to end."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ctloop.artifacts import open_artifact_store
from ctloop.core.errors import ConfigError, IntegrityError, NotFound
from ctloop.examples.flights.data import load_table


def _store(tmp_path: Path):
    return open_artifact_store(str(tmp_path / "store"))


def _planes(tmp_path: Path) -> Path:
    path = tmp_path / "planes.parquet"
    load_table("planes").to_parquet(path, index=False)
    return path


def test_objects_are_read_only_and_no_temp_files_remain(tmp_path: Path) -> None:
    store = _store(tmp_path)
    stored = store.put(_planes(tmp_path))
    path = store.get(stored.uri, stored.sha256)
    assert not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert list((tmp_path / "store" / ".tmp").iterdir()) == []


def test_storing_again_never_rewrites_the_object(tmp_path: Path) -> None:
    store = _store(tmp_path)
    source = _planes(tmp_path)
    first = store.put(source)
    path = store.get(first.uri, first.sha256)
    before = (path.stat().st_ino, path.stat().st_mtime_ns)
    store.put(source)
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == before


def test_a_damaged_object_is_reported_then_healed_by_storing_it_again(tmp_path: Path) -> None:
    store = _store(tmp_path)
    source = _planes(tmp_path)
    stored = store.put(source)
    path = store.get(stored.uri, stored.sha256)
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes()[:-10])  # truncated, as by a crash or a full disk
    with pytest.raises(IntegrityError, match="planes"):
        store.get(stored.uri, stored.sha256, name="planes")
    again = store.put(source)  # e.g. the producing step rerun with --no-cache
    assert again.uri == stored.uri
    assert store.get(stored.uri, stored.sha256).read_bytes() == source.read_bytes()


def test_deleted_object_is_not_found(tmp_path: Path) -> None:
    store = _store(tmp_path)
    stored = store.put(_planes(tmp_path))
    Path(store.get(stored.uri, stored.sha256)).unlink()
    with pytest.raises(NotFound, match="gone"):
        store.get(stored.uri, stored.sha256, name="planes")


def test_changed_folder_archive_is_detected(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path)
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    stored = store.put(folder)
    archive = Path(store.url[len("file://") :]) / stored.uri[len(store.url) + 1 :]
    os.chmod(archive, 0o644)
    with open(archive, "r+b") as fh:
        fh.seek(600)
        fh.write(b"Z")
    with pytest.raises(IntegrityError):
        store.get(stored.uri, stored.sha256, name="model")


def test_default_location_comes_from_settings(ctloop_home: Path) -> None:
    store = open_artifact_store()
    source = ctloop_home / "x.txt"
    source.write_text("x")
    stored = store.put(source)
    assert stored.uri.startswith((ctloop_home / ".ctloop" / "artifacts").resolve().as_uri())


@pytest.mark.parametrize(
    "url, match",
    [
        ("file://otherhost/data", "must be local"),
        ("nosuchproto://bucket/x", "Cannot open the artifact store"),
    ],
)
def test_bad_store_urls(url: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        open_artifact_store(url)


def test_store_url_naming_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(ConfigError, match="is a file"):
        open_artifact_store(str(tmp_path / "f"))


def test_cli_reports_changed_bytes_in_one_line(
    ctloop_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ctloop artifacts show ID --verify` on damaged bytes: one line, exit code 3."""
    from ctloop.cli.main import main
    from ctloop.metadata import ArtifactRecord, new_id, open_metadata_store

    store = open_artifact_store()
    stored = store.put(_planes(ctloop_home))
    metadata = open_metadata_store()
    record = metadata.add_artifact(
        ArtifactRecord(
            id=new_id(),
            type="Dataset",
            uri=stored.uri,
            sha256=stored.sha256,
            size=stored.size,
            name="planes",
        )
    )
    metadata.close()
    assert main(["artifacts", "show", record.id, "--verify"]) == 0
    path = store.get(stored.uri, stored.sha256)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["artifacts", "show", record.id, "--verify"]) == IntegrityError.exit_code
    err = capsys.readouterr().err.strip()
    assert err.startswith("integrity error:") and record.id in err and "\n" not in err


def test_cli_reports_a_wrong_metadata_url_in_one_line(
    ctloop_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ctloop.cli.main import main

    monkeypatch.setenv("CTLOOP_METADATA_URL", "postgresql+psycopg://ana:pw@127.0.0.1:1/x")
    assert main(["runs", "list"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("backend unavailable:") and "\n" not in err and ":pw@" not in err


def test_unreachable_s3_endpoint_is_backend_unavailable(tmp_path: Path) -> None:
    pytest.importorskip("s3fs")
    from ctloop.core.errors import BackendUnavailable

    store = open_artifact_store(
        "s3://bucket/arts",
        cache_dir=tmp_path,
        storage_options={
            "endpoint_url": "http://127.0.0.1:1",
            "key": "k",
            "secret": "s",
            "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1},
        },
    )
    source = tmp_path / "x.txt"
    source.write_text("x")
    with pytest.raises(BackendUnavailable, match="cannot reach the artifact store s3://bucket"):
        store.put(source)
