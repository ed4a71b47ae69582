"""Bytes behind any fsspec URL (``s3://``, ``gs://``, ``memory://`` ...).

Object stores (S3, GCS, Azure) make an upload visible only when complete, so
``put_file`` writes straight to the key; other file systems get a temporary
name and a move. Drivers load only when their URL is used.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import fsspec

from ctloop.core.errors import BackendUnavailable, ConfigError, CtloopError, NotFound, StoreError
from ctloop.core.plugins import require

__all__ = ["FsspecByteStore"]

T = TypeVar("T")
_OBJECT_STORES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"}
_DRIVERS = {"s3": ("s3fs", "s3"), "s3a": ("s3fs", "s3")}


class FsspecByteStore:
    """``ByteStore`` over an fsspec file system rooted at ``url``."""

    def __init__(self, url: str, storage_options: dict[str, object] | None = None) -> None:
        self.url = url.rstrip("/")
        protocol = self.url.split("://", 1)[0]
        if protocol in _DRIVERS:
            module, extra = _DRIVERS[protocol]
            require(module, extra, f"The artifact store {self.url}")
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url, **(storage_options or {}))
        except (ValueError, ImportError) as exc:
            raise ConfigError(
                f"Cannot open the artifact store {self.url}: {exc}. Use a folder, "
                "file:///path or s3://bucket/prefix in CTLOOP_ARTIFACTS_URL."
            ) from None
        self.atomic_put = protocol in _OBJECT_STORES
        self._bucket = self.root.split("/", 1)[0] if self.atomic_put else ""
        self._bucket_ok = not self._bucket

    def __repr__(self) -> str:
        return f"FsspecByteStore({self.url!r})"

    def _path(self, key: str) -> str:
        return f"{self.root.rstrip('/')}/{key}"

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except CtloopError:
            raise
        except FileNotFoundError:
            self._check_bucket()
            raise NotFound(f"{what}: not found in the artifact store {self.url}.") from None
        except PermissionError as exc:
            raise ConfigError(
                f"{what}: permission denied by the artifact store {self.url} ({exc}). "
                "Check the credentials and the bucket policy."
            ) from None
        except Exception as exc:
            if not _is_connection_error(exc):
                detail = " ".join(str(exc).split()) or type(exc).__name__
                raise StoreError(
                    f"{what}: the artifact store {self.url} failed ({detail})."
                ) from exc
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise BackendUnavailable(
                f"{what}: cannot reach the artifact store {self.url} ({detail}). "
                "Check the endpoint, the network and the credentials."
            ) from None

    def _check_bucket(self) -> None:
        """A missing bucket is a setup mistake, not a missing artifact: say so."""
        if self._bucket_ok:
            return
        try:
            found = bool(self.fs.exists(self._bucket))
        except Exception:  # unreachable or forbidden: the caller's error says more
            return
        if not found:
            raise ConfigError(
                f"The bucket {self._bucket!r} of the artifact store {self.url} does not exist. "
                f"Create it (e.g. `aws s3 mb s3://{self._bucket}`) or point "
                "CTLOOP_ARTIFACTS_URL at an existing bucket."
            )
        self._bucket_ok = True

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        with self._guard(what):
            return fn()

    def exists(self, key: str) -> bool:
        found = self._call(f"Checking {key}", lambda: bool(self.fs.exists(self._path(key))))
        if not found:
            self._check_bucket()
        return found

    def size(self, key: str) -> int:
        return self._call(f"Sizing {key}", lambda: int(self.fs.size(self._path(key))))

    def put_file(self, local_path: Path, key: str) -> None:
        target = self._path(key)
        with self._guard(f"Uploading {key}"):
            if self.atomic_put:
                self.fs.put_file(str(local_path), target)
                return
            tmp = f"{target}.tmp-{uuid.uuid4().hex}"
            try:
                self.fs.put_file(str(local_path), tmp)
            except BaseException:
                if self.fs.exists(tmp):  # a full volume must not stay full of a partial copy
                    self.fs.rm(tmp)
                raise
            if self.fs.exists(target):
                self.fs.rm(tmp)
            else:
                self.fs.mv(tmp, target)

    def get_file(self, key: str, local_path: Path) -> None:
        self._call(f"Downloading {key}", lambda: self.fs.get_file(self._path(key), str(local_path)))

    def delete(self, key: str) -> None:
        path = self._path(key)
        with self._guard(f"Deleting {key}"):
            if self.fs.exists(path):
                self.fs.rm(path)

    def uri_for(self, key: str) -> str:
        return f"{self.url}/{key}"

    def local_path(self, key: str) -> Path | None:
        return None


_CONNECTION_ERRORS = (
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ClientConnectorError",
    "ConnectionClosedError",
    "ServerDisconnectedError",
)


def _is_connection_error(exc: BaseException) -> bool:
    """Network failures, by class name so that no driver has to be imported here."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionError | TimeoutError):
            return True
        if any(type(seen).__name__ == name for name in _CONNECTION_ERRORS):
            return True
        if "Could not connect to the endpoint" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
