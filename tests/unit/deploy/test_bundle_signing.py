"""Signed bundles (issue 19): with ``CTLOOP_BUNDLE_KEY`` the export signs the manifest
(HMAC-SHA256); an import where the key is set refuses an unsigned bundle, one signed with
another key, and one whose members and manifest were rewritten consistently -- in one line,
before anything is stored. A deployment exported with a signed first model keeps the key
in its secrets and its replicas refuse a bundle the key did not sign."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from ctloop.artifacts import open_artifact_store
from ctloop.core.errors import IntegrityError
from ctloop.core.hashing import hash_bytes
from ctloop.core.settings import load_settings
from ctloop.deploy import export_deployment
from ctloop.deploy.compose import read_env_file
from ctloop.deploy.firstmodel import serving_app
from ctloop.metadata import open_metadata_store
from ctloop.registry.bundle import (
    KEY_ENV,
    MANIFEST_NAME,
    SIGNATURE_NAME,
    export_bundle,
    import_bundle,
)
from ctloop.testing.cli import cli, one_error_line
from ctloop.testing.inmemory import InMemoryMetadataStore

KEY = "a-long-shared-signing-key-0123456789"


def _champion(tmp: Path) -> None:
    """A small model registered as ``churn``'s champion in the project's stores."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from ctloop.metadata import new_id
    from ctloop.metadata.base import ArtifactRecord
    from ctloop.models.flavors import save_model
    from ctloop.models.signature import Signature

    frame = pd.DataFrame({"usage": [1.0, 2.0, 3.0, 4.0], "tenure": [3.0, 1.0, 4.0, 1.0]})
    save_model(LogisticRegression().fit(frame, [0, 1, 0, 1]), tmp / "m",
               signature=Signature.from_frame(frame, list(frame.columns)), task="binary")
    settings = load_settings()
    store = open_metadata_store(settings.metadata_url)
    try:
        stored = open_artifact_store(settings.artifacts_url).put(tmp / "m")
        artifact = store.add_artifact(ArtifactRecord(
            new_id(), "Model", stored.uri, stored.sha256, stored.size, name="model"))
        version = store.create_model_version("churn", artifact.id, created_by="test").version
        store.move_alias("churn", "champion", version, actor="test", reason="test")
    finally:
        store.close()


@pytest.fixture
def signed(ctloop_home: Path, tmp_path_factory: pytest.TempPathFactory,
           monkeypatch: pytest.MonkeyPatch) -> Path:
    tmp = tmp_path_factory.mktemp("signer")
    _champion(tmp)
    settings = load_settings()
    store = open_metadata_store(settings.metadata_url)
    try:
        export_bundle(store, open_artifact_store(settings.artifacts_url), "churn@champion",
                      tmp / "churn.bundle", key=KEY)
    finally:
        store.close()
    monkeypatch.setenv(KEY_ENV, KEY)
    return tmp / "churn.bundle"


def _members(bundle: Path) -> dict[str, bytes]:
    with tarfile.open(bundle) as tar:
        out = {}
        for m in tar:
            handle = tar.extractfile(m)
            out[m.name] = handle.read() if handle is not None else b""
        return out


def _write(members: dict[str, bytes], target: Path) -> Path:
    with tarfile.open(target, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return target


def _import(bundle: Path) -> int:
    artifacts = open_artifact_store(f"file://{bundle.parent / 'imported'}")
    return import_bundle(InMemoryMetadataStore(), artifacts, bundle).version


def test_a_signed_bundle_imports_with_the_key_and_every_forgery_is_refused(
        signed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    members = _members(signed)
    assert len(members[SIGNATURE_NAME]) == 64  # hex HMAC-SHA256 of the manifest
    assert _import(signed) == 1

    # members and manifest rewritten consistently (the hashes alone would pass), old signature
    manifest = json.loads(members[MANIFEST_NAME])
    forged = dict(members)
    name = next(n for n in members if n.startswith("evidence/"))
    forged[name] = b'{"forged": true}'
    manifest["files"][name] = hash_bytes(forged[name])
    forged[MANIFEST_NAME] = json.dumps(manifest).encode()
    for bundle, why in (
        (_write(forged, tmp_path / "forged.bundle"), "does not match"),
        (_write({k: v for k, v in members.items() if k != SIGNATURE_NAME},
                tmp_path / "unsigned.bundle"), "is not signed"),
    ):
        with pytest.raises(IntegrityError, match=why) as refused:
            _import(bundle)
        assert "\n" not in refused.value.message and "nothing imported" in refused.value.message

    monkeypatch.setenv(KEY_ENV, "another-key-another-key-another-key")
    with pytest.raises(IntegrityError, match="does not match"):
        _import(signed)
    monkeypatch.delenv(KEY_ENV)  # no key here: the hashes are still checked, nothing more
    assert _import(signed) == 1


def test_the_cli_refuses_a_bundle_signed_with_another_key_in_one_line(
        signed: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "not-the-signing-key-not-the-signing-key")
    code, _, err = cli(capsys, "models", "import-bundle", str(signed))
    assert code != 0
    line = one_error_line(err)
    assert "signature that does not match" in line and KEY_ENV in line and KEY not in err


def test_a_deployment_keeps_the_key_and_its_replicas_refuse_an_unsigned_first_model(
        signed: Path, ctloop_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = ctloop_home / "deploy"
    export_deployment(load_settings(), "docker-compose", out, model=signed)
    assert read_env_file(out / "secrets.env")[KEY_ENV] == KEY
    assert KEY not in (out / "docker-compose.yaml").read_text()
    monkeypatch.delenv(KEY_ENV)  # a re-export keeps it from the previous secrets.env
    export_deployment(load_settings(), "docker-compose", out, force=True)
    assert read_env_file(out / "secrets.env")[KEY_ENV] == KEY

    unsigned = _write({k: v for k, v in _members(signed).items() if k != SIGNATURE_NAME},
                      ctloop_home / "unsigned.bundle")
    monkeypatch.setenv(KEY_ENV, KEY)
    with pytest.raises(IntegrityError, match="is not signed"):
        export_deployment(load_settings(), "docker-compose", out, force=True, model=unsigned)
    with pytest.raises(IntegrityError, match="is not signed"):
        serving_app(load_settings(), unsigned)
