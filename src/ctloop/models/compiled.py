"""Tree ensembles compiled to native code, answering exactly as their library does.

A LightGBM booster spends most of a one-row predict setting up the call; the
same trees compiled to straight-line machine code (lleaves, see
``compiled_lleaves``) score a row ~10x faster and 100 rows ~4x faster. So a
loaded model may carry a :class:`CompiledPredictor`, which scores the float
matrix the library would see (categoricals as codes, missing as NaN) and
returns what the library's predict returns.

Rules, each because a wrong answer is worse than a slow one:

- Compiled once per model version *and* compiler, options and CPU (the key):
  anything that changes the code changes the key, so a stale object is never
  looked up, it is compiled again.
- Cached as an artifact like every other (``CompiledCache``; the registry's
  records the object's sha256 on the model version): bytes that do not hash
  to the record are refused, never loaded, and compiled again.
- Checked before it answers: the compiled code and the library score the same
  probe rows (every split threshold and its neighbours, missing values, every
  category, unseen ones); any answer off by more than 1e-9 relative keeps the
  library's predict for this model. The artifact keeps the library's answers
  beside the object, so loading a cached one checks it without importing the
  library (``import lightgbm`` pulls in SciPy and scikit-learn).
- Never in the way: the library answers while one background worker compiles
  one model at a time in a child process at a low CPU priority
  (:class:`CompileJob`); without a compiler (no ``compiled`` extra, another
  flavor) the library's predict simply stays.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeAlias

import numpy as np

from ctloop.core.arrays import Floats

if TYPE_CHECKING:
    from ctloop.models.flavors import LoadedModel

__all__ = [
    "RTOL",
    "CompileJob",
    "CompiledCache",
    "CompiledPredictor",
    "MemoryCompiledCache",
    "attach_compiled",
    "compile_predictor",
    "compiles_held",
    "library_scorer",
    "pending_compile",
    "probe_matrix",
]

log = logging.getLogger("ctloop.models.compiled")

RTOL = 1e-9  # compiled answers must match the library's within this relative difference
Matrix: TypeAlias = Floats
Scorer: TypeAlias = Callable[[Matrix], Floats]


@dataclass(frozen=True)
class CompiledPredictor:
    """Native code for one model: ``predict(matrix)`` answers as the library's predict."""

    backend: str
    key: str
    predict: Scorer
    seconds: float  # to compile (0.0: read from the cache)


class CompiledCache(Protocol):
    """Where compiled objects are kept; ``read`` returns only bytes it has verified."""

    def read(self, key: str) -> bytes | None:
        """The object stored under ``key``, hash-checked; None when absent or refused."""
        ...

    def write(self, key: str, data: bytes, *, backend: str) -> None: ...


