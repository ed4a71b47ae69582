"""The artifact store interface.

Two layers, as in Metaflow: a byte-level ``ByteStore`` per backend (local
folder, S3 through fsspec), and the content-addressed ``ArtifactStore`` on top,
written once: it hashes while writing, writes atomically (temporary name then
rename), never overwrites, and checks the hash on every read so changed bytes
give ``IntegrityError`` naming the artifact instead of silently wrong data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

__all__ = ["ArtifactStore", "ByteStore", "StoredObject"]


class StoredObject:
    """Where an artifact's bytes went: its URI, sha256 and size."""

    __slots__ = ("sha256", "size", "uri")

    def __init__(self, uri: str, sha256: str, size: int) -> None:
        self.uri = uri
        self.sha256 = sha256
        self.size = size

    def __repr__(self) -> str:
        return f"StoredObject(uri={self.uri!r}, sha256={self.sha256[:12]}..., size={self.size})"


@runtime_checkable
class ByteStore(Protocol):
    """Bytes at keys; the whole backend interface."""

    url: str

    def exists(self, key: str) -> bool: ...
    def put_file(self, local_path: Path, key: str) -> None:
        """Upload atomically: readers never see a partial object at ``key``."""
        ...

    def get_file(self, key: str, local_path: Path) -> None: ...
    def delete(self, key: str) -> None: ...
    def uri_for(self, key: str) -> str: ...
    def local_path(self, key: str) -> Path | None:
        """The file on local disk if this backend has one, for zero-copy reads."""
        ...


@runtime_checkable
class ArtifactStore(Protocol):
    """Content-addressed, hash-checked storage of files and folders."""

    url: str

    def put(self, path: Path) -> StoredObject:
        """Store a file or a folder (folders are stored as one tar) by content."""
        ...

    def get(self, uri: str, sha256: str, *, name: str = "") -> Path:
        """A local path holding exactly the bytes stored under ``uri``.

        Raises ``IntegrityError`` (naming ``name`` or the uri) when the bytes do
        not hash to ``sha256``, ``NotFound`` when they are gone.
        """
        ...

    def verify(self, uri: str, sha256: str) -> bool:
        """True when the bytes under ``uri`` are there and hash to ``sha256``."""
        ...

    def exists(self, uri: str) -> bool:
        """Whether bytes are stored under ``uri``, without reading them."""
        ...
