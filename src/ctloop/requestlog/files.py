"""Segment files in a local log folder, without fsspec.

A local log's writer process publishes a segment a second and needs three file
operations; fsspec's import alone cost it ~5 MB (issue 21). Same semantics as
:class:`ctloop.artifacts.remote.FsspecByteStore` on a local folder: a file is copied
under a temporary name beside its key, then moved there, so a reader never sees a
partial segment, and an existing one is kept.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Protocol

from ctloop.core.errors import StoreError

__all__ = ["LocalSegments", "SegmentStore"]


class SegmentStore(Protocol):
    """What the prediction log needs of the bytes under its root."""

    def exists(self, key: str) -> bool: ...

    def put_file(self, local_path: Path, key: str) -> None: ...

    def delete(self, key: str) -> None: ...


class LocalSegments:
    """The files under a local log's folder (a :class:`SegmentStore`)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __repr__(self) -> str:
        return f"LocalSegments({str(self.root)!r})"

    def exists(self, key: str) -> bool:
        return (self.root / key).is_file()

    def put_file(self, local_path: Path, key: str) -> None:
        target = self.root / key
        tmp = target.with_name(f"{target.name}.tmp-{uuid.uuid4().hex}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local_path, tmp)
            if not target.exists():
                os.replace(tmp, target)
        except OSError as exc:
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise StoreError(
                f"Uploading {key}: the prediction log folder {self.root} failed ({detail})."
            ) from exc
        finally:
            with contextlib.suppress(OSError):  # moved, or never made (no folder)
                tmp.unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        try:
            (self.root / key).unlink(missing_ok=True)
        except OSError as exc:
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise StoreError(
                f"Deleting {key}: the prediction log folder {self.root} failed ({detail})."
            ) from exc
