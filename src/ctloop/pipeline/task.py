"""One step's work, as a picklable value, and the code that does it anywhere.

The engine turns a ready step into a :class:`StepTask`; a runner executes
:func:`run_task` wherever it likes (a thread, a subprocess, a Dask worker).
The task carries only plain values: artifact URIs and hashes in, artifact URIs
and hashes out. Steps read and write through the artifact store, never through
the runner's memory, so every runner gives the same, resumable result.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from ctloop.core.errors import ComponentFailed, CtloopError, UserInputError
from ctloop.core.importing import import_file
from ctloop.core.jsontypes import JSONObject, JSONValue
from ctloop.pipeline.artifacts import Artifact
from ctloop.pipeline.component import AnyComponent, ComponentDef
from ctloop.pipeline.context import StepContext, step_context

if TYPE_CHECKING:
    from ctloop.artifacts import ArtifactStore

__all__ = ["InputArtifact", "StepTask", "StoredOutput", "TaskResult", "load_component", "run_task"]


@dataclass(frozen=True)
class InputArtifact:
    """An input as the task sees it: where the bytes are and what they hash to."""

    id: str
    type_ref: str  # "module:qualname" of the artifact class
    uri: str
    sha256: str
    properties: JSONObject = field(default_factory=dict)


@dataclass(frozen=True)
class StepTask:
    """Everything a worker needs to run one attempt of one step."""

    run_id: str
    step: str
    attempt: int
    component_ref: str  # "module:qualname" for Python components
    source_file: str
    command: tuple[str, ...] | None
    params: Mapping[str, object]  # the step's checked parameter values
    inputs: dict[str, InputArtifact]
    outputs: dict[str, str]  # output name -> artifact class "module:qualname"
    artifacts_url: str
    work_dir: str
    requirements: tuple[str, ...] = ()
    resources: Mapping[str, object] = field(default_factory=dict)
    metadata_url: str = ""


@dataclass(frozen=True)
class StoredOutput:
    """One output an attempt put into the artifact store."""

    uri: str
    sha256: str
    size: int
    properties: JSONObject = field(default_factory=dict)  # the artifact's metadata, as JSON


@dataclass
class TaskResult:
    """What came out of one attempt: stored outputs or the error."""

    ok: bool
    outputs: dict[str, StoredOutput] = field(default_factory=dict)
    value: JSONValue = None  # the function's return value, as JSON (else its repr)
    error: str | None = None
    traceback: str | None = None
    started: float = 0.0
    ended: float = 0.0
    executor: dict[str, JSONValue] = field(default_factory=dict)


def class_ref(cls: type) -> str:
    """``module:qualname`` of a class."""
    return f"{cls.__module__}:{cls.__qualname__}"


def _import_ref(ref: str, source_file: str = "") -> object:
    module_name, _, qualname = ref.partition(":")
    module = sys.modules.get(module_name)
    if module is None:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            if not source_file:
                raise
            module = load_module_from_file(Path(source_file), module_name)
    obj: object = module
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def load_module_from_file(path: Path, module_name: str) -> ModuleType:
    """Import a Python file so that ``module_name`` names it in ``sys.modules``.

    ``module_name`` is what a component recorded as its module (the loader's
    prefix plus the content hash); a worker loading the same file gets the
    same name back.
    """
    prefix, _, _ = module_name.rpartition("_")
    module = import_file(path, prefix or module_name)
    sys.modules.setdefault(module_name, module)
    return module


def load_component(task: StepTask) -> AnyComponent:
    """The ComponentDef a task names, imported in this process."""
    comp = _import_ref(task.component_ref, task.source_file)
    if not isinstance(comp, ComponentDef):
        raise UserInputError(f"{task.component_ref} is not a ctloop component.")
    return comp


def run_task(task: StepTask, component: AnyComponent | None = None) -> TaskResult:
    """Run one attempt of a step: fetch inputs, call the code, store outputs.

    Never raises for failures of user code: they come back as ``ok=False`` with
    the traceback, so every runner reports them the same way.
    """
    started = time.time()
    executor: dict[str, JSONValue] = {"host": socket.gethostname(), "pid": os.getpid()}
    work = Path(task.work_dir)
    store: ArtifactStore | None = None
    outputs: dict[str, Artifact] = {}
    try:
        store = _artifact_store(task.artifacts_url)
        inputs = {
            name: _artifact_class(ia.type_ref)(
                store.get(ia.uri, ia.sha256, name=f"{name} ({ia.id})"),
                uri=ia.uri, sha256=ia.sha256, id=ia.id, metadata=ia.properties,
            )
            for name, ia in task.inputs.items()
        }
        work.mkdir(parents=True, exist_ok=True)
        for name, ref in task.outputs.items():
            stem = work / f"{task.step}.{task.attempt}.{name}"
            cls = _artifact_class(ref)
            _remove(stem if cls.filename is None else stem.with_name(f"{stem.name}.{cls.filename}"))
            outputs[name] = cls.new_output(stem)
        value: object
        if task.command is not None:
            value = _run_command(task, inputs, outputs)
        else:
            comp = component or load_component(task)
            func = comp.func
            assert func is not None
            ctx = StepContext(task.run_id, task.step, task.attempt, task.metadata_url,
                              task.artifacts_url)
            with step_context(ctx):
                value = func(**task.params, **inputs, **outputs)
        stored: dict[str, StoredOutput] = {}
        for name, art in outputs.items():
            if not art.path.exists():
                raise ComponentFailed(
                    f"Step {task.step!r} did not write its output {name!r} "
                    f"(expected a file or folder at {art.path}).",
                    step=task.step,
                )
            obj = store.put(art.path)
            stored[name] = StoredOutput(obj.uri, obj.sha256, obj.size, _properties(art))
        for art in outputs.values():
            _remove(art.path)
        return TaskResult(
            ok=True, outputs=stored, value=_jsonable(value), started=started,
            ended=time.time(), executor=executor,
        )
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        message = exc.message if isinstance(exc, CtloopError) else f"{type(exc).__name__}: {exc}"
        return TaskResult(
            ok=False, error=message, traceback=traceback.format_exc(), started=started,
            ended=time.time(), executor=executor, outputs=_keep_partial(store, outputs),
        )


_LOCAL_STORES: dict[str, ArtifactStore] = {}
_LOCAL_STORES_LOCK = threading.Lock()


def _artifact_store(url: str) -> ArtifactStore:
    """The artifact store for ``url``; local folders are opened once per process.

    Sharing one store lets its verified-hash memo serve every step in the
    process, so a file one step wrote and another reads is not hashed again
    unless it changed on disk. Remote stores are opened per task, since their
    credentials may change between runs of a long-lived worker.
    """
    from ctloop.artifacts import open_artifact_store

    if "://" in url and not url.startswith("file:"):
        return open_artifact_store(url)
    with _LOCAL_STORES_LOCK:
        store = _LOCAL_STORES.get(url)
        if store is None:
            store = _LOCAL_STORES[url] = open_artifact_store(url)
        return store


def _keep_partial(store: ArtifactStore | None, outputs: dict[str, Artifact]
                  ) -> dict[str, StoredOutput]:
    """Store what a failed step did write (a validation report, a log) for a person to read.

    Such outputs are recorded with ``partial: true`` and are never used as inputs:
    only finished steps feed later steps, caching and resume.
    """
    kept: dict[str, StoredOutput] = {}
    if store is None:
        return kept
    for name, art in outputs.items():
        path = art.path
        if not path.exists() or (path.is_dir() and not any(path.iterdir())):
            continue
        try:
            obj = store.put(path)
        except Exception:  # best effort: the step's own error is what matters
            continue
        kept[name] = StoredOutput(obj.uri, obj.sha256, obj.size,
                                  {**_properties(art), "partial": True})
        _remove(path)
    return kept


def _remove(path: Path) -> None:
    """Delete a file or folder left by an earlier attempt or a finished step."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _artifact_class(ref: str) -> type[Artifact]:
    cls = _import_ref(ref)
    if not (isinstance(cls, type) and issubclass(cls, Artifact)):
        raise UserInputError(f"{ref} is not an Artifact class.")
    return cls


