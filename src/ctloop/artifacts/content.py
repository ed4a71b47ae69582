"""The content-addressed artifact store, written once over any ``ByteStore``.

``put`` hashes while it writes and files the bytes under their sha256
(``ab/abcdef....parquet``; a folder becomes one deterministic ``.dir.tar``), so
storing the same content twice stores it once. ``get`` checks the hash every
time: bytes that changed after they were written raise ``IntegrityError``
naming the artifact, never silently wrong data. A verified local file is
remembered by its inode, size, mtime and ctime, so reading it again costs a
``stat`` until something touches it.

A folder is unpacked once into ``.cache/trees/<sha256>/`` and that copy is
checked too on every ``get``: its files are hashed back into the tree tar they
came from and compared with the recorded sha256 (memoised by the files'
stats), so a file changed, added or planted there raises ``IntegrityError``
instead of being handed to a reader. The cache is not trusted just because the
archive is intact.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ctloop.artifacts.base import ByteStore, StoredObject
from ctloop.artifacts.local import LocalByteStore
from ctloop.artifacts.treefile import extract_tree, tree_digest, write_tree
from ctloop.core.errors import IntegrityError, NotFound, StoreError, UserInputError
from ctloop.core.hashing import hash_file

__all__ = ["TREE_SUFFIX", "ContentStore", "store_url_of"]

TREE_SUFFIX = ".dir.tar"
_CHUNK = 1 << 20


def store_url_of(uri: str) -> str:
    """The URL of the store that holds ``uri`` (``<store>/ab/abcdef....suffix``)."""
    head, _, name = uri.rpartition("/")
    store, _, prefix = head.rpartition("/")
    if not (store and len(prefix) == 2 and name.startswith(prefix) and len(name) >= 64):
        raise UserInputError(
            f"The artifact URI {uri} is not in a ctloop artifact store (expected "
            "<store>/ab/<sha256>...); open the store it was written to."
        )
    return store


def _suffix(path: Path) -> str:
    """Keep a short plain extension (``.parquet``, ``.json``) so stored files stay recognisable."""
    suffix = path.suffix  # never ".dir.tar": that is two suffixes, and only folders get it
    return suffix.lower() if 1 < len(suffix) <= 16 and suffix[1:].isalnum() else ""


def _signature(path: Path) -> tuple[int, int, int, int]:
    st = path.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


_TreeSignature = tuple[tuple[str, tuple[int, int, int, int]], ...]


def _tree_signature(folder: Path) -> _TreeSignature:
    """Stats of a folder and everything in it: any edit, addition or removal changes it."""
    entries = [folder, *sorted(folder.rglob("*"))]
    return tuple((p.relative_to(folder).as_posix(), _signature(p)) for p in entries)


class ContentStore:
    """``ArtifactStore``: content-addressed, atomic, never overwriting, hash-checked."""

    def __init__(self, byte_store: ByteStore, *, cache_dir: Path | None = None) -> None:
        self.bytes = byte_store
        self.url = byte_store.url
        self._local = isinstance(byte_store, LocalByteStore)
        if cache_dir is None:
            if isinstance(byte_store, LocalByteStore):
                cache_dir = byte_store.root / ".cache"
            else:
                base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                cache_dir = base / "ctloop" / "artifacts"
        self.cache_dir = Path(cache_dir)
        self._verified: dict[Path, tuple[tuple[int, int, int, int], str]] = {}
        self._verified_trees: dict[Path, tuple[_TreeSignature, str]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ContentStore({self.url!r})"

    # writing ---------------------------------------------------------------
    def put(self, path: Path) -> StoredObject:
        path = Path(path)
        if path.is_dir():
            return self._put_tree(path)
        if path.is_file():
            return self._put_file(path)
        if path.exists():
            raise UserInputError(f"Cannot store {path}: it is neither a file nor a folder.")
        raise NotFound(f"Cannot store {path}: no such file or folder.")

    def _key(self, sha256: str, suffix: str) -> str:
        return f"{sha256[:2]}/{sha256}{suffix}"

    def _put_file(self, path: Path) -> StoredObject:
        if isinstance(self.bytes, LocalByteStore):
            tmp = self.bytes.temp_path()
            with _no_partial_file(tmp, self.url, path):
                sha256, size = _copy_hashing(path, tmp)  # one pass: copy and hash
                return self._place_local(tmp, self._key(sha256, _suffix(path)), sha256, size)
        sha256, size = hash_file(path), path.stat().st_size
        return self._upload(path, self._key(sha256, _suffix(path)), sha256, size)

    def _put_tree(self, folder: Path) -> StoredObject:
        if isinstance(self.bytes, LocalByteStore):
            tmp = self.bytes.temp_path()
            with _no_partial_file(tmp, self.url, folder):
                sha256, size = write_tree(folder, tmp)
                return self._place_local(tmp, self._key(sha256, TREE_SUFFIX), sha256, size)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_dir / f".tmp-{uuid.uuid4().hex}"
        try:
            with _no_partial_file(tmp, str(self.cache_dir), folder):
                sha256, size = write_tree(folder, tmp)
            return self._upload(tmp, self._key(sha256, TREE_SUFFIX), sha256, size)
        finally:
            tmp.unlink(missing_ok=True)

    def _place_local(self, tmp: Path, key: str, sha256: str, size: int) -> StoredObject:
        assert isinstance(self.bytes, LocalByteStore)
        existing = self.bytes.local_path(key)
        assert existing is not None
        # An object already under this key must really hold these bytes; a
        # damaged one is replaced, which heals the store instead of keeping it.
        damaged = existing.is_file() and self._local_hash(existing) != sha256
        self.bytes.place(tmp, key, replace=damaged)
        self._remember(existing, sha256)
        return StoredObject(self.bytes.uri_for(key), sha256, size)

    def _upload(self, path: Path, key: str, sha256: str, size: int) -> StoredObject:
        size_of = getattr(self.bytes, "size", None)
        present = self.bytes.exists(key) and (size_of is None or size_of(key) == size)
        if not present:
            self.bytes.put_file(path, key)
        return StoredObject(self.bytes.uri_for(key), sha256, size)

    # reading ---------------------------------------------------------------
    def _key_of(self, uri: str) -> str:
        prefix = self.url.rstrip("/") + "/"
        if not uri.startswith(prefix):
            raise UserInputError(
                f"The artifact URI {uri} is not in this artifact store ({self.url}). "
                "Open the store it was written to (CTLOOP_ARTIFACTS_URL)."
            )
        return uri[len(prefix) :]

    def exists(self, uri: str) -> bool:
        """Whether bytes are stored under ``uri`` (without checking them)."""
        try:
            return self.bytes.exists(self._key_of(uri))
        except UserInputError:
            return False

    def get(self, uri: str, sha256: str, *, name: str = "") -> Path:
        key = self._key_of(uri)
        label = f"artifact {name}" if name else f"artifact at {uri}"
        local = self.bytes.local_path(key)
        if local is None:
            local = self._download(key, uri, sha256, label)
            if self._local_hash(local) != sha256:  # a damaged cached copy: fetch it again
                local.unlink(missing_ok=True)
                local = self._download(key, uri, sha256, label)
        elif not local.is_file():
            raise NotFound(
                f"The {label} is gone: nothing at {uri}. Its bytes were deleted from the "
                "artifact store; rerun the step that produced it with --no-cache."
            )
        actual = self._local_hash(local)
        if actual != sha256:
            raise IntegrityError(
                f"The {label} at {uri} changed after it was written: its bytes hash to "
                f"{actual[:16]}..., not the recorded {sha256[:16]}.... Do not use it; restore "
                "the file or rerun the step that produced it with --no-cache."
            )
        if key.endswith(TREE_SUFFIX):
            return self._tree(local, sha256, label)
        return local

    def verify(self, uri: str, sha256: str) -> bool:
        try:
            self.get(uri, sha256)
        except (IntegrityError, NotFound):
            return False
        return True

    def _download(self, key: str, uri: str, sha256: str, label: str) -> Path:
        target = self.cache_dir / "objects" / key
        if target.is_file():
            return target
        if not self.bytes.exists(key):
            raise NotFound(
                f"The {label} is gone: nothing at {uri}. Rerun the step that produced it "
                "with --no-cache."
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".tmp-{uuid.uuid4().hex}")
        try:
            self.bytes.get_file(key, tmp)
            os.chmod(tmp, 0o444)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target

    def _tree(self, archive: Path, sha256: str, label: str) -> Path:
        folder = self.cache_dir / "trees" / sha256
        if folder.is_dir():
            self._check_unpacked(folder, sha256, label)
            return folder
        tmp = folder.with_name(f".tmp-{uuid.uuid4().hex}")
        try:
            extract_tree(archive, tmp)
            try:
                tmp.rename(folder)
            except OSError:
                if not folder.is_dir():
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        self._check_unpacked(folder, sha256, label)  # also memoises a fresh copy
        return folder

    def _check_unpacked(self, folder: Path, sha256: str, label: str) -> None:
        """Refuse an unpacked copy whose files no longer hash to the recorded ``sha256``."""
        signature = _tree_signature(folder)
        with self._lock:
            known = self._verified_trees.get(folder)
        if known is not None and known == (signature, sha256):
            return
        actual = tree_digest(folder)
        if actual != sha256:
            raise IntegrityError(
                f"The unpacked copy of the {label} at {folder} was changed after ctloop "
                f"unpacked it: its files hash to {actual[:16]}..., not the recorded "
                f"{sha256[:16]}... (the stored archive itself is intact). Nothing from it was "
                "used. Find out who changed it, then delete that folder; ctloop unpacks it "
                "again from the verified archive."
            )
        if _tree_signature(folder) == signature:  # unchanged while we hashed it
            with self._lock:
                self._verified_trees[folder] = (signature, sha256)

    # verification memo -----------------------------------------------------
    def _local_hash(self, path: Path) -> str:
        signature = _signature(path)
        with self._lock:
            known = self._verified.get(path)
        if known is not None and known[0] == signature:
            return known[1]
        digest = hash_file(path)
        if _signature(path) == signature:  # unchanged while we read it
            with self._lock:
                self._verified[path] = (signature, digest)
        return digest

    def _remember(self, path: Path, sha256: str) -> None:
        try:
            signature = _signature(path)
        except FileNotFoundError:
            return
        with self._lock:
            self._verified[path] = (signature, sha256)


@contextmanager
def _no_partial_file(tmp: Path, where: str, source: Path) -> Iterator[None]:
    """Remove ``tmp`` when writing it fails, so a full disk is not kept full by our leftovers.

    A full disk (``ENOSPC``, ``EDQUOT``) becomes a ``StoreError`` that says so.
    """
    try:
        yield
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StoreError(
                f"No space left in {where} while storing {source}; nothing partial was kept. "
                "Free some space (or point CTLOOP_ARTIFACTS_URL at a larger volume) and retry."
            ) from exc
        raise


def _copy_hashing(source: Path, target: Path) -> tuple[str, int]:
    import hashlib

    digest = hashlib.sha256()
    size = 0
    with open(source, "rb") as src, open(target, "wb") as dst:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            dst.write(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def open_byte_store(url: str, storage_options: dict[str, object] | None = None) -> ByteStore:
    """The byte store for ``url``: a local folder for paths and ``file://``, else fsspec."""
    if "://" not in url or url.startswith("file:"):
        return LocalByteStore(url)
    from ctloop.artifacts.remote import FsspecByteStore

    return FsspecByteStore(url, storage_options)
