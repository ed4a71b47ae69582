"""The models being served, kept in step with the registry.

A :class:`ModelPool` holds one immutable :class:`Deployment` per model name:
which version answers on each route, plus the shadow. ``refresh()`` reads the
aliases, loads any version that changed (hash-checked, through
``ModelRegistry.load``, which checks every byte against the sha256 the
metadata store recorded before anything is unpickled) and swaps the deployment
in one assignment, so a request sees either the old set or the new one, never
a mix.

A version that fails to load leaves the old one serving; the failure is kept
in ``errors`` (shown on ``/ready``), logged, and retried with exponential
backoff (1 s, 2 s, 4 s ... up to 5 min, with jitter), so a transient failure
(an unreachable artifact store, a folder an operator has since repaired) heals
without a restart. A version no route serves any more is unloaded: the pool
drops it, and it is freed once the requests still using it finish.

A background thread calls ``refresh()`` every ``reload_interval`` seconds, and
sooner when a retry is due; with polling off it still wakes for retries.
"""

from __future__ import annotations

import gc
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ctloop.artifacts.base import ArtifactStore
from ctloop.core.errors import CtloopError, NotFound
from ctloop.core.jsontypes import as_strs
from ctloop.metadata.base import LineageStore, ModelVersionRecord
from ctloop.models.compiled import pending_compile
from ctloop.models.flavors import LoadedModel
from ctloop.registry import ModelRegistry, parse_ref
from ctloop.registry.summaries import lineage_of
from ctloop.serving.config import ServingConfig
from ctloop.serving.scoring.routing import Router

__all__ = ["Backoff", "Deployment", "ModelPool", "Served", "feature_refs_of"]

log = logging.getLogger("ctloop.serving")


@dataclass(frozen=True)
class Served:
    """One loaded version on one route."""

    route: str
    name: str
    version: int
    model: LoadedModel
    feature_refs: tuple[str, ...] = ()
    loaded_at: float = 0.0
    artifact_sha256: str = ""  # the stored folder's, as the registry recorded it

    def describe(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "model": self.name,
            "version": self.version,
            "sha256": self.model.sha256,
            "flavor": self.model.flavor,
            "inputs": self.model.signature.columns,
            "feature_refs": list(self.feature_refs),
        }


@dataclass(frozen=True)
class Deployment:
    """What answers for one model name: routed versions and an optional shadow."""

    name: str
    routes: tuple[Served, ...]  # index 0 is the primary route
    router: Router
    shadow: Served | None = None
    aliases: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Backoff:
    """How long to wait before retrying a failed load: ``initial * factor**(n-1)``, capped."""

    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 300.0
    jitter: float = 0.1  # +- share, so replicas do not retry in lockstep

    def delay(self, attempts: int) -> float:
        base = min(self.maximum, self.initial * self.factor ** max(0, attempts - 1))
        return base * (1 + random.uniform(-self.jitter, self.jitter))


@dataclass(frozen=True)
class _Failure:
    message: str
    attempts: int
    retry_at: float  # time.monotonic()


@dataclass(frozen=True)
class _Target:
    route: str
    name: str
    text: str  # alias or version text, for messages


def feature_refs_of(
    store: LineageStore, record: ModelVersionRecord, configured: list[str] | None = None
) -> tuple[str, ...]:
    """Feature refs a version was trained with: config, else its properties, else its data's."""
    if configured:
        return tuple(configured)
    refs = as_strs(record.properties.get("feature_refs"))
    if refs:
        return tuple(refs)
    for item in lineage_of(record.properties).get("inputs", []):
        try:
            artifact = store.get_artifact(item["id"])
        except (CtloopError, KeyError):
            continue
        if artifact.properties.get("feature_refs"):
            return tuple(as_strs(artifact.properties["feature_refs"]))
    return ()


