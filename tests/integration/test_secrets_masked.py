"""A distinct password planted in every URL setting never shows in any output or record.

Metadata on PostgreSQL (trust auth: the planted password is accepted and
ignored), artifacts on S3 with a planted secret key, an online store on Redis
with a password the server refuses, a Dask scheduler URL with a password. The
CLI runs pipelines, lists and shows runs, reads online features and exports a
deployment; every stdout, stderr, exported file (but the env file meant to hold
secrets) and every row of the metadata database is searched for each secret.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ctloop.core.errors import BackendUnavailable, CtloopError
from ctloop.core.secrets import install_log_masking, mask_secrets
from ctloop.testing.services import POSTGRES_URL, require_service, unique_name

pytestmark = pytest.mark.slow

SECRETS = {
    "metadata": "pw-META-7c1e",
    "artifacts": "pw-ART-93ab",
    "online": "pw-REDIS-51d0",
    "dask": "pw-DASK-0f2e",
    "s3_key": "pw-S3KEY-a84c",
}

PIPELINE = '''
from ctloop.pipeline import Dataset, Output, component, pipeline


@component
def make(out: Output[Dataset]) -> None:
    import pandas as pd

    out.write(pd.DataFrame({"x": [1, 2, 3]}))


@pipeline
def tiny():
    make()
'''


@pytest.fixture
def schema() -> Iterator[str]:
    require_service("postgres")
    name = unique_name("ctsec")
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {name}"))
    try:
        yield name
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {name} CASCADE"))
        admin.dispose()


def _with_password(url: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{password}@{host}"


def test_no_planted_secret_is_printed_or_stored(tmp_path: Path, schema: str) -> None:
    require_service("redis")
    metadata_url = _with_password(POSTGRES_URL, SECRETS["metadata"])
    metadata_url += f"?options=-csearch_path%3D{schema}"
    (tmp_path / "pipe.py").write_text(PIPELINE)
    (tmp_path / "ctloop.toml").write_text(
        '[ctloop]\n[ctloop.s3]\nendpoint_url = "http://127.0.0.1:9"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CTLOOP_", "AWS_"))}
    env.update({
        "CTLOOP_METADATA_URL": metadata_url,
        "CTLOOP_ARTIFACTS_URL": f"s3://art-user:{SECRETS['artifacts']}@no-bucket/prefix",
        "CTLOOP_ONLINE_STORE_URL": f"redis://:{SECRETS['online']}@127.0.0.1:6379/0",
        "AWS_ACCESS_KEY_ID": "AKIDPLANTED",
        "AWS_SECRET_ACCESS_KEY": SECRETS["s3_key"],
        "COLUMNS": "200",
    })
    exe = str(Path(sys.executable).parent / "ctloop")
    outputs: list[str] = []

    def ctloop(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([exe, *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120, check=False)
        outputs.extend([proc.stdout, proc.stderr])
        return proc

    failed = ctloop("run", "pipe.py:tiny")
    assert failed.returncode != 0
    runs = ctloop("runs", "list", "--json").stdout
    assert '"failed"' in runs  # a failed run was recorded, with its error
    ctloop("runs", "show", json.loads(runs)["runs"][0]["id"])
    dask = ctloop("run", "pipe.py:tiny", "--runner",
                  f"tcp://sched:{SECRETS['dask']}@127.0.0.1:9")
    assert dask.returncode != 0
    redis = ctloop("features", "get", "v:f", "--entity", "k=1")
    assert redis.returncode != 0
    exported = ctloop("deploy", "export", str(tmp_path / "deploy"))
    outputs.extend(path.read_text(errors="replace") for path in (tmp_path / "deploy").rglob("*")
                   if path.is_file() and path.name not in {"ctloop.env", "secrets.env"})
    del exported

    dumped: list[str] = []
    engine = sa.create_engine(f"{POSTGRES_URL}?options=-csearch_path%3D{schema}")
    with engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            dumped.extend(repr(tuple(row))
                          for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')))
    engine.dispose()
    assert dumped, "the failed runs should be recorded in the metadata database"
    text = "\n".join(outputs + dumped)
    leaked = {name: secret for name, secret in SECRETS.items() if secret in text}
    where = [chunk[max(0, chunk.find(s) - 150):chunk.find(s) + 50]
             for s in leaked.values() for chunk in outputs + dumped if s in chunk]
    assert not leaked, f"secrets shown: {sorted(leaked)}: {where[:3]}"
    assert "***" in text  # the URLs were shown, masked


def test_mask_secrets_hides_urls_params_and_remembered_values(monkeypatch) -> None:
    monkeypatch.setenv("SOME_SERVICE_TOKEN", "tok-98765")
    text = ("postgresql+psycopg://ct:pa%40ss@db:5432/x redis://:r3dis-pw@cache:6379/0 "
            "s3://k:s3cr3t@bucket/p?aws_secret_access_key=abcd1234&region=eu "
            "password=hunter22 token: tok-98765 plain words stay")
    masked = mask_secrets(text)
    for secret in ("pa%40ss", "r3dis-pw", "s3cr3t", "abcd1234", "hunter22", "tok-98765"):
        assert secret not in masked
    assert "postgresql+psycopg://ct:***@db:5432/x" in masked
    assert "redis://:***@cache:6379/0" in masked and "region=eu" in masked
    assert masked.endswith("plain words stay")
    assert mask_secrets("") == "" and mask_secrets("no secrets here") == "no secrets here"


def test_a_short_remembered_secret_is_masked_as_a_word_not_inside_words(monkeypatch) -> None:
    monkeypatch.setenv("DB_PASSWORD", "test")
    masked = mask_secrets("reading tests.env with password test (test); latest: 'test'")
    assert masked == "reading tests.env with password *** (***); latest: '***'"
    monkeypatch.setenv("DB_PASSWORD", "longer-secret")  # long ones: wherever they appear
    assert mask_secrets("xlonger-secretx") == "x***x"


def test_errors_and_log_lines_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    err = BackendUnavailable("cannot reach redis://:sekrit-pw@h:6379/0 (refused)")
    assert "sekrit-pw" not in err.one_line() and "sekrit-pw" not in str(err)
    assert "sekrit-pw" not in CtloopError("x redis://u:sekrit-pw@h/0").to_json()["detail"]
    install_log_masking()
    with caplog.at_level(logging.WARNING):
        logging.getLogger("ctloop.test").warning("store %s failed", "s3://a:sekrit-pw@b/c")
        try:
            raise RuntimeError("boom postgresql://u:sekrit-pw@h/db")
        except RuntimeError:
            logging.getLogger("ctloop.test").exception("failed")
    assert "sekrit-pw" not in caplog.text and "s3://a:***@b/c" in caplog.text
