"""Move a model version between environments as one hash-checked bundle with its evidence.

A bundle is a gzip tar holding ``ctloop-bundle.json`` (format version, the
source version's record, provenance, the sha256 of every other member) and:

    model/...                  the saved model folder, byte for byte
    evidence/evaluation.json   the evaluation the gate read
    evidence/gate.json         the gate's verdict (blessing)
    evidence/lineage.json      producing run, step, code version, inputs and their hashes
    evidence/signature.json    the model's input/output signature
    evidence/aliases.json      the source's alias history of this version

Importing reads only JSON and raw bytes until every member is checked: a
member that is not a plain file, a path leaving the bundle, a member missing
or not listed, or one whose bytes do not hash to the listed sha256 refuses the
whole bundle; the model folder must also hash (as the artifact store hashes
folders) to the recorded artifact sha256. Nothing in it is unpickled or run:
the target registry loads it later, hash-checked like any other version.

The hashes detect corruption and edits of some members; whoever can rewrite
every member and the manifest can make a consistent bundle. To stop that, sign
bundles: with a key in ``CTLOOP_BUNDLE_KEY`` (a secret shared by the exporting
and the importing side), the export adds ``ctloop-bundle.sig``, an HMAC-SHA256
of the manifest (which holds the sha256 of every other member), and an import
where the key is set refuses a bundle that is unsigned or whose signature does
not match, before anything is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from ctloop.artifacts.base import ArtifactStore
from ctloop.artifacts.treefile import tree_digest
from ctloop.core.clock import utc_now
from ctloop.core.errors import IntegrityError, NotFound, UserInputError
from ctloop.core.hashing import hash_bytes, hash_file
from ctloop.core.jsontypes import JSONValue, as_list, as_object
from ctloop.core.settings import Settings
from ctloop.metadata.base import (
    AliasEventRecord,
    ArtifactRecord,
    MetadataStore,
    ModelStore,
    ModelVersionRecord,
    ModelVersionUpdate,
)
from ctloop.registry.refs import ModelRef, parse_version_ref
from ctloop.registry.summaries import lineage_of

__all__ = [
    "BUNDLE_FORMAT",
    "KEY_ENV",
    "MANIFEST_NAME",
    "SIGNATURE_NAME",
    "BundleManifest",
    "ImportResult",
    "Promotion",
    "Provenance",
    "export_bundle",
    "find_imported",
    "import_bundle",
    "open_environment",
    "promote_between",
    "read_bundle",
    "source_alias",
]

BUNDLE_FORMAT = 1  # raise when a reader of the old format would misread a new bundle
MANIFEST_NAME = "ctloop-bundle.json"
SIGNATURE_NAME = "ctloop-bundle.sig"  # hex HMAC-SHA256 of the manifest's bytes
KEY_ENV = "CTLOOP_BUNDLE_KEY"
_MODEL_DIR = "model"
_EVIDENCE = ("evaluation", "gate", "lineage", "signature", "aliases")


@dataclass(frozen=True)
class Provenance:
    """Where an imported version came from; kept in its ``properties["provenance"]``."""

    source_environment: str
    source_name: str
    source_version: int
    run_ids: list[str]
    model_sha256: str
    bundle_sha256: str
    exported_at: str
    exported_by: str
    imported_at: str = ""
    imported_by: str = ""
    bundle_format: int = BUNDLE_FORMAT


@dataclass(frozen=True)
class BundleManifest:
    """The bundle's table of contents: what it holds and the sha256 of each member."""

    format: int
    name: str
    version: int
    source_environment: str
    exported_at: str
    exported_by: str
    model_sha256: str
    model_size: int
    run_ids: list[str]
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # member path -> sha256


@dataclass(frozen=True)
class ImportResult:
    """A version registered from a bundle, with the provenance it was given."""

    name: str
    version: int
    artifact_id: str
    environment: str
    provenance: Provenance
    outcome: Literal["imported", "already present"] = "imported"


def _now() -> str:
    return utc_now().isoformat(timespec="seconds")


