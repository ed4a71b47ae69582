"""One prediction log shared by writer processes: segments on S3 (moto), index in PG/MariaDB."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from ctloop.core.errors import BackendUnavailable, ConfigError
from ctloop.core.settings import Settings
from ctloop.requestlog.log import LogOptions, open_prediction_log
from ctloop.requestlog.spool import spooled_chunks
from ctloop.testing.databases import temporary_metadata_url
from ctloop.testing.s3 import S3Server, moto_environment
from ctloop.testing.services import user_environment

pytestmark = pytest.mark.slow
BUCKET = "shared-log"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with moto_environment([BUCKET], user="logger") as server:
        yield server


@pytest.fixture(params=["postgres", "mysql"])
def db_url(request: pytest.FixtureRequest) -> Iterator[str]:
    with temporary_metadata_url(request.param) as url:
        yield url


_WRITER = """
import sys
from datetime import UTC, datetime, timedelta
from ctloop.core.settings import load_settings
from ctloop.requestlog.records import PredictionRecord
from ctloop.requestlog.log import open_prediction_log
name = sys.argv[1]
log = open_prediction_log(settings=load_settings())
t = datetime(2024, 1, 1, tzinfo=UTC)
for b in range(20):
    log.append([PredictionRecord(f"{name}-{b}-{i}", "m", 1, "champion", t + timedelta(minutes=b),
                                 0.5, {"x": float(i)}, row_id=f"{name}-row-{b}-{i}")
                for i in range(100)])
log.close()
print(log.writer)
"""


def _env(tmp_path: Path, db_url: str, s3: S3Server) -> dict[str, str]:
    env = user_environment()
    return {**env, **s3.env(), "CTLOOP_HOME": str(tmp_path / "home"),
            "CTLOOP_METADATA_URL": db_url,
            "CTLOOP_ARTIFACTS_URL": f"s3://{BUCKET}/{tmp_path.name}",
            "CTLOOP_LOG_SPOOL": str(tmp_path / "spool")}


def test_two_writer_processes_append_to_one_log(tmp_path: Path, db_url: str, s3: S3Server) -> None:
    env = _env(tmp_path, db_url, s3)
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, name], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for name in ("a", "b")]
    writers = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        writers.append(out.strip())
    settings = Settings(home=tmp_path / "reader", metadata_url=db_url,
                        artifacts_url=env["CTLOOP_ARTIFACTS_URL"])
    log = open_prediction_log(settings=settings, options=LogOptions(spool=str(tmp_path / "r")))
    assert log.url == f"s3://{BUCKET}/{tmp_path.name}/predictions"
    frame = log.read(model_name="m")
    assert len(frame) == 4000 and frame["request_id"].is_unique
    assert {s.writer for s in log.segments()} == set(writers)
    log.add_labels(pd.DataFrame({"row_id": ["a-row-0-1", "b-row-3-7"], "label": [1, 0]}))
    labelled = log.read(with_labels=True).dropna(subset=["label"]).set_index("request_id")
    assert labelled["label"].to_dict() == {"a-0-1": 1.0, "b-3-7": 0.0}
    assert log.compact() > 0 and len(log.segments()) == 1
    again = log.read(with_labels=True)
    assert len(again) == 4000 and again["label"].notna().sum() == 2
    log.close()
    assert not (tmp_path / "home").exists()  # nothing local but the (emptied) spool
    assert not spooled_chunks(tmp_path / "spool")


def test_missing_bucket_and_unreachable_index_are_one_clear_error(
    tmp_path: Path, s3: S3Server
) -> None:
    settings = Settings(home=tmp_path, artifacts_url="s3://no-such-bucket/x",
                        metadata_url=f"sqlite:///{tmp_path / 'm.db'}")
    with pytest.raises(ConfigError, match=r"bucket 'no-such-bucket' .* does not exist"):
        open_prediction_log(settings=settings)
    down = settings.with_(artifacts_url=f"s3://{BUCKET}/x",
                          metadata_url="postgresql+psycopg://u@127.0.0.1:1/none")
    with pytest.raises(BackendUnavailable, match="Cannot connect to the metadata database"):
        open_prediction_log(settings=down)
