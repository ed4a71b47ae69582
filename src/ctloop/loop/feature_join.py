"""A loop's ``train.feature_refs``, joined point in time onto spans that lack them.

A span may carry only raw columns and the entity join keys; every ref whose
column the span lacks is joined at each row's event time
(``FeatureStore.get_training_set``), so training, the holdout and the replay's
served rows see the value known then, never a later one. A column the span
already carries is kept as it is.

The definitions come from the loop's ``train.feature_store`` file, else from the
project's feature catalog (``ctloop features apply``). The runner resolves them
once, in the project that declares the loop, and hands the training pipeline
the JSON specs of the views to join (:meth:`LoopFeatures.document`): the run
records exactly what it joined, and a replay's sandbox (its own metadata
database) or a step in another process needs no access to the live catalog.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ctloop.core.errors import ConfigError, CtloopError, UserInputError

if TYPE_CHECKING:
    import pandas as pd

    from ctloop.features.loading import Definitions
    from ctloop.loop.declaration import LoopSpec

__all__ = ["LoopFeatures", "join_point_in_time", "open_loop_features"]

KEY = "train.feature_refs"


@dataclass(frozen=True)
class LoopFeatures:
    """A loop's refs, expanded to ``view:feature``, with the definitions they name."""

    loop: str
    definitions: Definitions
    refs: tuple[str, ...]
    columns: dict[str, str]  # ref -> the column it fills (feature name; view__name if shared)

    def missing(self, columns: Sequence[str]) -> list[str]:
        """The refs whose column a frame lacks: the ones to join."""
        have = set(columns)
        return [r for r in self.refs if self.columns[r] not in have]

    def join_keys(self, refs: Sequence[str]) -> list[str]:
        keys: list[str] = []
        for ref in refs:
            keys.extend(k for k in self.definitions.views[ref.split(":")[0]].join_keys
                        if k not in keys)
        return keys

    def document(self, refs: Sequence[str]) -> dict[str, Any]:
        """JSON specs of the views behind ``refs`` (what a training step rebuilds them from)."""
        from ctloop.features.definitions import DataFrameSource

        views = {r.split(":")[0] for r in refs}
        specs = []
        for name in sorted(views):
            view = self.definitions.views[name]
            if isinstance(view.source, DataFrameSource):
                raise ConfigError(
                    f"Loop {self.loop!r}: key {KEY!r}: view {name!r} reads an in-memory "
                    "DataFrame, which a training step cannot load; give it a FileSource, "
                    "SqlSource or PythonSource.")
            specs.append(view.spec())
        return {"refs": list(refs), "columns": {r: self.columns[r] for r in refs},
                "views": specs}


def open_loop_features(spec: LoopSpec, catalog_url: str) -> LoopFeatures | None:
    """The loop's refs resolved against its definitions; None when it declares none.

    An unknown ref is a one-line error naming the loop and the key.
    """
    refs = spec.train.feature_refs
    if not refs:
        return None
    where = f"Loop {spec.name!r}: key {KEY!r}"
    definitions = _definitions(spec, catalog_url, where)
    if not definitions.views:
        raise ConfigError(
            f"{where} names {refs[0]!r}, but no feature view is registered: run `ctloop "
            "features apply FILE` or set key 'train.feature_store' to the definitions file.")
    from ctloop.features.store import FeatureStore

    store = FeatureStore(definitions, online_store="sqlite:///:memory:")
    try:
        groups = store.resolve(list(refs))
    except CtloopError as exc:
        raise ConfigError(f"{where}: {' '.join(exc.message.split())}") from None
    expanded = tuple(r for _, _, group in groups for r in group)
    names = [r.split(":", 1)[1] for r in expanded]
    columns = {r: (n if names.count(n) == 1 else r.replace(":", "__"))
               for r, n in zip(expanded, names, strict=True)}
    return LoopFeatures(spec.name, definitions, expanded, columns)


def _definitions(spec: LoopSpec, catalog_url: str, where: str) -> Definitions:
    """The ``train.feature_store`` file's definitions, else the project's catalog."""
    if spec.train.feature_store:
        from ctloop.features.loading import load_definitions

        try:
            return load_definitions(spec.train.feature_store)
        except CtloopError as exc:
            raise ConfigError(f"Loop {spec.name!r}: key 'train.feature_store': "
                              f"{' '.join(exc.message.split())}") from None
    from ctloop.features.catalog import load_catalog
    from ctloop.metadata import open_metadata_store

    store = open_metadata_store(catalog_url)
    try:
        return load_catalog(store)
    finally:
        store.close()


def join_point_in_time(frame: pd.DataFrame, document: dict[str, Any], event_time: str,
                       where: str = "") -> pd.DataFrame:
    """``frame`` plus every documented ref it lacks, valued at each row's ``event_time``."""
    import pandas as pd

    from ctloop.features.definitions import definition_from_spec
    from ctloop.features.loading import Definitions
    from ctloop.features.store import FeatureStore

    columns: dict[str, str] = document.get("columns", {})
    refs = [r for r in document.get("refs", []) if columns[r] not in frame.columns]
    if not refs or frame.empty:
        return frame
    views = [definition_from_spec(s) for s in document.get("views", [])]
    store = FeatureStore(Definitions.of(views), online_store="sqlite:///:memory:")
    keys = [k for view, _, _ in store.resolve(refs) for k in view.join_keys]
    absent = [k for k in dict.fromkeys(keys) if k not in frame.columns]
    if absent:
        raise UserInputError(
            f"{where}key {KEY!r}: the span has no join key {absent[0]!r} to join "
            f"{refs[0]!r} on; it has {list(frame.columns)[:12]}.")
    joined = store.get_training_set(frame, refs, timestamp_column=event_time, full_names=True)
    values = joined.features.to_pandas().rename(
        columns={out: columns[ref] for out, ref in joined.columns.items()})
    out: pd.DataFrame = pd.concat([frame.reset_index(drop=True), values], axis=1)
    return out
