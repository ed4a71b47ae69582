"""Models that carry their code: the user's modules stored in the model folder.

A pickled predictor names its class by module (``mypredictors.Churn``); the server
and batch scoring must import that module without the project on ``PYTHONPATH``.
So saving stores, under ``code/`` in the model folder, every module the pickle
references that is not an installed distribution or the standard library (or the
``code_paths`` given), records each file's sha256 in the manifest, and records
the third-party modules that code imports as requirements.

Loading imports those modules from the checked bytes in memory (a finder placed
first on ``sys.meta_path`` while the pickle is read), never from the folder on
disk, so the code is exactly as hash-checked as the model file. While a model is
unpickled its modules shadow any others of the same names, so two versions of a
model with different code each get their own.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib.abc
import importlib.machinery
import importlib.metadata
import io
import pickle
import shutil
import sys
import sysconfig
import threading
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from typing_extensions import Buffer  # collections.abc.Buffer from Python 3.12

from ctloop.core.errors import UserInputError

__all__ = ["CODE_DIR", "code_imports", "import_code", "referenced_modules", "store_code"]

CODE_DIR = "code"
_LOCK = threading.RLock()


# --- which modules a pickle needs ----------------------------------------------------------


class _Discard(io.RawIOBase):
    def write(self, data: Buffer) -> int:
        return memoryview(data).nbytes


class _ModuleRecorder(pickle._Pickler):  # the pure-Python pickler shows every global it saves
    def __init__(self) -> None:
        super().__init__(_Discard(), protocol=4)  # 5 trips on a CPython bug (empty buffers)
        self.modules: set[str] = set()

    def save_global(self, obj: object, name: str | None = None) -> None:
        module = getattr(obj, "__module__", None) or pickle.whichmodule(  # type: ignore[attr-defined]
            obj, name or ""
        )
        self.modules.add(str(module))
        super().save_global(obj, name)  # type: ignore[misc]


def referenced_modules(model: object) -> set[str]:
    """Every module whose classes or functions pickling ``model`` refers to."""
    recorder = _ModuleRecorder()
    try:
        recorder.dump(model)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        if "__main__" in recorder.modules:
            return recorder.modules  # said clearly by the caller
        raise UserInputError(f"The model cannot be pickled: {exc}") from exc
    return recorder.modules


@functools.cache
def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    return tuple(str(Path(p).resolve()) for p in roots)


@functools.cache
def _distributed() -> frozenset[str]:
    return frozenset(importlib.metadata.packages_distributions())


def _is_local(module: str) -> bool:
    """A module of the user's project: not stdlib, not installed, not ctloop itself."""
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top in _distributed() or top in ("ctloop", "builtins"):
        return False
    loaded = sys.modules.get(top)
    file = getattr(loaded, "__file__", None)
    if file is None:
        return False
    return not str(Path(file).resolve()).startswith(_library_roots())


def _source_root(module: str) -> Path:
    """The file (a module) or folder (a package) that holds top-level ``module``."""
    loaded = sys.modules[module]
    file = Path(str(loaded.__file__)).resolve()
    return file.parent if hasattr(loaded, "__path__") else file


# --- storing --------------------------------------------------------------------------------


def store_code(
    model: object, folder: Path, code_paths: Sequence[str | Path] | None
) -> dict[str, Path]:
    """Copy the model's code under ``folder/code``; returns {relative path: stored file}.

    Given ``code_paths`` (files or package folders) are stored as they are; without
    them the modules the pickle references that are local to the project are found.
    A class defined in ``__main__`` (a script or notebook) cannot be found by anyone
    loading the model later: that is one clear error.
    """
    if code_paths:
        sources: list[tuple[Path, str | None]] = [(Path(p).resolve(), None) for p in code_paths]
        for source, _ in sources:
            if not source.exists():
                raise UserInputError(f"The code path {source} does not exist.")
    else:
        modules = referenced_modules(model)
        if "__main__" in modules:
            raise UserInputError(
                "The model's class is defined in __main__ (a script or notebook), which "
                "cannot be imported where the model is loaded; move it into a module "
                "(mypredictors.py) and import it from there."
            )
        # Stored under the module's own name: a file imported by path (ctloop's
        # ``import_file``) is registered under a name other than its file's.
        sources = [(_source_root(t), t) for t in _local_closure(modules)]
    shutil.rmtree(folder / CODE_DIR, ignore_errors=True)  # no stale files from an older save
    stored: dict[str, Path] = {}
    for source, name in sources:
        for relative, file in _python_files(source, name):
            target = folder / CODE_DIR / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, target)
            stored[f"{CODE_DIR}/{relative.as_posix()}"] = target
    return dict(sorted(stored.items()))


