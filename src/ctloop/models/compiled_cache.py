"""Compiled objects kept with their model version, hash-checked like every artifact.

The object's bytes go to the artifact store (content-addressed); its URI and
sha256 are recorded on the model version in the metadata store, under
``properties.compiled[key]``. Reading checks the bytes against that record
twice: the artifact store's own check, then our hash of the very bytes handed
to the loader (nothing is read from disk again between check and load). An
object that fails either is refused, logged, and compiled again; the fresh
object replaces the damaged one in the store.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from ctloop.artifacts.base import ArtifactStore
from ctloop.core.errors import CtloopError
from ctloop.core.hashing import hash_bytes
from ctloop.core.jsontypes import as_object
from ctloop.metadata.base import ModelVersionUpdate, RegistryStore

__all__ = ["KEEP", "VersionCompiledCache"]

log = logging.getLogger("ctloop.models.compiled")

KEEP = 4  # objects recorded per version (one per CPU or compiler in use); older ones dropped


class VersionCompiledCache:
    """``CompiledCache`` of one model version: objects in the artifact store, hashes in metadata."""

    def __init__(
        self, store: RegistryStore, artifacts: ArtifactStore, name: str, version: int
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.name = name
        self.version = version

    @property
    def label(self) -> str:
        return f"{self.name}:{self.version}"

    def read(self, key: str) -> bytes | None:
        record = self.store.get_model_version(self.name, self.version)
        entry = as_object(as_object(record.properties.get("compiled")).get(key))
        if not entry:
            return None
        sha256 = str(entry.get("sha256", ""))
        try:
            path = self.artifacts.get(str(entry["uri"]), sha256, name=f"compiled {self.label}")
            data = path.read_bytes()
        except (CtloopError, OSError, KeyError) as exc:
            why = exc.one_line() if isinstance(exc, CtloopError) else f"{type(exc).__name__}: {exc}"
            log.warning("refused the compiled object of %s (%s); compiling again", self.label, why)
            return None
        if hash_bytes(data) != sha256:
            log.warning(
                "refused the compiled object of %s: its bytes changed after the check; "
                "compiling again",
                self.label,
            )
            return None
        return data

    def write(self, key: str, data: bytes, *, backend: str) -> None:
        with tempfile.TemporaryDirectory(prefix="ctloop-compiled-") as folder:
            path = Path(folder) / "forest.o"
            path.write_bytes(data)
            stored = self.artifacts.put(path)
        record = self.store.get_model_version(self.name, self.version)
        properties = dict(record.properties)
        compiled = {k: v for k, v in as_object(properties.get("compiled")).items() if k != key}
        compiled[key] = {"uri": stored.uri, "sha256": stored.sha256, "size": stored.size,
                         "backend": backend}
        properties["compiled"] = dict(list(compiled.items())[-KEEP:])
        self.store.update_model_version(
            self.name, self.version, ModelVersionUpdate(properties=properties)
        )
