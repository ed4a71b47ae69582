"""Model references as people type them: ``NAME``, ``NAME:VERSION``, ``NAME@ALIAS``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ctloop.core.errors import UserInputError
from ctloop.metadata.base import MAX_VERSION, version_in_range

__all__ = ["ModelRef", "parse_ref", "parse_version_ref"]

_REF = re.compile(r"^(?P<name>[A-Za-z0-9][\w.\-]*)(?::(?P<version>\d+)|@(?P<alias>[\w.\-]+))?$")


@dataclass(frozen=True)
class ModelRef:
    """A model name with at most one of a version number or an alias."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def parse_ref(text: str) -> ModelRef:
    """Parse ``flights``, ``flights:3`` or ``flights@champion``."""
    match = _REF.match(text.strip())
    if match is None:
        raise UserInputError(
            f"{text!r} is not a model reference; write NAME, NAME:VERSION (flights:3) "
            "or NAME@ALIAS (flights@champion)."
        )
    version = match.group("version")
    if version is not None and not version_in_range(int(version)):
        raise UserInputError(
            f"{text!r} names version {version}; versions are numbered from 1 to {MAX_VERSION}. "
            "List them with `ctloop models list`."
        )
    return ModelRef(
        name=match.group("name"),
        version=int(version) if version is not None else None,
        alias=match.group("alias"),
    )


def parse_version_ref(text: str) -> ModelRef:
    """``parse_ref``, reading ``NAME@3`` as version 3 (how level-2 commands write a version:
    ``ctloop models test flights@3``); alias names are never all digits there."""
    ref = parse_ref(text)
    if ref.alias is not None and ref.alias.isdigit():
        return ModelRef(ref.name, version=int(ref.alias))
    return ref