def _actor() -> str:
    from ctloop.registry.registry import default_actor

    return default_actor()


def _bundle_key(key: str | None) -> bytes | None:
    """The signing key: the one given, else ``CTLOOP_BUNDLE_KEY``; None when neither."""
    text = key if key is not None else os.environ.get(KEY_ENV, "")
    return text.encode() if text else None


def _sign(key: bytes, manifest: bytes) -> bytes:
    return hmac.new(key, manifest, hashlib.sha256).hexdigest().encode()


def _verify_signature(path: Path, key: bytes | None, manifest: bytes,
                      signature: bytes | None) -> None:
    if key is None:
        return  # nothing to check against: the hashes still are
    if signature is None:
        raise IntegrityError(f"Bundle {path} is not signed, and {KEY_ENV} is set here: "
                             "only bundles signed with that key are imported; nothing "
                             "imported.")
    if not hmac.compare_digest(signature.strip(), _sign(key, manifest)):
        raise IntegrityError(f"Bundle {path} has a signature that does not match "
                             f"{KEY_ENV}: it was altered or signed with another key; nothing "
                             "imported.")


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, default=str).encode()


def _resolve(store: ModelStore, ref: ModelRef) -> ModelVersionRecord:
    from ctloop.registry.registry import ModelRegistry

    return ModelRegistry(store).get(ref)


def _run_ids(record: ModelVersionRecord) -> list[str]:
    found = [record.run_id, lineage_of(record.properties).get("run_id")]
    prior = as_list(as_object(record.properties.get("provenance")).get("run_ids"))
    return sorted({str(r) for r in [*found, *prior] if r})


def export_bundle(
    store: ModelStore,
    artifacts: ArtifactStore,
    ref: str | ModelRef,
    target: Path,
    *,
    environment: str = "",
    key: str | None = None,
) -> BundleManifest:
    """Write the version ``ref`` names, with its evidence, into the bundle file ``target``.

    The model folder is read from ``artifacts`` hash-checked against the
    metadata store's record, so a bundle never carries bytes the source
    registry would not load. Signed with ``key`` (default ``CTLOOP_BUNDLE_KEY``)
    when there is one.
    """
    ref = parse_version_ref(ref) if isinstance(ref, str) else ref
    record = _resolve(store, ref)
    artifact = store.get_artifact(record.artifact_id)
    label = f"{record.name}:{record.version}"
    folder = artifacts.get(artifact.uri, artifact.sha256, name=label)
    if not folder.is_dir() or tree_digest(folder) != artifact.sha256:
        raise IntegrityError(f"Model {label}: its stored folder does not match its record; "
                             "nothing exported.")
    props = record.properties
    history = [_event(e) for e in store.alias_history(record.name)
               if record.version in (e.version, e.previous_version)]
    signature = props.get("signature")
    if signature is None and (folder / "ctloop-model.json").is_file():
        signature = json.loads((folder / "ctloop-model.json").read_text()).get("signature")
    evidence = {
        "evaluation": props.get("evaluation"),
        "gate": props.get("blessing"),
        "lineage": props.get("lineage"),
        "signature": signature,
        "aliases": history,
    }
    members: dict[str, bytes | Path] = {f"evidence/{k}.json": _json_bytes(v)
                                        for k, v in evidence.items()}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            members[f"{_MODEL_DIR}/{path.relative_to(folder).as_posix()}"] = path
    files = {name: hash_bytes(v) if isinstance(v, bytes) else hash_file(v)
             for name, v in members.items()}
    manifest = BundleManifest(
        format=BUNDLE_FORMAT, name=record.name, version=record.version,
        source_environment=environment or "default", exported_at=_now(),
        exported_by=_actor(), model_sha256=artifact.sha256, model_size=artifact.size,
        run_ids=_run_ids(record), description=record.description, tags=dict(record.tags),
        files=files,
    )
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    manifest_bytes = _json_bytes(asdict(manifest))
    secret = _bundle_key(key)
    with tarfile.open(partial, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, MANIFEST_NAME, manifest_bytes)
        if secret is not None:
            _add_bytes(tar, SIGNATURE_NAME, _sign(secret, manifest_bytes))
        for name, value in members.items():
            _add_bytes(tar, name, value if isinstance(value, bytes) else value.read_bytes())
    partial.replace(target)  # a reader never sees half a bundle
    return manifest


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def _event(event: AliasEventRecord) -> dict[str, object]:
    return {"alias": event.alias, "version": event.version,
            "previous_version": event.previous_version, "actor": event.actor,
            "reason": event.reason,
            "at": event.created_at.isoformat() if event.created_at else None}


