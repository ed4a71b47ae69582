"""Model signatures: which columns a model reads, of which types, and what it returns.

A signature is taken from the training frame, stored next to the model and
checked before every prediction, so a frame missing a column fails with the
column's name instead of a library error deep inside ``predict``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ctloop.core.errors import UserInputError

__all__ = ["ColumnSpec", "Signature", "logical_type"]

_NUMERIC = {"integer", "float", "boolean"}


def logical_type(series: pd.Series) -> str:
    """The portable type name of a column: integer, float, boolean, string or datetime."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    return "string"


@dataclass(frozen=True)
class ColumnSpec:
    """One input column."""

    name: str
    type: str


@dataclass(frozen=True)
class Signature:
    """Inputs (ordered columns and types) and the output a model produces."""

    inputs: tuple[ColumnSpec, ...]
    output: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, features: list[str], output: dict[str, Any] | None = None
    ) -> Signature:
        """The signature of a model trained on ``frame[features]``."""
        missing = [c for c in features if c not in frame.columns]
        if missing:
            raise UserInputError(
                f"The training data has no column(s) {missing}; choose features among "
                f"{list(frame.columns)}."
            )
        inputs = tuple(ColumnSpec(c, logical_type(frame[c])) for c in features)
        return cls(inputs=inputs, output=dict(output or {}))

    @property
    def columns(self) -> list[str]:
        return [c.name for c in self.inputs]

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [{"name": c.name, "type": c.type} for c in self.inputs],
            "output": self.output,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Signature:
        inputs = tuple(ColumnSpec(c["name"], c["type"]) for c in data.get("inputs", []))
        return cls(inputs=inputs, output=dict(data.get("output", {})))

    def prepare(self, frame: pd.DataFrame, *, what: str = "The input data") -> pd.DataFrame:
        """``frame`` reduced to the signature's columns, in order, with compatible types.

        Raises ``UserInputError`` naming every missing column, or a column whose
        values cannot be read as the type the model was trained on.
        """
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise UserInputError(
                f"{what} is missing column(s) {missing} that the model needs; it was trained "
                f"on {self.columns}. Add the column(s) or use a model trained without them."
            )
        out = frame[self.columns].copy()
        for spec in self.inputs:
            actual = logical_type(out[spec.name])
            if spec.type in _NUMERIC and actual not in _NUMERIC:
                converted = pd.to_numeric(out[spec.name], errors="coerce")
                bad = converted.isna() & out[spec.name].notna()
                if bad.any():
                    example = out[spec.name][bad].iloc[0]
                    raise UserInputError(
                        f"{what}: column {spec.name!r} must be {spec.type} as in training; "
                        f"got {actual} values such as {example!r}."
                    )
                out[spec.name] = converted
            elif spec.type == "string" and actual != "string":
                out[spec.name] = out[spec.name].astype("str").where(out[spec.name].notna())
        return out
