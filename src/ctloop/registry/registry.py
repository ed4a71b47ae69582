"""The model registry: versions, aliases, promotion, rollback and their history.

Built only on the ``ModelStore`` interface. A version points at a model
artifact and records where it came from (run, producing step, code version,
input data). Aliases (``champion``, ``challenger``, any name) are moved by the
store atomically with compare-and-set, and every move is kept with who, when
and why, which is what makes rollback a single step: the alias returns to the
holder before the current one.
"""

from __future__ import annotations

import difflib
import getpass
import os
from pathlib import Path
from types import EllipsisType

from ctloop.artifacts.base import ArtifactStore
from ctloop.artifacts.treefile import tree_digest
from ctloop.core.errors import IntegrityError, NotFound, StoreError, UserInputError
from ctloop.core.jsontypes import JSONObject
from ctloop.metadata.base import (
    UNSET,
    AliasEventRecord,
    ModelStore,
    ModelVersionRecord,
    ModelVersionUpdate,
    RunLineageStore,
)
from ctloop.metadata.lineage import lineage
from ctloop.models.evaluation_record import Evaluation
from ctloop.models.flavors import LoadedModel, load_model
from ctloop.models.lazy_booster import LazyBooster
from ctloop.registry.refs import ModelRef, parse_ref
from ctloop.registry.summaries import (
    Comparison,
    ComparisonRow,
    LineageSummary,
    ModelSummary,
    compare_results,
    lineage_json,
)

__all__ = ["ROLLBACK_MARK", "Comparison", "ModelRegistry", "ModelSummary", "default_actor"]

ROLLBACK_MARK = "[rollback]"  # prefix of the reason of an alias move made by rollback()