class MemoryCompiledCache:
    """A cache in a dict, for tests and one-off scoring (nothing survives the process)."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def read(self, key: str) -> bytes | None:
        return self.objects.get(key)

    def write(self, key: str, data: bytes, *, backend: str) -> None:
        self.objects[key] = data


# backends ------------------------------------------------------------------------------


class _Library(Protocol):
    """What a backend reads off the library's model (LightGBM's ``Booster`` today)."""

    def model_to_string(self) -> str: ...

    def num_feature(self) -> int: ...

    def num_model_per_iteration(self) -> int: ...


@dataclass(frozen=True)
class _Backend:
    name: str
    unavailable: Callable[[], str | None]
    key_parts: Callable[[], dict[str, str]]
    compile: Callable[[_Library, bool], bytes]  # library model, in a child process? -> object
    load: Callable[[bytes, _Library], Scorer]  # object bytes, library model -> scorer


def _lightgbm_backend() -> _Backend:
    from ctloop.models import compiled_lleaves as impl

    def load(data: bytes, booster: _Library) -> Scorer:
        return impl.load_object(
            data, features=booster.num_feature(), outputs=booster.num_model_per_iteration()
        )

    return _Backend(
        "lleaves",
        impl.available,
        impl.cache_key_parts,
        lambda booster, isolated: (impl.compile_in_child if isolated else impl.compile_object)(
            booster.model_to_string()),
        load,
    )


_BACKENDS: Mapping[str, Callable[[], _Backend]] = {"lightgbm": _lightgbm_backend}


def _backend(model: LoadedModel) -> tuple[_Backend | None, str]:
    make = _BACKENDS.get(model.flavor)
    if make is None:
        return None, f"no compiler for the {model.flavor} flavor"
    backend = make()
    why = backend.unavailable()
    return (None, why) if why else (backend, "")


def _key(model: LoadedModel, backend: _Backend) -> str:
    parts = {"model": model.sha256, "backend": backend.name, **backend.key_parts()}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


# the library's answers and the probe rows ----------------------------------------------


def library_scorer(model: LoadedModel) -> Scorer:
    """The library's own predict on the compiled code's input matrix, one thread."""
    booster = model.model
    if model.flavor == "lightgbm":
        return lambda matrix: np.asarray(booster.predict(matrix, num_threads=1), np.float64)
    raise ValueError(f"no matrix predict for the {model.flavor} flavor")


def probe_matrix(model: LoadedModel, rows: int = 512, seed: int = 0) -> Matrix:
    """Rows that walk every split: each threshold and its float neighbours, NaN, categories.

    Built from the model alone (no training data needed): numeric columns draw
    from their split thresholds, the values next to them and the range seen in
    training; categorical columns from every category, an unseen one and -1.
    """
    if model.flavor != "lightgbm":
        raise ValueError(f"no probe rows for the {model.flavor} flavor")
    candidates = _lightgbm_candidates(model.model.model_to_string())
    rng = np.random.default_rng(seed)
    matrix = np.empty((rows + 1, len(candidates)), dtype=np.float64)
    for j, values in enumerate(candidates):
        matrix[:rows, j] = rng.choice(values, size=rows)
    matrix[rows] = np.nan  # every value missing
    return matrix


def _lightgbm_candidates(text: str) -> list[Floats]:
    infos: list[str] = []
    thresholds: dict[int, list[float]] = {}
    tree: dict[str, list[str]] = {}
    for line in [*text.splitlines(), "Tree=end"]:
        key, _, value = line.partition("=")
        if key == "feature_infos":
            infos = value.split()
        elif key in ("split_feature", "threshold", "decision_type"):
            tree[key] = value.split()
        elif key == "Tree" or line.startswith("end of trees"):
            for feature, t, kind in zip(
                tree.get("split_feature", []),
                tree.get("threshold", []),
                tree.get("decision_type", []),
                strict=False,
            ):
                if not int(kind) & 1:  # numeric split (bit 0 marks a categorical one)
                    thresholds.setdefault(int(feature), []).append(float(t))
            tree = {}
            if key != "Tree":
                break
    out = []
    for j, info in enumerate(infos):
        values: list[float] = [np.nan, 0.0]
        if info.startswith("["):  # numeric: [min:max]
            low, _, high = info[1:-1].partition(":")
            values += [float(low), float(high)]
            for cut in thresholds.get(j, [])[:200]:
                values += [cut, float(np.nextafter(cut, -np.inf)), float(np.nextafter(cut, np.inf))]
        elif info != "none":  # categorical: the categories seen, colon-separated
            cats = [float(c) for c in info.split(":")]
            values += [*cats, max(cats) + 1, -1.0]
        out.append(np.array(values, dtype=np.float64))
    return out


def _equal(expected: Floats, got: Floats) -> str | None:
    """None when equal within RTOL; else where they differ most."""
    if expected.shape != got.shape:
        return f"shape {got.shape}, not {expected.shape}"
    scale = np.maximum(np.abs(expected), np.abs(got))
    bad = np.abs(expected - got) > RTOL * scale
    both_nan = np.isnan(expected) & np.isnan(got)
    bad &= ~both_nan
    bad |= np.isnan(expected) != np.isnan(got)
    if not bad.any():
        return None
    worst = np.unravel_index(np.argmax(np.where(bad, np.abs(expected - got), 0)), bad.shape)
    return f"{got[worst]!r} where the library answers {expected[worst]!r} (row {worst[0]})"


# compile, check, attach ----------------------------------------------------------------


def compile_predictor(
    model: LoadedModel, cache: CompiledCache, *, compile: bool = True, isolated: bool = False
) -> CompiledPredictor | None:
    """The checked compiled predictor for ``model`` (cached, else compiled), or None.

    None (with the reason logged) when there is no compiler for the model, its
    answers differ from the library's, or (``compile=False``) nothing is cached.
    A fresh object is checked against the library itself; the cached artifact
    holds the library's answers to the probe rows beside the object, so a
    cached one is checked against those without importing the library.
    ``isolated``: compile in a child process at low priority (the background).
    """
    backend, why = _backend(model)
    if backend is None:
        log.info("model %s stays on its library's predict: %s", model.sha256[:12], why)
        return None
    key = _key(model, backend)
    packed = cache.read(key)
    if packed is not None:
        try:
            data, expected = _unpack(packed)
        except ValueError as exc:
            log.warning("compiled artifact of %s unreadable (%s); compiling again",
                        model.sha256[:12], exc)
        else:
            return _checked(model, backend, key, data, expected, 0.0)
    if not compile:
        return None
    started = time.perf_counter()
    try:
        data = backend.compile(model.model, isolated)
        expected = library_scorer(model)(probe_matrix(model))
    except Exception as exc:  # a model the compiler does not cover: keep the library
        log.warning("compiling %s failed, the library answers: %s", model.sha256[:12], exc)
        return None
    predictor = _checked(model, backend, key, data, expected, time.perf_counter() - started)
    if predictor is not None:
        try:
            cache.write(key, _pack(data, expected), backend=backend.name)
        except Exception as exc:  # serving goes on compiled; the next start compiles again
            log.warning("could not cache compiled %s: %s", model.sha256[:12], exc)
    return predictor


def _pack(data: bytes, expected: Floats) -> bytes:
    """The artifact: the object and the library's answers to the probe rows (npz, no pickle)."""
    out = io.BytesIO()
    np.savez(out, object=np.frombuffer(data, dtype=np.uint8), expected=expected)
    return out.getvalue()