def _run_command(
    task: StepTask, inputs: dict[str, Artifact], outputs: dict[str, Artifact]
) -> JSONValue:
    values = {f"inputs.{k}": str(v.path) for k, v in inputs.items()}
    values |= {f"outputs.{k}": str(v.path) for k, v in outputs.items()}
    values |= {f"params.{k}": str(v) for k, v in task.params.items()}
    argv = []
    for part in task.command or ():
        for key, val in values.items():
            part = part.replace("{" + key + "}", val)
        argv.append(part)
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=task.work_dir)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise ComponentFailed(
            f"Command {argv[0]!r} of step {task.step!r} exited with code {proc.returncode}: "
            + " | ".join(tail),
            step=task.step,
        )
    return {"stdout": proc.stdout[-2000:]} if proc.stdout else None


def _jsonable(value: object) -> JSONValue:
    """``value`` if it survives JSON, else its repr (step outputs must be storable)."""
    if value is None:
        return None
    try:
        plain: JSONValue = json.loads(json.dumps(value, default=_np_default))
    except (TypeError, ValueError):
        return repr(value)
    return plain


def _properties(art: Artifact) -> JSONObject:
    """An output's metadata as the JSON object its artifact record keeps (a value JSON
    cannot hold as its repr)."""
    return {str(key): _jsonable(value) for key, value in art.metadata.items()}


def _np_default(value: object) -> object:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(type(value).__name__)