class ModelPool:
    """Loaded versions of the served models, refreshed from the registry."""

    def __init__(
        self,
        registry: ModelRegistry,
        artifacts: ArtifactStore,
        config: ServingConfig,
        *,
        backoff: Backoff | None = None,
    ) -> None:
        self.registry = registry
        self.artifacts = artifacts
        self.config = config
        self.backoff = backoff or Backoff()
        self.deployments: dict[str, Deployment] = {}
        self.errors: dict[str, dict[str, str]] = {}  # model -> route -> message
        self.refreshed_at: float | None = None
        self._models: dict[tuple[str, int], Served] = {}  # loaded versions, by (name, version)
        # Called with the ids of the model objects still loaded after versions were unloaded,
        # so caches keyed by model (the scorer's micro-batchers) let go of the old ones.
        self.unload_hooks: list[Callable[[set[int]], None]] = []
        self._failed: dict[tuple[str, int], _Failure] = {}
        self._lock = threading.Lock()  # one refresh at a time
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._wanted: set[tuple[str, int]] = set()  # versions the last refresh asked for
        self._preload: threading.Thread | None = None

    # what to serve ---------------------------------------------------------------------
    def names(self) -> list[str]:
        """Model names to serve: configured, else every registered model holding the alias."""
        if self.config.models:
            return list(self.config.models)
        return [m.name for m in self.registry.models() if self.config.alias in m.aliases]

    def _targets(self, name: str) -> tuple[list[_Target], _Target | None]:
        routes = [_Target(self.config.alias, name, self.config.alias)]
        for split in self.config.splits:
            ref_name, text = _target_of(name, split.target)
            routes.append(_Target(_route_name(name, split.target), ref_name, text))
        shadow = None
        if self.config.shadow:
            ref_name, text = _target_of(name, self.config.shadow)
            shadow = _Target("shadow", ref_name, text)
        return routes, shadow

    def _version(self, target: _Target, aliases: dict[str, dict[str, int]]) -> int:
        if target.text.isdigit():
            return int(target.text)
        if target.name not in aliases:
            aliases[target.name] = self.registry.aliases(target.name)
        found = aliases[target.name].get(target.text)
        if found is None:
            raise NotFound(
                f"Model {target.name!r} has no alias {target.text!r} yet (aliases: "
                f"{sorted(aliases[target.name]) or 'none'})."
            )
        return found

    # loading ---------------------------------------------------------------------------
    def _load(self, target: _Target, version: int) -> Served:
        key = (target.name, version)
        cached = self._models.get(key)
        if cached is not None:
            return Served(
                target.route,
                cached.name,
                version,
                cached.model,
                cached.feature_refs,
                cached.loaded_at,
                cached.artifact_sha256,
            )
        failure = self._failed.get(key)
        if failure is not None and time.monotonic() < failure.retry_at:
            raise _LoadFailed(self._retry_text(failure))
        started = time.perf_counter()
        try:
            record = self.registry.get(f"{target.name}:{version}")
            sha = self.registry.store.get_artifact(record.artifact_id).sha256
            same = self._holding(target.name, sha)
            model = same.model if same is not None else self._load_model(target.name, version)
            refs = feature_refs_of(
                self.registry.store, record, self.config.feature_refs.get(target.name)
            )
        except CtloopError as exc:
            raise self._failure(key, failure, exc.one_line()) from exc
        except Exception as exc:  # a broken pickle, a library error: keep serving the old one
            raise self._failure(key, failure, f"{type(exc).__name__}: {exc}") from exc
        if failure is not None:
            log.info("%s:%s loaded after %d failed attempts", *key, failure.attempts)
            self._failed.pop(key, None)
        served = Served(target.route, target.name, version, model, refs, time.time(), sha)
        self._models[key] = served
        log.info(
            "%s %s:%s for route %s in %.0f ms",
            "loaded" if same is None else f"kept (same bytes as {same.name}:{same.version})",
            target.name,
            version,
            target.route,
            (time.perf_counter() - started) * 1000,
        )
        return served

    def _load_model(self, name: str, version: int) -> LoadedModel:
        """The version's model; its trees compiled as ``config.compiled`` says.

        ``"auto"``: cached code at once, else the library answers while the
        background worker compiles; ``True``: this load waits for that compile
        (compile before serving); ``False``: never compiled.
        """
        mode = self.config.compiled
        model = self.registry.load(f"{name}:{version}", self.artifacts, compiled=mode is not False)
        if mode is True and (job := pending_compile(model)) is not None:
            job.join()
        return model

    def _holding(self, name: str, sha256: str) -> Served | None:
        """A loaded model of ``name`` holding exactly these stored bytes: served on under
        the new version number rather than loaded twice."""
        held = (*self._models.values(), *(
            s for d in self.deployments.values() for s in (*d.routes, *([d.shadow] if d.shadow
                                                                        else []))))
        return next((s for s in held if s.name == name and s.artifact_sha256 == sha256), None)

    def adopt(self, registry: ModelRegistry, artifacts: ArtifactStore) -> None:
        """Follow ``registry`` from now on (a deployed replica that started on its first
        model's bundle, once the deployment's registry holds it). What is served stays
        served; a version of the new registry with the same bytes is not loaded again."""
        with self._lock:
            self.registry, self.artifacts = registry, artifacts
            self._models.clear()  # keyed by the old registry's version numbers
            self._failed.clear()

    def _failure(
        self, key: tuple[str, int], previous: _Failure | None, why: str
    ) -> _LoadFailed:
        attempts = (previous.attempts if previous else 0) + 1
        failure = _Failure(
            f"{key[0]}:{key[1]} failed to load: {why}",
            attempts,
            time.monotonic() + self.backoff.delay(attempts),
        )
        self._failed[key] = failure
        log.warning("%s (retrying in %.1f s)", failure.message, failure.retry_at - time.monotonic())
        self._wake.set()  # the poller re-plans its sleep around the new retry time
        return _LoadFailed(self._retry_text(failure))

    @staticmethod
    def _retry_text(failure: _Failure) -> str:
        wait = max(0.0, failure.retry_at - time.monotonic())
        return f"{failure.message} (attempt {failure.attempts}; next retry in {wait:.0f} s)"

    def next_retry_in(self) -> float | None:
        """Seconds until the earliest due retry of a failed load, None when nothing failed."""
        failed = list(self._failed.values())
        if not failed:
            return None
        return max(0.0, min(f.retry_at for f in failed) - time.monotonic())

    def loaded_versions(self) -> list[tuple[str, int]]:
        """(name, version) of every model object the pool holds."""
        return sorted(self._models)

    def _unload_unused(self) -> None:
        """Drop versions no deployment serves; in-flight requests keep theirs until done."""
        used = self._wanted | {
            (s.name, s.version)
            for d in self.deployments.values()
            for s in (*d.routes, *([d.shadow] if d.shadow else []))
        }
        gone = [key for key in self._models if key not in used]
        for key in gone:
            del self._models[key]
            log.info("unloaded %s:%s", *key)
        for key in [k for k in self._failed if k not in self._wanted]:
            del self._failed[key]  # a failed version nobody asks for any more: stop retrying
        if gone:
            live = {id(s.model) for s in self._models.values()}
            for hook in self.unload_hooks:
                hook(live)
            gc.collect()  # boosters and pickled pipelines free their memory now, not later

    def refresh(self) -> dict[str, Deployment]:
        """Bring every deployment in line with the registry's aliases; returns them."""
        with self._lock:
            try:
                names = self.names()
            except CtloopError as exc:
                log.warning("cannot list models to serve: %s", exc.one_line())
                return self.deployments
            self._wanted = set()
            for name in names:
                self._refresh_one(name)
            self._unload_unused()
            self.refreshed_at = time.time()
            return self.deployments

    def _refresh_one(self, name: str) -> None:
        current = self.deployments.get(name)
        errors: dict[str, str] = {}
        aliases: dict[str, dict[str, int]] = {}
        try:
            targets, shadow_target = self._targets(name)
            own_aliases = self.registry.aliases(name)
        except CtloopError as exc:
            self.errors[name] = {"*": exc.one_line()}
            return
        aliases[name] = own_aliases
        old = {s.route: s for s in (current.routes if current else ())}
        if current and current.shadow:
            old["shadow"] = current.shadow
        served = self._load_targets(
            name, [*targets, *([shadow_target] if shadow_target else [])], aliases, old, errors)
        primary = served[targets[0].route]
        if primary is None:
            self.errors[name] = errors
            return
        routes = [primary]
        splits = []
        for target, split in zip(targets[1:], self.config.splits, strict=True):
            if served.get(target.route) is not None:
                routes.append(served[target.route])  # type: ignore[arg-type]
                splits.append((target.route, split))
        router = Router(primary.route, tuple(splits), self.config.seed)
        deployment = Deployment(
            name,
            tuple(routes),
            router,
            served.get("shadow") if shadow_target else None,
            own_aliases,
        )
        self._publish(name, current, deployment)
        if errors:
            self.errors[name] = errors
        else:
            self.errors.pop(name, None)

    def _load_targets(self, name: str, targets: list[_Target], aliases: dict[str, dict[str, int]],
                      old: dict[str, Served], errors: dict[str, str]
                      ) -> dict[str, Served | None]:
        """Each route's model; a route that fails keeps what it served (its error noted)."""
        served: dict[str, Served | None] = {}
        for target in targets:
            try:
                version = self._version(target, aliases)
                self._wanted.add((target.name, version))
                served[target.route] = self._load(target, version)
            except (_LoadFailed, CtloopError) as exc:
                message = str(exc) if isinstance(exc, _LoadFailed) else exc.one_line()
                errors[target.route] = message
                served[target.route] = old.get(target.route)  # keep what was serving
                new = target.route not in (self.errors.get(name) or {})
                if new and not isinstance(exc, _LoadFailed):  # load failures log themselves
                    log.warning("model %s route %s: %s", name, target.route, message)
        return served

    def _publish(self, name: str, current: Deployment | None, deployment: Deployment) -> None:
        """Swap in ``deployment`` when it serves other versions or aliases (one atomic swap)."""
        if current is None or _fingerprint(current) != _fingerprint(deployment):
            if current is not None:
                log.info(
                    "model %s now serves %s", name, {s.route: s.version for s in deployment.routes}
                )
            self.deployments = {**self.deployments, name: deployment}  # one atomic swap
        elif current.aliases != deployment.aliases:
            self.deployments = {**self.deployments, name: deployment}

    # lifecycle -------------------------------------------------------------------------
    def preload(self) -> None:
        """Start the first refresh now, in a thread: the models load (file reads, hashing,
        native code: much of it without the GIL) while the app is built and the server
        starts, rather than after. ``first_refresh`` waits for it."""
        if self._preload is not None or self.refreshed_at is not None:
            return
        self._preload = threading.Thread(target=self._refresh_logged, name="ctloop-preload",
                                         daemon=True)
        self._preload.start()

    def first_refresh(self) -> dict[str, Deployment]:
        """The refresh a starting app waits for: the preload's, when one ran to its end,
        else one now (which raises what the preload only logged)."""
        thread, self._preload = self._preload, None
        if thread is not None:
            thread.join()
            if self.refreshed_at is not None:
                return self.deployments
        return self.refresh()

    def _refresh_logged(self) -> None:
        try:
            self.refresh()
        except Exception:  # first_refresh refreshes again and raises it where it is awaited
            log.debug("preloading the models failed", exc_info=True)

    def start(self) -> None:
        """Poll the registry every ``reload_interval`` s and retry failed loads, in a thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="ctloop-reload", daemon=True)
        self._thread.start()

    def _sleep_time(self) -> float | None:
        interval = self.config.reload_interval if self.config.reload_interval > 0 else None
        retry = self.next_retry_in()
        if retry is not None:
            retry += 0.01  # wake just after the retry is due, not just before
        waits = [w for w in (interval, retry) if w is not None]
        return min(waits) if waits else None

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            woken = self._wake.wait(self._sleep_time())  # None: until woken
            if self._stop.is_set():
                break
            if woken:
                continue  # a new failure or stop(): plan the sleep again
            try:
                self.refresh()
            except Exception:  # never let the poller die; the next poll retries
                log.exception("registry poll failed")

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


class _LoadFailed(Exception):
    pass


def _target_of(name: str, target: str) -> tuple[str, str]:
    """(model name, alias or version text) for a split/shadow target."""
    if ":" in target or "@" in target:
        ref = parse_ref(target)
        if ref.version is not None:
            return ref.name, str(ref.version)
        return ref.name, ref.alias or "champion"
    return name, target.removeprefix("v") if target.removeprefix("v").isdigit() else target


def _route_name(name: str, target: str) -> str:
    model, text = _target_of(name, target)
    label = f"v{text}" if text.isdigit() else text
    return label if model == name else f"{model}@{label}"


def _fingerprint(d: Deployment) -> tuple[Any, ...]:
    return (
        tuple((s.route, s.name, s.version) for s in d.routes),
        None if d.shadow is None else (d.shadow.name, d.shadow.version),
    )
