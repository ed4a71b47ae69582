"""Pin of the export (issue 20.5): the split of render_compose, plan_deployment and
export_deployment must leave every written file and the plan byte-identical.

Each case exports with the settings the other deploy tests use; the plan record and
each file the export lists are normalised (the tmp folder becomes ``<ROOT>``) and
hashed. A mismatch prints the normalised text of every case's files, to diff against
a run of the previous commit. Regenerate only for an intended change of output.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
from pathlib import Path

import pytest

import ctloop.core.secrets
from ctloop.core.settings import load_settings
from ctloop.deploy import export_deployment
from ctloop.deploy.firstmodel import BUNDLE_FILE
from ctloop.registry.bundle import KEY_ENV

LOOPS = """
[ctloop.loops.churn]
model = "churn"
data = "landing/*.parquet"
event_time = "ts"
label = "churned"

[ctloop.loops.fraud]
model = "fraud"
data = "incoming/fraud/*.csv"
event_time = "ts"
label = "fraud"
"""
CLUSTER = """
[ctloop]
artifacts = "s3://team-bucket/artifacts"
metadata = "postgresql+psycopg://ctloop:secret@db.internal:5432/ctloop"
online_store = "redis://cache.internal:6379/0"

[ctloop.s3]
endpoint_url = "https://objects.internal:9000"
region = "eu-west-1"
"""
LAPTOP_REDIS = """
[ctloop]
online_store = "redis://:hunter2@localhost:6379/3"
"""

# name -> (ctloop.toml, [ctloop.deploy] lines, target, export keywords, first-model bundle)
CASES: dict[str, tuple[str, str, str, dict[str, object], bool]] = {
    "laptop": ("", "", "docker-compose", {}, False),
    "laptop-bundle": ("", "", "docker-compose", {}, True),
    "laptop-one-replica-loops": (LOOPS, "serving_replicas = 1\nloop_interval = 5\n",
                                 "docker-compose", {}, False),
    "laptop-bundle-loops": (LOOPS, "loop_interval = 5\ncontrollers = 2\n",
                            "docker-compose", {"host": "0.0.0.0", "port": 9000}, True),
    "laptop-redis": (LAPTOP_REDIS, "serving_replicas = 3\n", "docker-compose", {}, False),
    "cluster-compose": (CLUSTER, 'workers = 3\nworker_cpus = 2\nworker_memory = "8GiB"\n'
                        'image = "registry.example.com/team/ctloop:1"\n',
                        "docker-compose", {"host": "10.0.0.5", "port": 9000}, False),
    "cluster-kubernetes": (CLUSTER + LOOPS, 'workers = 3\nnamespace = "ml"\n', "kubernetes",
                           {}, False),
    "cluster-kubernetes-bundle": (CLUSTER, "serving_replicas = 1\n", "kubernetes",
                                  {"image": "x/y:2"}, True),
}

EXPECTED: dict[str, dict[str, str]] = {
    "laptop": {
        "plan": "849110ecba256106",
        "deploy/Dockerfile": "6daa3ccfb768428b",
        "deploy/secrets.env": "b51857129a28835f",
        "deploy/README.md": "fa9b0343472a7d95",
        "deploy/docker-compose.yaml": "a752c0df02415107",
        "deploy/ctloop.env": "8c1612ea752a64a3",
        "deploy/.env": "8067e2c857757107",
        ".dockerignore": "44b87ab7fa53ea11"
    },
    "laptop-bundle": {
        "plan": "a1867c700c92672e",
        "deploy/Dockerfile": "6daa3ccfb768428b",
        "deploy/secrets.env": "b17057fc0e23c3d6",
        "deploy/README.md": "0493f9e974449aef",
        "deploy/docker-compose.yaml": "f4edca9b2186f2f0",
        "deploy/ctloop.env": "8c1612ea752a64a3",
        "deploy/.env": "8067e2c857757107",
        "deploy/first-model.bundle": "f40a912044d47ea7",
        ".dockerignore": "44b87ab7fa53ea11"
    },
    "laptop-one-replica-loops": {
        "plan": "b5c738280adc4719",
        "deploy/Dockerfile": "c4c7436959faff20",
        "deploy/secrets.env": "b51857129a28835f",
        "deploy/README.md": "b0f1d87cc0ed4be2",
        "deploy/docker-compose.yaml": "19c4c0cf51891af0",
        "deploy/ctloop.env": "8c1612ea752a64a3",
        "deploy/.env": "8067e2c857757107",
        ".dockerignore": "99e3be135e9b0b8d"
    },
    "laptop-bundle-loops": {
        "plan": "f5f428ecd5bcff31",
        "deploy/Dockerfile": "c4c7436959faff20",
        "deploy/secrets.env": "b17057fc0e23c3d6",
        "deploy/README.md": "f9f542174838a1e2",
        "deploy/docker-compose.yaml": "fc4eee22c17cd609",
        "deploy/ctloop.env": "8c1612ea752a64a3",
        "deploy/.env": "8067e2c857757107",
        "deploy/first-model.bundle": "f40a912044d47ea7",
        ".dockerignore": "99e3be135e9b0b8d"
    },
    "laptop-redis": {
        "plan": "4a1489f98f797628",
        "deploy/Dockerfile": "6daa3ccfb768428b",
        "deploy/secrets.env": "c77548993324955b",
        "deploy/README.md": "4770502508dd918a",
        "deploy/docker-compose.yaml": "c5206b23831b9ec7",
        "deploy/ctloop.env": "8c1612ea752a64a3",
        "deploy/.env": "8067e2c857757107",
        ".dockerignore": "44b87ab7fa53ea11"
    },
    "cluster-compose": {
        "plan": "7166df977f1c169b",
        "deploy/Dockerfile": "6daa3ccfb768428b",
        "deploy/secrets.env": "39bdbbc514ca1473",
        "deploy/README.md": "75b70e621c94d8c9",
        "deploy/docker-compose.yaml": "d98b2623b7d1d38e",
        "deploy/ctloop.env": "6125260df52f0a55",
        "deploy/.env": "8067e2c857757107",
        ".dockerignore": "44b87ab7fa53ea11"
    },
    "cluster-kubernetes": {
        "plan": "daa00d3c19880f36",
        "deploy/Dockerfile": "c4c7436959faff20",
        "deploy/secrets.env": "39bdbbc514ca1473",
        "deploy/README.md": "0eb22994ff895be4",
        "deploy/kubernetes.yaml": "679a4f5c049448d9",
        ".dockerignore": "99e3be135e9b0b8d"
    },
    "cluster-kubernetes-bundle": {
        "plan": "a188d9e9aadcd4ba",
        "deploy/Dockerfile": "6daa3ccfb768428b",
        "deploy/secrets.env": "8f10956941d5b4e6",
        "deploy/README.md": "174607e73b7cf503",
        "deploy/kubernetes.yaml": "c3ea483663379f5a",
        "deploy/first-model.bundle": "f40a912044d47ea7",
        ".dockerignore": "44b87ab7fa53ea11"
    }
}


def _export(case: str, root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    toml, deploy, target, kwargs, bundle = CASES[case]
    (root / "ctloop.toml").write_text(
        toml + '\n[ctloop.deploy]\nname = "pin"\n' + deploy)
    monkeypatch.setattr(secrets, "token_urlsafe", lambda n=None: "generated-password")
    # the notes are masked with every secret this process has seen: only this case's
    monkeypatch.setattr(ctloop.core.secrets, "_remembered", set())
    monkeypatch.setenv(KEY_ENV, "signing-key" if bundle else "")
    out = root / "deploy"
    if bundle:  # a previous export's first model: kept as it is, not checked again
        out.mkdir()
        (out / BUNDLE_FILE).write_bytes(b"bundle bytes")
    result = export_deployment(load_settings(), target, out, force=bundle,
                               **kwargs)  # type: ignore[arg-type]
    texts = {"plan": json.dumps(dataclasses.asdict(result.plan), indent=1)}
    for path in result.files:
        texts[path.relative_to(root).as_posix()] = path.read_bytes().decode(
            "utf-8", "replace")
    return {name: text.replace(str(root), "<ROOT>") for name, text in texts.items()}


def test_the_export_is_byte_identical_to_the_pinned_one(
        ctloop_home: Path, tmp_path_factory: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    got: dict[str, dict[str, str]] = {}
    texts: dict[str, dict[str, str]] = {}
    for case in CASES:
        root = tmp_path_factory.mktemp(case.replace("-", "_"))
        monkeypatch.chdir(root)
        texts[case] = _export(case, root, monkeypatch)
        got[case] = {name: hashlib.sha256(text.encode()).hexdigest()[:16]
                     for name, text in texts[case].items()}
    if got != EXPECTED:  # the texts, to diff against the previous commit's
        for case, files in texts.items():
            for name, text in files.items():
                print(f"===== {case} {name}\n{text}")
        print("EXPECTED =", json.dumps(got, indent=4))
    assert got == EXPECTED
