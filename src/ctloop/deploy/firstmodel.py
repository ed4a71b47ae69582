"""A deployment's first model, served from its bundle before the stores are up.

``ctloop deploy export --model BUNDLE`` puts the bundle into the export (hence
the image). Two commands of the deployment use it:

- ``ctloop deploy serve`` (the serving replicas): on a deployment whose
  registry has not taken the first model yet (no marker in the state volume),
  it checks the bundle's hashes, registers it in a registry held in memory and
  answers from it at once, without waiting for PostgreSQL; the request log is
  local files in the state volume, so nothing waits for the database. When the
  marker appears, the replica follows the deployment's registry
  (``ModelPool.adopt``); the registry's version with the same bytes is served on,
  not loaded again. Once the marker exists (any later start) it serves from the
  registry as ``ctloop serve`` does, after waiting for the database.
- ``ctloop deploy first-model`` (a one-shot service): imports the same bundle
  into the registry (hash-checked, with its provenance), makes it the champion
  only when the model has none yet (a restart never moves the alias back), and
  writes the marker.

The in-memory registry is :class:`ctloop.metadata.memory.InMemoryMetadataStore`,
the reference backend that passes the metadata contract suites: opening it costs
nothing, where a new SQLite store costs a second of migrations.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ctloop.core.errors import BackendUnavailable, StoreError
from ctloop.core.secrets import mask_secrets
from ctloop.core.settings import Settings

if TYPE_CHECKING:
    from ctloop.artifacts.base import ArtifactStore
    from ctloop.metadata.base import MetadataStore
    from ctloop.serving.app import ServingApp
    from ctloop.serving.dataplane import ServingState

__all__ = ["ALIAS", "BUNDLE_FILE", "FirstModel", "import_first_model", "marker_path",
           "serving_app"]

log = logging.getLogger("ctloop.deploy")

BUNDLE_FILE = "first-model.bundle"  # in the export folder, hence in the image
ALIAS = "champion"
_MARKER = "deploy/first-model.json"  # under the state folder (a volume every service shares)


@dataclass(frozen=True)
class FirstModel:
    """What the one-shot import did: the registered version and who holds the alias."""

    name: str
    version: int
    sha256: str
    outcome: str  # "imported" or "already present"
    champion: int  # the alias's holder after the import (another version after a retrain)


def marker_path(settings: Settings) -> Path:
    """Written once the deployment's registry holds the first model (and an alias holder)."""
    return Path(settings.home) / _MARKER


def import_first_model(settings: Settings, bundle: Path) -> FirstModel:
    """Import ``bundle`` into the deployment's registry (idempotent), give it the alias
    when nothing holds it, and write the marker the replicas wait for."""
    from ctloop.registry import ModelRegistry
    from ctloop.registry.bundle import import_bundle, open_environment

    store, artifacts, env = open_environment(settings)
    try:
        result = import_bundle(store, artifacts, bundle, environment=env, existing_ok=True)
        registry = ModelRegistry(store, artifacts=artifacts)
        champion = registry.aliases(result.name).get(ALIAS)
        if champion is None:
            registry.promote(result.name, result.version, alias=ALIAS,
                             reason=f"the deployment's first model ({bundle.name})")
            champion = result.version
    finally:
        store.close()
    done = FirstModel(result.name, result.version, result.provenance.model_sha256,
                      result.outcome, champion)
    marker = marker_path(settings)
    marker.parent.mkdir(parents=True, exist_ok=True)
    partial = marker.with_suffix(".tmp")
    partial.write_text(json.dumps(asdict(done)))
    os.replace(partial, marker)  # the replicas never read half a file
    return done


def _seeded(bundle: Path) -> tuple[MetadataStore, ArtifactStore, Path]:
    """A registry in memory holding ``bundle`` as the champion, its artifact store and the
    temporary folder that store writes to (removed when the service shuts down)."""
    from ctloop.artifacts import open_artifact_store
    from ctloop.metadata.memory import InMemoryMetadataStore
    from ctloop.registry import ModelRegistry
    from ctloop.registry.bundle import import_bundle

    store = InMemoryMetadataStore()
    folder = Path(tempfile.mkdtemp(prefix="ctloop-first-"))
    artifacts = open_artifact_store(folder.as_uri())
    result = import_bundle(store, artifacts, bundle, environment="bundle")
    ModelRegistry(store, artifacts=artifacts).promote(
        result.name, result.version, alias=ALIAS, reason="served from the bundle at start")
    return store, artifacts, folder


def _open_store(settings: Settings, patience: float) -> MetadataStore:
    """The deployment's metadata store, retried every second while the database starts.

    Only an unreachable or busy database is waited for; a wrong URL or a missing driver is
    raised at once, since no amount of waiting mends it.
    """
    from ctloop.metadata import open_metadata_store

    deadline = time.monotonic() + patience
    while True:
        try:
            return open_metadata_store(settings.metadata_url)
        except (BackendUnavailable, StoreError) as exc:
            if time.monotonic() > deadline:
                raise
            log.info("metadata store not answering yet (%s); retrying", type(exc).__name__)
            time.sleep(1.0)


def _follow(state: ServingState, settings: Settings) -> None:
    """Wait for the marker, then serve from the deployment's registry."""
    from ctloop.artifacts import open_artifact_store
    from ctloop.registry import ModelRegistry

    marker = marker_path(settings)
    while not marker.is_file():
        time.sleep(0.5)
    try:
        store = _open_store(settings, float("inf"))
    except Exception as exc:  # the thread's end: say why the replica stays on its bundle
        log.error("cannot follow the deployment's registry, serving the bundle's model until "
                  "restarted: %s", mask_secrets(str(exc)))
        return
    state.closers.append(store.close)
    state.pool.adopt(ModelRegistry(store), open_artifact_store(settings.artifacts_url))
    state.pool.refresh()
    log.info("serving from the deployment's registry now: %s",
             {n: [s.version for s in d.routes] for n, d in state.pool.deployments.items()})


def serving_app(settings: Settings, bundle: Path | None, *, wait: float = 300) -> ServingApp:
    """The prediction service of a deployed replica: from ``bundle`` while the deployment's
    registry does not hold the first model yet, else from the registry."""
    from ctloop.serving import ServingConfig, create_app

    config = ServingConfig.from_table(settings.tables.serving)
    if bundle is None or not bundle.is_file() or marker_path(settings).is_file():
        store = _open_store(settings, wait)
        app = create_app(config=config, settings=settings, metadata=store)
        app.state.serving.closers.append(store.close)
        return app
    seed, artifacts, folder = _seeded(bundle)
    app = create_app(config=config, settings=settings, metadata=seed, artifacts=artifacts)
    state: ServingState = app.state.serving
    state.closers.append(lambda: shutil.rmtree(folder, ignore_errors=True))
    threading.Thread(target=_follow, args=(state, settings), name="ctloop-first-model",
                     daemon=True).start()
    return app
