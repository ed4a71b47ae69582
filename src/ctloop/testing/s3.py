"""An S3-compatible server on loopback for tests: moto, in its own process, checking credentials.

The first few requests (creating a user, its key and policy, the buckets) run
without authentication; every later request must sign with the user's key, so
wrong credentials fail as they would on AWS.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ctloop.core.net import free_port
from ctloop.testing.services import patience

__all__ = ["S3Server", "moto_environment", "moto_server"]

_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}


@dataclass(frozen=True)
class S3Server:
    """Where the server listens and the credentials of its one user."""

    endpoint: str
    key: str
    secret: str
    buckets: tuple[str, ...]

    @property
    def bucket(self) -> str:
        """The first bucket."""
        return self.buckets[0]

    def options(self, **changes: str) -> dict[str, object]:
        """fsspec storage options for this server (``key=``/``secret=`` to override)."""
        opts: dict[str, object] = {"endpoint_url": self.endpoint, "key": self.key,
                                "secret": self.secret}
        opts.update(changes)
        return {**opts, "client_kwargs": {"region_name": "us-east-1"}}

    def env(self) -> dict[str, str]:
        """The same settings as the standard AWS variables."""
        return {
            "AWS_ACCESS_KEY_ID": self.key,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
        }



@contextmanager
def moto_server(buckets: Iterable[str], *, user: str = "ctloop") -> Iterator[S3Server]:
    """Start moto on 127.0.0.1 with ``buckets`` and one user allowed to use them."""
    import boto3

    names = tuple(buckets)
    port = free_port()
    setup_actions = 3 + len(names)  # user, key, policy, then one per bucket
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(setup_actions)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + patience(20)
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("the moto S3 server did not start") from None
                time.sleep(0.05)
        endpoint = f"http://127.0.0.1:{port}"
        setup = {
            "endpoint_url": endpoint,
            "region_name": "us-east-1",
            "aws_access_key_id": "setup",
            "aws_secret_access_key": "setup",
        }
        iam = boto3.client("iam", **setup)
        iam.create_user(UserName=user)
        key = iam.create_access_key(UserName=user)["AccessKey"]
        iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps(_POLICY))
        s3 = boto3.client("s3", **setup)
        for name in names:
            s3.create_bucket(Bucket=name)
        yield S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"], names)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def moto_environment(buckets: Iterable[str], *, user: str = "ctloop") -> Iterator[S3Server]:
    """``moto_server`` with its settings in this process's standard AWS variables, as a
    deployed process (and the processes it starts) would see them; restored afterwards.
    s3fs caches filesystems by their options, so its cache is cleared on both sides."""
    import s3fs

    with moto_server(buckets, user=user) as server:
        env = server.env()
        saved = {name: os.environ.get(name) for name in env}
        os.environ.update(env)
        s3fs.S3FileSystem.clear_instance_cache()
        try:
            yield server
        finally:
            s3fs.S3FileSystem.clear_instance_cache()
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