def _local_closure(modules: Iterable[str]) -> list[str]:
    """The local top-level modules in ``modules`` and, in turn, the local ones they import."""
    found: set[str] = set()
    todo = {m.split(".")[0] for m in modules if _is_local(m)}
    while todo:
        top = todo.pop()
        found.add(top)
        sources = {str(f): f.read_bytes() for _, f in _python_files(_source_root(top))}
        imported = code_imports({f"{CODE_DIR}/{Path(k).name}": v for k, v in sources.items()})
        todo |= {m for m in imported if _is_local(m)} - found
    return sorted(found)


def _python_files(source: Path, name: str | None = None) -> Iterator[tuple[Path, Path]]:
    """(path under code/, file) for a module file or every .py file of a package folder."""
    if source.is_file():
        if source.suffix != ".py":
            raise UserInputError(f"The code path {source} is not a .py file or a package.")
        yield Path(f"{name}.py" if name else source.name), source
        return
    for file in sorted(source.rglob("*.py")):
        if "__pycache__" not in file.parts:
            yield Path(name or source.name) / file.relative_to(source), file


def code_imports(sources: Mapping[str, bytes]) -> set[str]:
    """Top-level modules the stored code imports, less its own and the standard library."""
    own = {_module_name(path).split(".")[0] for path in sources}
    found: set[str] = set()
    for path, data in sources.items():
        try:
            tree = ast.parse(data, filename=path)
        except SyntaxError as exc:
            raise UserInputError(f"The stored code {path} does not parse: {exc}") from exc
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return {m for m in found - own if m not in sys.stdlib_module_names and m != "__future__"}


# --- loading --------------------------------------------------------------------------------


def _module_name(path: str) -> str:
    """``code/pkg/sub.py`` -> ``pkg.sub``; ``code/pkg/__init__.py`` -> ``pkg``."""
    parts = list(Path(path).with_suffix("").parts[1:])
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


class _CheckedCode(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves modules from verified source bytes: {module: (source, is package, origin)}."""

    def __init__(self, modules: dict[str, tuple[bytes, bool, str]]) -> None:
        self.modules = modules

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.modules:
            return None
        _, package, origin = self.modules[fullname]
        spec = importlib.machinery.ModuleSpec(fullname, self, origin=origin, is_package=package)
        if package:
            spec.submodule_search_locations = []
        spec.has_location = True
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        source, _, origin = self.modules[module.__name__]
        exec(compile(source, origin, "exec"), module.__dict__)  # the model's own checked code


# Serves stored modules first imported after their model was loaded (lazily, in predict).
_LATER = _CheckedCode({})


def _finder(folder: Path, files: Mapping[str, bytes]) -> _CheckedCode:
    modules: dict[str, tuple[bytes, bool, str]] = {}
    for path, data in files.items():
        if path.startswith(f"{CODE_DIR}/") and path.endswith(".py"):
            name = _module_name(path)
            modules[name] = (data, path.endswith("__init__.py"), str(folder / path))
            parts = name.split(".")  # folders without __init__.py are packages too
            for i in range(1, len(parts)):
                modules.setdefault(".".join(parts[:i]), (b"", True, str(folder / CODE_DIR)))
    return _CheckedCode(modules)


@contextlib.contextmanager
def import_code(folder: Path, files: Mapping[str, bytes]) -> Iterator[None]:
    """While inside, the model's stored modules import from ``files`` (checked bytes).

    Modules of the same names loaded before are set aside and put back after, so
    the model's objects keep the classes of its own code. Only what the pickle needs
    is imported (no module of a stored package runs unless it is used). Afterwards a
    stored module first imported later (inside ``predict``) is still served from
    checked bytes: the latest loaded model's, by a finder placed after every other.
    """
    finder = _finder(folder, files)
    if not finder.modules:
        yield
        return
    with _LOCK:
        names = set(finder.modules)
        aside = {n: m for n, m in sys.modules.items() if _covered(n, names)}
        for name in aside:
            del sys.modules[name]
        sys.meta_path.insert(0, finder)
        try:
            yield
        finally:
            sys.meta_path.remove(finder)
            sys.modules.update(aside)
            _LATER.modules.update(finder.modules)
            if _LATER not in sys.meta_path:
                sys.meta_path.append(_LATER)


def _covered(name: str, names: Iterable[str]) -> bool:
    return any(name == n or name.startswith(f"{n}.") for n in names)