def _unpack(packed: bytes) -> tuple[bytes, Floats]:
    try:
        with np.load(io.BytesIO(packed), allow_pickle=False) as arrays:
            return arrays["object"].tobytes(), np.asarray(arrays["expected"], np.float64)
    except Exception as exc:  # not an npz of ours
        raise ValueError(str(exc)) from exc


def _checked(
    model: LoadedModel,
    backend: _Backend,
    key: str,
    data: bytes,
    expected: Floats,
    seconds: float,
) -> CompiledPredictor | None:
    """The loaded object if it answers the probe rows as the library did."""
    try:
        predict = backend.load(data, model.model)
        differs = _equal(expected, predict(probe_matrix(model)))
    except Exception as exc:
        log.warning("loading compiled %s failed, the library answers: %s", model.sha256[:12], exc)
        return None
    if differs is not None:
        log.warning(
            "compiled %s answers %s; the library keeps answering", model.sha256[:12], differs
        )
        return None
    how = f"compiled in {seconds:.1f} s" if seconds else "from the cache"
    log.info("model %s answers through %s code (%s)", model.sha256[:12], backend.name, how)
    return CompiledPredictor(backend.name, key, predict, seconds)


def attach_compiled(
    model: LoadedModel, cache: CompiledCache, *, background: bool = True
) -> CompileJob | None:
    """Set ``model.compiled`` to a checked predictor; compile in the background when ``background``.

    A cached object is loaded at once (milliseconds), so a restarted server
    answers compiled from its first request. Otherwise, with ``background``,
    the model is queued for the one compile worker (see :class:`CompileJob`)
    and the job returned; the library answers until the worker swaps the
    checked predictor in (one attribute assignment, read on every call).
    """
    if model.flavor not in _BACKENDS:
        return None
    model.compiled = compile_predictor(model, cache, compile=not background)
    if model.compiled is not None or not background or _backend(model)[0] is None:
        return None
    job = CompileJob(model, cache)
    with _worker_lock:
        _pending[id(model)] = job
        global _worker
        if _worker is None or not _worker.is_alive():
            _worker = threading.Thread(target=_work, name="ctloop-compile", daemon=True)
            _worker.start()
    _queue.put(job)
    return job


class CompileJob:
    """One model waiting for the background compile worker; ``join`` waits for it.

    One worker compiles one model at a time (LLVM is CPU- and memory-hungry; a
    pool of many versions must not start many compiles), the code generation
    and LLVM itself run in a child process at a low CPU priority (no GIL
    held against the requests, no LLVM in the server's memory), and a model
    unloaded before its turn is skipped.
    """

    def __init__(self, model: LoadedModel, cache: CompiledCache) -> None:
        self._model = weakref.ref(model)
        self._key = id(model)
        self.cache = cache
        self.done = threading.Event()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the model was compiled (or refused); False on timeout."""
        return self.done.wait(timeout)

    def run(self) -> None:
        try:
            model = self._model()
            if model is not None:  # else unloaded while it waited: nothing to do
                model.compiled = compile_predictor(model, self.cache, isolated=True)
        except Exception:  # never let the worker die; the library keeps answering
            log.exception("background compile failed; the library keeps answering")
        finally:
            with _worker_lock:
                if _pending.get(self._key) is self:
                    del _pending[self._key]
            self.done.set()


def pending_compile(model: LoadedModel) -> CompileJob | None:
    """The background compile queued or running for ``model``, if any."""
    with _worker_lock:
        return _pending.get(id(model))


@contextmanager
def compiles_held() -> Iterator[None]:
    """Hold the background worker: jobs queued meanwhile wait until the block ends.

    For tests that must see a model served before its compiled code exists,
    without racing the compiler.
    """
    _open.clear()
    try:
        yield
    finally:
        _open.set()


_queue: queue.SimpleQueue[CompileJob] = queue.SimpleQueue()
_pending: dict[int, CompileJob] = {}  # id(model) -> its job, until done
_worker: threading.Thread | None = None
_worker_lock = threading.Lock()
_open = threading.Event()
_open.set()


def _work() -> None:
    """The compile worker: one job at a time, at a low CPU priority (Linux: per thread)."""
    if hasattr(os, "setpriority"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except OSError:
            pass
    while True:
        job = _queue.get()
        _open.wait()
        job.run()