def _safe_member(name: str) -> bool:
    path = PurePosixPath(name)
    return (not path.is_absolute() and ".." not in path.parts and "\\" not in name
            and bool(path.parts)
            and path.parts[0] in (MANIFEST_NAME, SIGNATURE_NAME, _MODEL_DIR, "evidence"))


def _parse_manifest(data: bytes, source: Path) -> BundleManifest:
    try:
        raw = json.loads(data)
        fmt = raw["format"]
    except (ValueError, TypeError, KeyError):
        raise UserInputError(f"{source} is not a ctloop model bundle: its {MANIFEST_NAME} "
                             "is not valid.") from None
    if not isinstance(fmt, int) or fmt < 1:
        raise UserInputError(f"{source} is not a ctloop model bundle: format {fmt!r}.")
    if fmt > BUNDLE_FORMAT:
        raise UserInputError(
            f"{source} is a bundle of format {fmt}, newer than this ctloop reads "
            f"({BUNDLE_FORMAT}); upgrade ctloop where you import it."
        )
    try:
        manifest = BundleManifest(**{k: raw[k] for k in BundleManifest.__dataclass_fields__
                                     if k in raw})
    except TypeError as exc:
        raise UserInputError(f"{source} is not a ctloop model bundle: {exc}.") from None
    if not isinstance(manifest.files, dict) or not isinstance(manifest.version, int):
        raise UserInputError(f"{source} is not a ctloop model bundle: bad file list.")
    return manifest


