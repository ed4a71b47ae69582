"""A version trained in staging (SQLite + folder) promoted to prod (PostgreSQL + S3 on moto).

The bundle's hashes are checked, both sides show the move and its provenance,
and a tampered bundle, a bundle of a newer format and a second import of the
same version are each refused with one line.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from ctloop.components.training import evaluate, push, train
from ctloop.core.settings import load_settings
from ctloop.examples.flights.data import flights
from ctloop.metadata import open_metadata_store
from ctloop.pipeline import Dataset, Output, component, pipeline, run
from ctloop.registry import ModelRegistry
from ctloop.registry.bundle import MANIFEST_NAME, open_environment
from ctloop.testing.cli import cli, one_error_line
from ctloop.testing.databases import temporary_metadata_url
from ctloop.testing.s3 import moto_environment

FEATURES = ["origin", "carrier", "hour", "distance"]
BUCKET = "models-prod"


@component(version="1")
def months_of_flights(months: list[int], out: Output[Dataset]) -> int:
    df = flights(months).sample(frac=0.2, random_state=0)
    out.write(df[[*FEATURES, "delayed"]])
    return len(df)


@pipeline
def train_in_staging(train_months: list[int]):
    data = months_of_flights(months=train_months)
    holdout = months_of_flights(months=[4])
    model = train(data=data, label="delayed", features=FEATURES, algorithm="lightgbm",
                  params={"n_estimators": 20, "n_jobs": 1}, seed=0)
    judged = evaluate(candidate=model, data=holdout, model_name="flights",
                      gate={"floors": {"roc_auc": 0.55}}, n_boot=20)
    push(model=model, evaluation=judged.outputs["evaluation"],
         blessing=judged.outputs["blessing"], model_name="flights")


@pytest.fixture
def project(ctloop_home: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.delenv("CTLOOP_ENV", raising=False)
    with temporary_metadata_url("postgres") as prod_url, moto_environment([BUCKET]) as s3:
        (ctloop_home / "ctloop.toml").write_text(
            "[ctloop.environments.staging]\n"
            "[ctloop.environments.prod]\n"
            f'metadata = "{prod_url}"\n'
            f'artifacts = "s3://{BUCKET}/artifacts"\n'
            f"[ctloop.environments.prod.s3]\n"
            f'endpoint_url = "{s3.endpoint}"\n'
            "[ctloop.environments.qa]\n"
        )
        yield ctloop_home


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    code, out, err = cli(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def _rewrite(bundle: Path, target: Path, change: dict[str, bytes]) -> None:
    """Copy a bundle, replacing the bytes of some members (as an attacker or a bad disk would)."""
    with tarfile.open(bundle) as src, tarfile.open(target, "w:gz") as dst:
        for member in src:
            handle = src.extractfile(member)
            data = handle.read() if handle is not None else b""
            data = change.get(member.name, data)
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))


@pytest.mark.slow
def test_staging_to_prod_with_hashes_provenance_and_refusals(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trained = run(train_in_staging, {"train_months": [1, 2]}, settings=load_settings(env="staging"))
    assert trained.ok, trained.run.error
    # --test: served in staging and checked over v1, v2 and gRPC before it moves
    code, out, err = cli(capsys, "promote", "flights", "--from", "staging", "--to", "prod",
                         "--test")
    assert code == 0, out + err
    assert "PASSED" in out and "staging v1 -> prod v1 (imported)" in out

    prod = _json(capsys, "--env", "prod", "models", "show", "flights:1")
    assert isinstance(prod, dict)
    provenance = prod["properties"]["provenance"]
    assert provenance["source_environment"] == "staging"
    assert provenance["source_version"] == 1
    assert trained.run.id in provenance["run_ids"]
    assert prod["properties"]["blessing"]["blessed"] is True  # the evidence travelled
    assert prod["properties"]["evaluation"]["overall"]["metrics"]["roc_auc"]["value"] > 0.55
    assert prod["aliases"] == ["champion"]
    code, out, _ = cli(capsys, "--env", "prod", "models", "show", "flights:1")
    assert "imported from: staging flights:1" in out
    staging = _json(capsys, "--env", "staging", "models", "show", "flights:1")
    assert isinstance(staging, dict)
    assert staging["properties"]["promotions"][0]["environment"] == "prod"
    assert "prod.champion" in staging["aliases"]
    # both histories record the move
    prod_history = _json(capsys, "--env", "prod", "models", "history", "flights")
    staging_history = _json(capsys, "--env", "staging", "models", "history", "flights")
    assert isinstance(prod_history, list) and isinstance(staging_history, list)
    assert prod_history[-1]["reason"] == "promoted from staging flights:1"
    assert staging_history[-1]["alias"] == "prod.champion"
    assert staging_history[-1]["reason"] == "promoted to prod as flights:1 @champion"

    # the prod model is in S3 and PostgreSQL and predicts what staging's does
    sample = flights([5]).head(50)
    stores = [open_environment(load_settings(env=e)) for e in ("staging", "prod")]
    assert stores[1][0].url.startswith("postgresql") and stores[1][1].url.startswith("s3://")
    predictions = [ModelRegistry(s, artifacts=a).load("flights@champion").predict(sample)
                   for s, a, _ in stores]
    assert (predictions[0] == predictions[1]).all()
    for store, _, _ in stores:
        store.close()

    # promoting again moves nothing twice: the version is already there
    code, out, err = cli(capsys, "promote", "flights", "--from", "staging", "--to", "prod")
    assert code == 0 and "(already there)" in out, err

    # export -> import-bundle: a second import of the same version is one line
    bundle = project / "flights-1.bundle"
    code, _, err = cli(capsys, "--env", "staging", "models", "export", "flights@1", "-o",
                       str(bundle))
    assert code == 0, err
    code, _, err = cli(capsys, "models", "import-bundle", str(bundle), "--env", "prod")
    assert code == 2
    assert "'prod' already has flights:1 with exactly these model bytes" in one_error_line(err)

    # tampered: one model byte changed -> refused before anything is stored
    with tarfile.open(bundle) as tar:
        model_file = next(m.name for m in tar if m.name.startswith("model/")
                          and m.name.endswith(".txt"))
        original = tar.extractfile(model_file).read()  # type: ignore[union-attr]
    tampered = project / "tampered.bundle"
    _rewrite(bundle, tampered, {model_file: original.replace(b"tree", b"TREE", 1)})
    code, _, err = cli(capsys, "--env", "qa", "models", "import-bundle", str(tampered))
    assert code != 0
    line = one_error_line(err)
    assert "was altered" in line and model_file in line
    # tampered together with its listed hash: the model folder no longer hashes to the artifact
    with tarfile.open(bundle) as tar:
        manifest = json.loads(tar.extractfile(MANIFEST_NAME).read())  # type: ignore[union-attr]
    from ctloop.core.hashing import hash_bytes

    changed = original.replace(b"tree", b"TREE", 1)
    manifest["files"][model_file] = hash_bytes(changed)
    _rewrite(bundle, tampered, {model_file: changed,
                                MANIFEST_NAME: json.dumps(manifest).encode()})
    code, _, err = cli(capsys, "--env", "qa", "models", "import-bundle", str(tampered))
    assert code != 0 and "does not hash to the recorded artifact" in one_error_line(err)
    # a newer format
    newer = project / "newer.bundle"
    _rewrite(bundle, newer, {MANIFEST_NAME: json.dumps({**manifest, "format": 99}).encode()})
    code, _, err = cli(capsys, "--env", "qa", "models", "import-bundle", str(newer))
    assert code == 2 and "format 99, newer than this ctloop reads" in one_error_line(err)
    qa = open_metadata_store(load_settings(env="qa").metadata_url)
    assert qa.list_model_versions() == []  # nothing refused left a trace
    qa.close()
    # the good bundle imports into a third environment with its provenance
    imported = _json(capsys, "--env", "qa", "models", "import-bundle", str(bundle))
    assert isinstance(imported, dict)
    assert imported["version"] == 1
    assert imported["provenance"]["source_environment"] == "staging"
    # a deployment's start-up import: --existing-ok answers 0 with the version it has,
    # and --alias makes it the champion in the same call, once
    for _ in range(2):
        code, out, err = cli(capsys, "--env", "qa", "models", "import-bundle", str(bundle),
                             "--existing-ok", "--alias", "champion")
        assert code == 0, err
    assert "already had flights:1" in out and "alias champion -> 1" in out
    qa = open_metadata_store(load_settings(env="qa").metadata_url)
    assert qa.get_aliases("flights") == {"champion": 1}
    assert len(qa.alias_history("flights", "champion")) == 1  # moved once, not twice
    qa.close()