def default_actor() -> str:
    """Who is acting: ``CTLOOP_ACTOR`` if set, else the login name."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return os.environ.get("CTLOOP_ACTOR") or user


class ModelRegistry:
    """Registered model versions and their aliases, on a metadata store."""

    def __init__(
        self,
        store: ModelStore,
        *,
        actor: str | None = None,
        artifacts: ArtifactStore | None = None,
    ) -> None:
        """``artifacts``: where the model bytes live; default, the store each URI names."""
        self.store = store
        self.actor = actor or default_actor()
        self.artifacts = artifacts

    # versions -------------------------------------------------------------
    def register(
        self,
        name: str,
        artifact_id: str,
        *,
        run_id: str | None = None,
        description: str = "",
        tags: dict[str, str] | None = None,
        properties: JSONObject | None = None,
    ) -> ModelVersionRecord:
        """Register the model artifact as the next version of ``name``.

        Registering an artifact that is already a version of ``name`` (a cached
        training step) returns that version instead of adding a duplicate.

        The lineage (producing run and step, code version, input artifacts with
        their hashes) is looked up in the metadata store and kept in
        ``properties["lineage"]``.
        """
        artifact = self.store.get_artifact(artifact_id)
        found = _lineage_summary(self.store, artifact.id)
        props = {"lineage": lineage_json(found), **(properties or {})}
        return self.store.create_model_version(
            name,
            artifact.id,
            run_id=run_id or found.get("run_id"),
            description=description,
            tags=tags,
            properties=props,
            created_by=self.actor,
        )

    def get(self, ref: str | ModelRef) -> ModelVersionRecord:
        """The version a reference means; a bare name means its latest version."""
        ref = parse_ref(ref) if isinstance(ref, str) else ref
        if ref.version is not None:
            self.versions(ref.name)  # NotFound naming the model if it does not exist
            return self.store.get_model_version(ref.name, ref.version)
        if ref.alias is not None:
            aliases = self.aliases(ref.name)
            if ref.alias not in aliases:
                known = ", ".join(sorted(aliases)) or "none"
                raise NotFound(
                    f"Model {ref.name!r} has no alias {ref.alias!r} (aliases: {known}). "
                    f"Promote a version with `ctloop models promote {ref.name} VERSION "
                    f"--alias {ref.alias}`."
                )
            return self.store.get_model_version(ref.name, aliases[ref.alias])
        return self.versions(ref.name)[-1]

    def versions(self, name: str) -> list[ModelVersionRecord]:
        """All versions of ``name``, oldest first."""
        found = self.store.list_model_versions(name)
        if not found:
            names = sorted({v.name for v in self.store.list_model_versions()})
            near = difflib.get_close_matches(name, names, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise NotFound(
                f"No model named {name!r}{hint}; registered models: {', '.join(names) or 'none'}."
            )
        return sorted(found, key=lambda v: v.version)

    def models(self) -> list[ModelSummary]:
        """One summary per model name: latest version, version count, aliases."""
        by_name: dict[str, list[ModelVersionRecord]] = {}
        for record in self.store.list_model_versions():
            by_name.setdefault(record.name, []).append(record)
        out = []
        for name in sorted(by_name):
            latest = max(by_name[name], key=lambda v: v.version)
            out.append(ModelSummary(
                name=name,
                versions=len(by_name[name]),
                latest_version=latest.version,
                aliases=self.store.get_aliases(name),
                updated_at=latest.created_at.isoformat() if latest.created_at else None,
            ))
        return out

    def aliases(self, name: str) -> dict[str, int]:
        self.versions(name)
        return self.store.get_aliases(name)

    def describe(
        self,
        name: str,
        version: int,
        *,
        description: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> ModelVersionRecord:
        """Change a version's description and/or merge tags into its tags."""
        record = self.store.get_model_version(name, version)
        update = ModelVersionUpdate(
            description=UNSET if description is None else description,
            tags={**record.tags, **tags} if tags else UNSET,
        )
        return self.store.update_model_version(name, version, update)

    # aliases --------------------------------------------------------------
    def promote(
        self,
        name: str,
        version: int,
        *,
        alias: str = "champion",
        reason: str = "",
        expected_version: int | EllipsisType | None = ...,
    ) -> AliasEventRecord:
        """Point ``alias`` at ``version``; recorded with actor and reason.

        Give ``expected_version`` (the holder you decided against, None for no
        holder) to move only if nobody moved the alias meanwhile; otherwise
        ``StoreError``. A version whose stored bytes do not match the recorded
        sha256 is refused (``IntegrityError``): nothing tampered gets an alias.
        """
        if reason.startswith(ROLLBACK_MARK):
            raise UserInputError(f"A promotion reason cannot start with {ROLLBACK_MARK!r}.")
        self.store.get_model_version(name, version)
        self._verify_for(name, version, f"promoted to {alias!r}")
        return self.store.move_alias(
            name,
            alias,
            version,
            actor=self.actor,
            reason=reason,
            expected_version=expected_version,
        )

    def rollback(self, name: str, *, alias: str = "champion", reason: str = "") -> AliasEventRecord:
        """Return ``alias`` to the version that held it before the current one.

        Rollbacks stack: rolling back twice goes two holders back. The move is a
        compare-and-set, so two people rolling back at once cannot skip a holder.
        """
        holders = self.holders(name, alias)
        if len(holders) < 2:
            raise UserInputError(
                f"Alias {alias!r} of model {name!r} has no previous holder to roll back to "
                f"(holders so far: {holders or 'none'})."
            )
        current, target = holders[-1], holders[-2]
        self._verify_for(name, target, f"the rollback target of {alias!r}")
        text = f"{ROLLBACK_MARK} from version {current}" + (f": {reason}" if reason else "")
        try:
            return self.store.move_alias(
                name, alias, target, actor=self.actor, reason=text, expected_version=current
            )
        except StoreError as exc:
            raise StoreError(f"Rollback of {name}@{alias} not done: {exc}") from exc

    def holders(self, name: str, alias: str) -> list[int]:
        """Versions that held ``alias``, oldest first, with rolled-back holders removed."""
        self.versions(name)
        stack: list[int] = []
        for event in self.store.alias_history(name, alias):
            if event.reason.startswith(ROLLBACK_MARK) and stack:
                stack.pop()
                if event.version is not None and (not stack or stack[-1] != event.version):
                    stack.append(event.version)
            elif event.version is None:
                stack.clear()
            elif not stack or stack[-1] != event.version:
                stack.append(event.version)
        return stack

    def history(self, name: str, alias: str | None = None) -> list[AliasEventRecord]:
        """Every alias move of ``name`` (or of one alias), oldest first."""
        self.versions(name)
        return self.store.alias_history(name, alias)

    # use ------------------------------------------------------------------
    def load(
        self,
        ref: str | ModelRef,
        artifacts: ArtifactStore | None = None,
        *,
        compiled: bool = False,
    ) -> LoadedModel:
        """The model a reference points at, fetched hash-checked from the artifact store.

        The folder is checked against the sha256 the metadata store recorded
        for the version's artifact (not the manifest inside it) before any
        byte of it is unpickled. ``compiled``: also give it native code for
        its trees (``ctloop.models.compiled``; LightGBM), cached with the
        version, compiled in the background when not cached yet.
        """
        record = self.get(ref)
        artifact = self.store.get_artifact(record.artifact_id)
        store = self._artifacts_for(artifact.uri, artifacts)
        path = store.get(artifact.uri, artifact.sha256, name=f"{record.name}:{record.version}")
        model = load_model(Path(path), sha256=artifact.sha256)
        if compiled:
            from ctloop.models.compiled import attach_compiled
            from ctloop.models.compiled_cache import VersionCompiledCache

            cache = VersionCompiledCache(self.store, store, record.name, record.version)
            attach_compiled(model, cache, background=True)
        if model.compiled is None and isinstance(model.model, LazyBooster):
            model.model.booster  # noqa: B018  # the library answers: import it now, not mid-request
        return model

    def verify(self, name: str, version: int, artifacts: ArtifactStore | None = None) -> None:
        """Raise ``IntegrityError`` unless the version's stored bytes are exactly the recorded ones.

        Checks the stored archive and, for a folder, the unpacked copy every
        load reads; nothing is unpickled. Promotion and rollback call it.
        """
        record = self.store.get_model_version(name, version)
        artifact = self.store.get_artifact(record.artifact_id)
        store = self._artifacts_for(artifact.uri, artifacts)
        label = f"{name}:{version}"
        try:
            path = store.get(artifact.uri, artifact.sha256, name=label)
            if path.is_dir() and (actual := tree_digest(path)) != artifact.sha256:
                raise IntegrityError(
                    f"its files at {path} hash to {actual[:16]}..., not the recorded "
                    f"{artifact.sha256[:16]}...; delete that folder to unpack it again."
                )
        except (IntegrityError, NotFound, UserInputError) as exc:
            raise type(exc)(f"Model {label} cannot be trusted: {exc.message}") from exc

    def _verify_for(self, name: str, version: int, what: str) -> None:
        try:
            self.verify(name, version)
        except (IntegrityError, NotFound) as exc:
            raise type(exc)(f"{exc.message} It cannot be {what}.") from exc

    def _artifacts_for(self, uri: str, given: ArtifactStore | None) -> ArtifactStore:
        """The store holding ``uri``: the one given, the registry's, else the URI's own."""
        if given is not None:
            return given
        if self.artifacts is not None:
            return self.artifacts
        from ctloop.artifacts import open_artifact_store
        from ctloop.artifacts.content import store_url_of

        return open_artifact_store(store_url_of(uri))

    def compare(self, name: str, a: int, b: int) -> Comparison:
        """Recorded metrics of versions ``a`` and ``b`` side by side, overall and per slice."""
        va, vb = self.store.get_model_version(name, a), self.store.get_model_version(name, b)
        ea, eb = Evaluation.from_json(va.properties), Evaluation.from_json(vb.properties)
        slices: dict[str, dict[str, list[ComparisonRow]]] = {}
        for column in sorted(set(ea.slices) | set(eb.slices)):
            part_a, part_b = ea.slices.get(column, {}), eb.slices.get(column, {})
            slices[column] = {value: compare_results(part_a.get(value), part_b.get(value))
                              for value in sorted(set(part_a) | set(part_b))}
        return Comparison(name, a, b, compare_results(ea.overall, eb.overall), slices)


def _lineage_summary(store: RunLineageStore, artifact_id: str) -> LineageSummary:
    graph = lineage(store, artifact_id, direction="upstream", max_depth=1)
    summary: LineageSummary = {"artifact_id": artifact_id}
    steps = [step for step, _ in graph.steps.values()]
    if steps:
        step = steps[0]
        summary["run_id"], summary["step"] = step.run_id, step.name
        summary["component"], summary["code_version"] = step.component, step.component_version
        summary["step_id"] = step.id
    summary["inputs"] = [
        {"id": a.id, "type": a.type, "name": a.name, "uri": a.uri, "sha256": a.sha256}
        for a, depth in graph.artifacts.values()
        if depth > 0
    ]
    return summary
