"""The feature catalog: versioned definitions in the metadata store, search and lineage.

``apply`` stores each entity and view as a ``DefinitionRecord``: unchanged
definitions keep their version, changed ones get the next. It also reports
features that compute the same thing under different names ("duplicates") and
one feature name that means different things in different views ("conflicts"):
reported, not refused, since both can be intended.

Lineage: a training run records the refs its training set used
(``TrainingSet.feature_refs``) in the ``feature_refs`` property of its dataset
artifact or model version; :func:`used_by` reads them back.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypedDict

from ctloop.core.errors import NotFound
from ctloop.core.hashing import hash_bytes, stable_json
from ctloop.core.jsontypes import (
    JSONObject,
    JSONValue,
    as_list,
    as_number,
    as_object,
    as_str,
    as_strs,
)
from ctloop.features.definitions import AggregationView, Entity, FeatureView, definition_from_spec
from ctloop.features.errors import feature_not_found

if TYPE_CHECKING:
    from ctloop.features.loading import Definitions
    from ctloop.metadata.base import CatalogStore, DefinitionRecord, DefinitionStore

__all__ = [
    "ApplyReport",
    "FeatureRow",
    "ViewDescription",
    "apply_definitions",
    "describe",
    "feature_rows",
    "load_catalog",
    "used_by",
]

View = FeatureView | AggregationView
ENTITY, VIEW = "entity", "feature_view"


class FeatureRow(TypedDict):
    """One registered feature as the catalog lists it (CLI ``features list``, the UI)."""

    ref: str
    view: str
    version: int | None
    entities: list[str]
    join_keys: list[str]
    dtype: str
    kind: str  # "feature" or "aggregation"
    owner: str
    tags: dict[str, str]
    description: str


class VersionRow(TypedDict):
    version: int
    created_at: str | None
    fingerprint: str  # the first 12 characters


class ViewDescription(TypedDict):
    """Everything about one view, as ``ctloop features show`` and the UI show it."""

    name: str
    version: int
    description: str
    owner: str
    tags: dict[str, str]
    entities: list[str]
    join_keys: list[str]
    source: JSONObject
    timestamp_field: str | None
    ttl_s: float | None
    features: list[JSONObject]  # each feature's or aggregation's spec
    materialized_until: str | None
    versions: list[VersionRow]
    used_by: list[dict[str, JSONValue]]


class Watermarks(Protocol):
    """What ``describe`` asks of an online store: how far a view is materialized."""

    def watermark(self, view: str) -> int | None: ...


@dataclass
class ApplyReport:
    """What ``apply`` did, per definition, and what it noticed."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)  # "name v3"
    unchanged: list[str] = field(default_factory=list)
    duplicates: list[list[str]] = field(default_factory=list)  # refs computing the same thing
    conflicts: dict[str, list[str]] = field(default_factory=dict)  # name -> refs meaning otherwise

    def to_dict(self) -> dict[str, JSONValue]:
        return dataclasses.asdict(self)

    def warnings(self) -> list[str]:
        out = [
            f"{', '.join(group)} compute the same thing; keep one and use it everywhere."
            for group in self.duplicates
        ]
        out += [
            f"feature name {name!r} means different things in {', '.join(refs)}; rename one."
            for name, refs in self.conflicts.items()
        ]
        return out


def _fingerprint(spec: JSONObject, description: str, owner: str, tags: dict[str, str]) -> str:
    doc = {"spec": spec, "description": description, "owner": owner, "tags": tags}
    return hash_bytes(stable_json(doc).encode())


def _view_spec(view: View) -> dict[str, JSONValue]:
    spec = view.spec()
    spec["feature_descriptions"] = {
        f.name: f.description
        for f in view.features
        if f.description
    }
    return spec


def apply_definitions(metadata: DefinitionStore, definitions: Definitions) -> ApplyReport:
    """Register entities and views; report new versions, duplicates and name conflicts."""
    report = ApplyReport()
    items: list[tuple[str, Entity | View, JSONObject]] = [
        (ENTITY, e, e.spec()) for e in definitions.entities.values()
    ]
    items += [(VIEW, v, _view_spec(v)) for v in definitions.views.values()]
    for kind, item, spec in items:
        record, created = metadata.put_definition(
            kind,
            item.name,
            spec,
            fingerprint=_fingerprint(spec, item.description, item.owner, dict(item.tags)),
            description=item.description,
            owner=item.owner,
            tags=dict(item.tags),
        )
        label = item.name if kind == VIEW else f"entity {item.name}"
        if not created:
            report.unchanged.append(label)
        elif record.version == 1:
            report.created.append(label)
        else:
            report.updated.append(f"{label} v{record.version}")
    _find_overlaps(load_catalog(metadata).views, report)
    return report


def _find_overlaps(views: dict[str, View], report: ApplyReport) -> None:
    meaning: dict[str, list[str]] = defaultdict(list)
    by_name: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for view in views.values():
        for name in view.feature_names:
            key = view.semantic_key(name)
            ref = f"{view.name}:{name}"
            meaning[key].append(ref)
            by_name[name][key].append(ref)
    report.duplicates = sorted(sorted(refs) for refs in meaning.values() if len(refs) > 1)
    report.conflicts = {
        name: sorted(r for refs in keys.values() for r in refs)
        for name, keys in sorted(by_name.items())
        if len(keys) > 1
    }


def load_catalog(metadata: DefinitionStore) -> Definitions:
    """The latest version of every registered entity and view."""
    from ctloop.features.loading import Definitions

    records = metadata.list_definitions()
    entities: dict[str, Entity] = {}
    views: dict[str, View] = {}
    for r in records:
        if r.kind == ENTITY:
            entity = definition_from_spec(r.spec)
            if isinstance(entity, Entity):
                entities[r.name] = _entity_with_meta(entity, r)
    for r in records:
        if r.kind == VIEW:
            view = definition_from_spec(r.spec, entities)
            if not isinstance(view, Entity):
                views[r.name] = _view_with_meta(view, r)
    return Definitions(entities, views)


