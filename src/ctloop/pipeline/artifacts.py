"""Typed artifacts: the values that flow between steps.

An artifact is a file or folder on local disk while a step runs (``.path``)
and content-addressed bytes in the artifact store afterwards (``.uri``,
``.sha256``). Steps declare what they read with ``Input[T]`` (or just ``T``)
and what they write with ``Output[T]``; the engine hands them ready objects.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, TypeAlias, TypeVar

from ctloop.core.jsontypes import JSONValue

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "INPUT",
    "OUTPUT",
    "Artifact",
    "Dataset",
    "Input",
    "Metrics",
    "Model",
    "Output",
    "Role",
    "artifact_class",
]

T = TypeVar("T", bound="Artifact")

ArtifactMetadata: TypeAlias = dict[str, Any]
"""What a component writes about an artifact (``rows``, ``spans`` ...): its own free-form
document, read back by the component code that consumes it, so it stays ``Any`` there
(component code indexes it without narrowing); the engine stores it as the artifact's
properties, values JSON lacks converted (``task._jsonable``)."""


class Artifact:
    """Base of all artifact types; subclass it to make a new type."""

    #: file name used for a new output (``None``: the path is a folder)
    filename: ClassVar[str | None] = "data"

    def __init__(
        self,
        path: str | Path,
        *,
        uri: str = "",
        sha256: str = "",
        id: str = "",
        metadata: Mapping[str, object] | None = None,
    ) -> None:
        self.path = Path(path)
        self.uri = uri
        self.sha256 = sha256
        self.id = id
        self.metadata: ArtifactMetadata = dict(metadata or {})

    @classmethod
    def type_name(cls) -> str:
        """The name recorded in the metadata store (the class name)."""
        return cls.__name__

    @classmethod
    def new_output(cls: type[T], stem: Path) -> T:
        """An empty output at ``stem`` + our file name (or a new folder ``stem``).

        Outputs share one work folder per run, so a step costs no directory
        creation or removal (slow on some file systems) unless it writes a folder.
        """
        if cls.filename is None:
            stem.mkdir(parents=True, exist_ok=True)
            return cls(stem)
        return cls(stem.with_name(f"{stem.name}.{cls.filename}"))

    def __repr__(self) -> str:
        ident = self.id or self.uri or str(self.path)
        return f"{type(self).__name__}({ident!r})"


class Dataset(Artifact):
    """A table stored as one parquet file."""

    filename = "data.parquet"

    def read(self, columns: list[str] | None = None) -> pd.DataFrame:
        """The table as a DataFrame."""
        import pandas as pd

        return pd.read_parquet(self.path, columns=columns)

    def write(self, df: pd.DataFrame) -> None:
        """Write ``df`` as parquet and record its shape."""
        df.to_parquet(self.path, index=False)
        self.metadata.setdefault("rows", len(df))
        self.metadata.setdefault("columns", [str(c) for c in df.columns])


class Model(Artifact):
    """A trained model: a folder a model flavor writes into."""

    filename = None


class Metrics(Artifact):
    """Named numbers, stored as JSON and copied into the artifact's properties."""

    filename = "metrics.json"

    def log(self, name: str, value: object) -> None:
        """Record one metric (written when the step ends)."""
        values: dict[str, object] = {**self.read()} if self.path.exists() else {}
        values[name] = value
        self.write(values)

    def write(self, values: Mapping[str, object]) -> None:
        """Replace all metrics."""
        self.path.write_text(json.dumps(values, indent=2, sort_keys=True, default=float))
        self.metadata.update(
            {k: v for k, v in values.items() if isinstance(v, int | float | str | bool)}
        )

    def read(self) -> dict[str, JSONValue]:
        """All metrics as a dict."""
        values: dict[str, JSONValue] = json.loads(self.path.read_text())
        return values


class Role:
    """``Annotated`` metadata saying whether a step reads or writes an artifact."""

    def __init__(self, direction: str) -> None:
        self.direction = direction

    def __repr__(self) -> str:
        return f"Role({self.direction!r})"


INPUT = Role("input")
OUTPUT = Role("output")

A = TypeVar("A", bound=Artifact)

#: ``data: Input[Dataset]`` — the step reads this artifact (same as ``data: Dataset``).
#: Type checkers see a plain ``Dataset``.
Input: TypeAlias = Annotated[A, INPUT]

#: ``model: Output[Model]`` — the engine passes an empty artifact to write into.
#: Type checkers see a plain ``Model``.
Output: TypeAlias = Annotated[A, OUTPUT]


def artifact_class(annotation: object) -> tuple[str, type[Artifact]] | None:
    """(``"input"``|``"output"``, artifact type) for an annotation, or None for parameters.

    Raises ``TypeError`` for ``Input[X]``/``Output[X]`` whose ``X`` is not an Artifact.
    """
    if typing.get_origin(annotation) is Annotated:
        base, *extras = typing.get_args(annotation)
        role = next((e for e in extras if isinstance(e, Role)), None)
        if role is not None:
            if not (isinstance(base, type) and issubclass(base, Artifact)):
                kind = "Input" if role is INPUT else "Output"
                raise TypeError(f"{kind}[...] takes an Artifact subclass, got {base!r}")
            return role.direction, base
        annotation = base
    if isinstance(annotation, type) and issubclass(annotation, Artifact):
        return "input", annotation
    return None
