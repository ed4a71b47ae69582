"""Bytes in a local folder (``file://``): atomic, no-overwrite placement by hard link.

A new object is written under ``.tmp/`` in the same folder, then hard-linked
to its key: ``link`` fails instead of replacing when the key exists, so a
finished object is never overwritten and readers never see a partial file.
Objects are made read-only, so the zero-copy paths handed to steps cannot be
edited in place by accident.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from urllib.parse import unquote, urlparse

from ctloop.core.errors import ConfigError, NotFound

__all__ = ["LocalByteStore", "path_from_file_url"]

READ_ONLY = 0o444


def path_from_file_url(url: str) -> Path:
    """``file:///a/b`` or a plain path -> an absolute ``Path``."""
    if url.startswith("file:"):
        parsed = urlparse(url)
        if parsed.netloc not in ("", "localhost"):
            raise ConfigError(
                f"The artifact URL {url!r} names the host {parsed.netloc!r}; file URLs must be "
                "local, like file:///absolute/path."
            )
        return Path(unquote(parsed.path)).resolve()
    return Path(url).expanduser().resolve()


class LocalByteStore:
    """``ByteStore`` over a folder on local disk."""

    def __init__(self, url: str) -> None:
        self.root = path_from_file_url(url)
        self.url = self.root.as_uri()
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(
                f"The artifact store {self.url} is a file, not a folder. "
                "Point CTLOOP_ARTIFACTS_URL at a folder."
            )

    def __repr__(self) -> str:
        return f"LocalByteStore({self.url!r})"

    def _path(self, key: str) -> Path:
        return self.root / key

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def temp_path(self) -> Path:
        """A fresh name under the store's ``.tmp`` folder (same file system as the objects)."""
        tmp = self.root / ".tmp"
        try:
            tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"Cannot write to the artifact store {self.url}: {exc.strerror}. "
                "Choose a writable folder in CTLOOP_ARTIFACTS_URL."
            ) from None
        return tmp / uuid.uuid4().hex

    def put_file(self, local_path: Path, key: str) -> None:
        tmp = self.temp_path()
        try:
            shutil.copyfile(local_path, tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk must not stay full of our partial copy
            raise
        self.place(tmp, key)

    def place(self, tmp: Path, key: str, *, replace: bool = False) -> None:
        """Move a finished temporary file to ``key``; keep an existing object unless ``replace``."""
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, READ_ONLY)
        try:
            if replace:
                os.replace(tmp, target)
                return
            try:
                os.link(tmp, target)
            except FileExistsError:
                pass  # same key, same content: someone stored it first
            except OSError:  # file systems without hard links
                if not target.exists():
                    os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def get_file(self, key: str, local_path: Path) -> None:
        source = self._path(key)
        if not source.is_file():
            raise NotFound(f"No object {key!r} in the artifact store {self.url}.")
        shutil.copyfile(source, local_path)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def uri_for(self, key: str) -> str:
        return self._path(key).as_uri()

    def local_path(self, key: str) -> Path | None:
        return self._path(key)