def _entity_with_meta(entity: Entity, record: DefinitionRecord) -> Entity:
    return dataclasses.replace(entity, description=record.description, owner=record.owner,
                               tags=dict(record.tags))


def _view_with_meta(view: View, record: DefinitionRecord) -> View:
    """``view`` with the record's prose, and each feature's description the spec kept."""
    descriptions = as_object(record.spec.get("feature_descriptions"))
    text, owner, tags = record.description, record.owner, dict(record.tags)
    if isinstance(view, FeatureView):
        feats = [dataclasses.replace(f, description=as_str(descriptions.get(f.name)))
                 for f in view.features]
        return dataclasses.replace(view, features=tuple(feats), description=text, owner=owner,
                                   tags=tags)
    aggs = [dataclasses.replace(a, description=as_str(descriptions.get(a.name)))
            for a in view.aggregations]
    return dataclasses.replace(view, aggregations=tuple(aggs), description=text, owner=owner,
                               tags=tags)


def feature_rows(
    metadata: DefinitionStore,
    *,
    query: str | None = None,
    entity: str | None = None,
    tag: str | None = None,
    owner: str | None = None,
) -> list[FeatureRow]:
    """One row per registered feature, filtered; ``query`` matches any text field."""
    rows: list[FeatureRow] = []
    versions = {r.name: r.version for r in metadata.list_definitions(VIEW)}
    for view in load_catalog(metadata).views.values():
        for item in view.features:
            row: FeatureRow = {
                "ref": f"{view.name}:{item.name}",
                "view": view.name,
                "version": versions.get(view.name),
                "entities": [e.name for e in view.entities],
                "join_keys": list(view.join_keys),
                "dtype": item.dtype,
                "kind": "aggregation" if isinstance(view, AggregationView) else "feature",
                "owner": view.owner,
                "tags": dict(view.tags),
                "description": item.description or view.description,
            }
            if entity and entity not in row["entities"] and entity not in row["join_keys"]:
                continue
            if owner and owner.lower() != view.owner.lower():
                continue
            if tag:
                k, _, v = tag.partition("=")
                if k not in view.tags or (v and view.tags[k] != v):
                    continue
            if query:
                text = " ".join(
                    [
                        row["ref"],
                        *row["entities"],
                        view.owner,
                        view.description,
                        item.description,
                        *(e.description for e in view.entities),
                        *(f"{k}={v}" for k, v in view.tags.items()),
                    ]
                ).lower()
                if query.lower() not in text:
                    continue
            rows.append(row)
    return rows


def used_by(metadata: CatalogStore, refs: list[str]) -> list[dict[str, JSONValue]]:
    """Model versions and datasets that used any of ``refs``.

    A model version counts when its own ``feature_refs`` name one, or when it
    was trained on a dataset whose ``feature_refs`` do (the training component
    records ``training_data.id``), so lineage reaches the models, not just the
    training sets.
    """
    wanted = set(refs)
    datasets: list[dict[str, JSONValue]] = []
    for art in metadata.list_artifacts(type="Dataset", limit=1000):
        used = set(as_strs(art.properties.get("feature_refs")))
        if used & wanted:
            datasets.append({"dataset": art.id, "step_id": art.producer_step_id})
    dataset_ids = {d["dataset"] for d in datasets}
    models: list[dict[str, JSONValue]] = []
    for mv in metadata.list_model_versions():
        direct = set(as_strs(mv.properties.get("feature_refs"))) & wanted
        trained_on = as_object(mv.properties.get("training_data")).get("id")
        if direct or trained_on in dataset_ids:
            entry: dict[str, JSONValue] = {"model": mv.name, "version": mv.version,
                                           "run_id": mv.run_id}
            if not direct:
                entry["via_dataset"] = trained_on
            models.append(entry)
    return models + datasets


def describe(metadata: CatalogStore, name: str, *,
             online: Watermarks | None = None) -> ViewDescription:
    """Everything about one view (or the view of a ``view:feature`` ref)."""
    view_name = name.split(":", 1)[0]
    try:
        latest = metadata.get_definition(VIEW, view_name)
    except NotFound:
        known = [r.name for r in metadata.list_definitions(VIEW)]
        raise feature_not_found(name, known, what="feature view") from None
    history = [metadata.get_definition(VIEW, view_name, v) for v in range(1, latest.version + 1)]
    view = load_catalog(metadata).views[view_name]
    freshness = None
    if online is not None:
        from ctloop.features.timekeys import from_us as _from_us

        mark = online.watermark(view_name)
        stamp = None if mark is None else _from_us(mark)
        freshness = None if stamp is None else stamp.isoformat()
    refs = [f"{view_name}:{n}" for n in view.feature_names]
    return {
        "name": view_name,
        "version": latest.version,
        "description": latest.description,
        "owner": latest.owner,
        "tags": dict(latest.tags),
        "entities": as_strs(latest.spec.get("entities")),
        "join_keys": as_strs(latest.spec.get("join_keys")),
        "source": as_object(latest.spec.get("source")),
        "timestamp_field": view.timestamp_field,
        "ttl_s": as_number(latest.spec.get("ttl_s")),
        "features": [as_object(f) for f in as_list(latest.spec.get("features"))],
        "materialized_until": freshness,
        "versions": [
            {
                "version": r.version,
                "created_at": r.created_at.isoformat() if r.created_at else None,
                "fingerprint": r.fingerprint[:12],
            }
            for r in history
        ],
        "used_by": used_by(metadata, refs),
    }
