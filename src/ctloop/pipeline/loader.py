"""Find a pipeline from ``path/to/file.py:name`` or ``package.module:name``."""

from __future__ import annotations

import difflib
import hashlib
import importlib
from pathlib import Path

from ctloop.core.errors import NotFound, UserInputError
from ctloop.core.importing import import_file
from ctloop.pipeline.dsl import AnyPipeline, PipelineDef

__all__ = ["load_pipeline", "split_ref"]


def split_ref(ref: str) -> tuple[str, str | None]:
    """``"a/b.py:name"`` -> (``"a/b.py"``, ``"name"``); the name is optional."""
    target, sep, name = ref.rpartition(":")
    if not sep or (len(target) == 1 and target.isalpha()):  # no name given (or a drive letter)
        return ref, None
    return target, name or None


def load_pipeline(ref: str) -> tuple[AnyPipeline, str]:
    """The pipeline a reference names, and the canonical reference to record on runs.

    Raises ``NotFound`` for a missing file or module or an unknown pipeline name,
    listing the pipelines that do exist.
    """
    target, name = split_ref(ref)
    if target.endswith(".py") or "/" in target:
        path = Path(target).resolve()
        if not path.is_file():
            raise NotFound(f"Pipeline file {target!r} does not exist. Check the path.")
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:10]
        try:
            module = import_file(path, f"ctloop_user_{path.stem}_{digest}")
        except SyntaxError as exc:
            raise UserInputError(
                f"{target} has a syntax error at line {exc.lineno}: {exc.msg}."
            ) from None
        canonical_target = str(path)
    else:
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as exc:
            raise NotFound(f"No Python file or module {target!r} ({exc}).") from None
        canonical_target = target
    found = {
        getattr(obj, "name", key): obj
        for key, obj in vars(module).items()
        if isinstance(obj, PipelineDef)
    }
    if not found:
        raise NotFound(f"{target} defines no @pipeline function.")
    if name is None:
        if len(found) > 1:
            raise UserInputError(
                f"{target} defines several pipelines ({', '.join(sorted(found))}); "
                f"name one: {target}:NAME."
            )
        name = next(iter(found))
    if name not in found:
        close = difflib.get_close_matches(name, list(found), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise NotFound(
            f"{target} has no pipeline {name!r}.{hint} Pipelines there: {', '.join(sorted(found))}."
        )
    return found[name], f"{canonical_target}:{name}"