@contextmanager
def read_bundle(path: Path, *, key: str | None = None
                ) -> Iterator[tuple[BundleManifest, Path, str]]:
    """Check every member of the bundle at ``path``; yield (manifest, model folder, bundle sha256).

    The members are written to a temporary folder only as plain bytes; the
    folder is removed when the block ends. Raises ``IntegrityError`` for any
    member that does not match the manifest, or, with a signing key (``key``,
    default ``CTLOOP_BUNDLE_KEY``), for a bundle not signed with it;
    ``UserInputError`` for a file that is not a bundle or one of a newer format.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"No bundle at {path}; write one with `ctloop models export`.")
    bundle_sha = hash_file(path)
    try:
        tar = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise UserInputError(f"{path} is not a ctloop model bundle ({exc}).") from None
    with tar, tempfile.TemporaryDirectory(prefix="ctloop-bundle-") as tmp:
        root = Path(tmp)
        seen: dict[str, str] = {}
        manifest_bytes: bytes | None = None
        signature: bytes | None = None
        try:
            for member in tar:
                if member.isdir():
                    continue
                if not member.isfile() or not _safe_member(member.name):
                    raise IntegrityError(f"Bundle {path} holds {member.name!r}, which is not a "
                                         "plain file of a bundle; nothing imported.")
                handle = tar.extractfile(member)
                data = handle.read() if handle is not None else b""
                if member.name == MANIFEST_NAME:
                    manifest_bytes = data
                    continue
                if member.name == SIGNATURE_NAME:
                    signature = data
                    continue
                if member.name in seen:
                    raise IntegrityError(f"Bundle {path} holds {member.name!r} twice.")
                seen[member.name] = hash_bytes(data)
                target = root / member.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise IntegrityError(f"Bundle {path} is damaged ({exc}); nothing imported.") from None
        if manifest_bytes is None:
            raise UserInputError(f"{path} is not a ctloop model bundle: no {MANIFEST_NAME}.")
        _verify_signature(path, _bundle_key(key), manifest_bytes, signature)
        manifest = _parse_manifest(manifest_bytes, path)
        _check_members(path, manifest.files, seen)
        model = root / _MODEL_DIR
        if not model.is_dir() or tree_digest(model) != manifest.model_sha256:
            raise IntegrityError(f"Bundle {path}: its model folder does not hash to the "
                                 "recorded artifact sha256; nothing imported.")
        yield manifest, model, bundle_sha


def _check_members(path: Path, listed: dict[str, str], seen: dict[str, str]) -> None:
    missing, unlisted = sorted(set(listed) - set(seen)), sorted(set(seen) - set(listed))
    if missing or unlisted:
        raise IntegrityError(
            f"Bundle {path} does not match its manifest (missing: {missing or '-'}; "
            f"not listed: {unlisted or '-'}); nothing imported."
        )
    changed = sorted(name for name, sha in seen.items() if listed[name] != sha)
    if changed:
        raise IntegrityError(
            f"Bundle {path} was altered: {', '.join(changed)} do(es) not hash to the "
            "manifest's sha256; nothing imported."
        )


def _evidence(model_root: Path, name: str) -> JSONValue:
    file = model_root.parent / "evidence" / f"{name}.json"
    return json.loads(file.read_text()) if file.is_file() else None


def find_imported(store: ModelStore, name: str, model_sha256: str
                  ) -> ModelVersionRecord | None:
    """The version of ``name`` holding exactly these model bytes, if any."""
    for record in store.list_model_versions(name):
        if store.get_artifact(record.artifact_id).sha256 == model_sha256:
            return record
    return None


def import_bundle(
    store: ModelStore,
    artifacts: ArtifactStore,
    path: Path,
    *,
    environment: str = "",
    name: str | None = None,
    existing_ok: bool = False,
) -> ImportResult:
    """Register the bundle at ``path`` as the next version of its model (or ``name``).

    Every member is checked before anything is stored. A target that already
    holds these exact model bytes refuses (``UserInputError`` naming its
    version) unless ``existing_ok``, which returns that version instead.
    """
    from ctloop.metadata import new_id

    env = environment or "default"
    with read_bundle(path) as (manifest, model, bundle_sha):
        target_name = name or manifest.name
        provenance = Provenance(
            source_environment=manifest.source_environment, source_name=manifest.name,
            source_version=manifest.version, run_ids=list(manifest.run_ids),
            model_sha256=manifest.model_sha256, bundle_sha256=bundle_sha,
            exported_at=manifest.exported_at, exported_by=manifest.exported_by,
            imported_at=_now(), imported_by=_actor(), bundle_format=manifest.format,
        )
        present = find_imported(store, target_name, manifest.model_sha256)
        if present is not None:
            if existing_ok:
                return ImportResult(target_name, present.version, present.artifact_id, env,
                                    provenance, outcome="already present")
            raise UserInputError(
                f"Environment {env!r} already has {target_name}:{present.version} with exactly "
                f"these model bytes (the bundle holds {manifest.source_environment} "
                f"{manifest.name}:{manifest.version}); nothing imported."
            )
        stored = artifacts.put(model)
        if stored.sha256 != manifest.model_sha256:  # the store hashed what it wrote
            raise IntegrityError(f"Bundle {path}: the stored model hashes to "
                                 f"{stored.sha256[:16]}..., not the bundle's; nothing registered.")
        artifact = store.add_artifact(ArtifactRecord(
            id=new_id(), type="Model", uri=stored.uri, sha256=stored.sha256, size=stored.size,
            name="model",
            properties={"imported_from": f"{manifest.source_environment}/{manifest.name}:"
                                         f"{manifest.version}", "bundle_sha256": bundle_sha},
        ))
        signature = _evidence(model, "signature")
        flavor = None
        manifest_file = model / "ctloop-model.json"
        if manifest_file.is_file():
            flavor = json.loads(manifest_file.read_text()).get("flavor")
        properties: dict[str, JSONValue] = {
            "evaluation": _evidence(model, "evaluation"),
            "blessing": _evidence(model, "gate"),
            "lineage": _evidence(model, "lineage"),
            "signature": signature,
            "flavor": flavor,
            "provenance": asdict(provenance),
        }
        record = store.create_model_version(
            target_name, artifact.id, run_id=None, description=manifest.description,
            tags={**manifest.tags, "imported_from": manifest.source_environment},
            properties={k: v for k, v in properties.items() if v is not None},
            created_by=_actor(),
        )
    return ImportResult(target_name, record.version, artifact.id, env, provenance)


@dataclass(frozen=True)
class Promotion:
    """A version moved from one environment to another and the alias it took there."""

    name: str
    source_environment: str
    source_version: int
    target_environment: str
    target_version: int
    alias: str
    imported: bool  # False when the target already held these bytes
    previous_version: int | None  # the alias's holder in the target before the move


def source_alias(target_environment: str, alias: str) -> str:
    """The alias the source keeps for "the version that is ``alias`` in the target"."""
    return f"{target_environment}.{alias}"


def promote_between(
    source: tuple[MetadataStore, ArtifactStore, str],
    target: tuple[MetadataStore, ArtifactStore, str],
    ref: str | ModelRef,
    *,
    alias: str = "champion",
    reason: str = "",
) -> Promotion:
    """Export ``ref`` from ``source``, import it into ``target`` and move ``alias`` there.

    Each side is (metadata store, artifact store, environment name). Both
    histories record the move: the target's ``alias`` names the source
    version, and the source's ``<target>.<alias>`` alias points at the version
    now serving there, with the target version in its reason. A version the
    target already holds (same bytes) is not imported twice, only aliased.
    """
    from ctloop.registry.registry import ModelRegistry

    src_store, src_artifacts, src_env = source
    dst_store, dst_artifacts, dst_env = target
    if src_store.url == dst_store.url:
        raise UserInputError(
            f"Environments {src_env!r} and {dst_env!r} use the same metadata store; give each "
            "its own in [ctloop.environments.NAME]."
        )
    ref = parse_version_ref(ref) if isinstance(ref, str) else ref
    if ref.version is None and ref.alias is None:
        ref = ModelRef(ref.name, alias=alias)  # staging's champion goes to prod's champion
    record = _resolve(src_store, ref)
    with tempfile.TemporaryDirectory(prefix="ctloop-promote-") as tmp:
        bundle = Path(tmp) / f"{record.name}-{record.version}.ctloop-bundle"
        export_bundle(src_store, src_artifacts, ModelRef(record.name, version=record.version),
                      bundle, environment=src_env)
        result = import_bundle(dst_store, dst_artifacts, bundle, environment=dst_env,
                               existing_ok=True)
    why = reason or f"promoted from {src_env} {record.name}:{record.version}"
    event = ModelRegistry(dst_store, artifacts=dst_artifacts).promote(
        result.name, result.version, alias=alias, reason=why)
    src_store.move_alias(
        record.name, source_alias(dst_env, alias), record.version, actor=_actor(),
        reason=f"promoted to {dst_env} as {result.name}:{result.version} @{alias}"
               + (f": {reason}" if reason else ""),
    )
    promotions: list[JSONValue] = [
        *as_list(record.properties.get("promotions")),
        {"environment": dst_env, "name": result.name, "version": result.version,
         "alias": alias, "at": _now(), "by": _actor()}]
    src_store.update_model_version(record.name, record.version, ModelVersionUpdate(
        properties={**record.properties, "promotions": promotions}))
    return Promotion(record.name, src_env, record.version, dst_env, result.version, alias,
                     result.outcome == "imported", event.previous_version)


def open_environment(settings: Settings) -> tuple[MetadataStore, ArtifactStore, str]:
    """The metadata and artifact stores of ``settings`` and the environment's name."""
    from ctloop.artifacts import open_artifact_store
    from ctloop.metadata import open_metadata_store

    url = settings.artifacts_url
    return (open_metadata_store(settings.metadata_url),
            open_artifact_store(url, storage_options=settings.storage_options(url)),
            settings.environment or "default")
