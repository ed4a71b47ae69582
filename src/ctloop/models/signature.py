"""Model signatures: which columns a model reads, of which types, and what it returns.

A signature is taken from the training frame, stored next to the model and
checked before every prediction, so a frame missing a column fails with the
column's name instead of a library error deep inside ``predict``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Required, TypedDict

import numpy as np

from ctloop.core.errors import IntegrityError, UserInputError
from ctloop.core.jsontypes import JSONObject, JSONValue, as_list, as_object
from ctloop.core.lazy import lazy_module

if TYPE_CHECKING:
    import numpy.typing as npt
    import pandas as pd

    from ctloop.core.arrays import Cell, Values
else:
    pd = lazy_module("pandas", globals(), "pd")

__all__ = ["TENSOR_DTYPES", "ColumnSpec", "InputLayout", "Signature", "SignatureJSON",
           "TensorSpec", "input_layout", "logical_type"]

# Open Inference Protocol datatypes and the NumPy dtype each arrives as.
TENSOR_DTYPES: dict[str, np.dtype[np.generic[object]]] = {
    "BOOL": np.dtype(bool),
    "INT8": np.dtype("<i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}

_NUMERIC = {"integer", "float", "boolean"}


def logical_type(series: pd.Series[Cell]) -> str:
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


class ColumnJSON(TypedDict):
    """A :class:`ColumnSpec` as the manifest keeps it."""

    name: str
    type: str
    nullable: bool
    finite: bool


class SignatureJSON(TypedDict, total=False):
    """A :class:`Signature` as the manifest keeps it (``signature``): what ``to_dict`` writes."""

    inputs: Required[list[ColumnJSON]]
    output: Required[dict[str, JSONValue]]
    task: str
    classes: list[str | int]
    tensors: list[dict[str, JSONValue]]  # TensorSpec.to_dict (model metadata lists them too)
    tensor_outputs: list[dict[str, JSONValue]]


@dataclass(frozen=True)
class ColumnSpec:
    """One input column: its type, and whether training saw nulls or infinities in it.

    ``nullable``: training had missing values in the column, or the user declared it
    (``fit_model(nullable=...)``). Signatures saved before ``nullable``/``finite``
    existed read back as nullable and finite (nulls allowed, infinities refused), and a
    stored ``nullable`` keeps its meaning: models saved when boosted trees were recorded
    nullable in every column still accept nulls everywhere.
    """

    name: str
    type: str
    nullable: bool = True
    finite: bool = True


@dataclass(frozen=True)
class InputLayout:
    """What the request path reads of a signature's input columns on every request."""

    names: tuple[str, ...]
    integers: tuple[int, ...] | None  # positions of the integer inputs; None: not all numbers


def input_layout(specs: Sequence[ColumnSpec]) -> InputLayout:
    """The :class:`InputLayout` of ``specs`` (a signature's ``inputs``), kept per signature
    and found by identity: hashing the specs would cost more than building it."""
    known = _LAYOUTS.get(id(specs))
    if known is not None and known[0] is specs:
        return known[1]
    integers = None
    if specs and all(s.type in ("integer", "float") for s in specs):
        integers = tuple(j for j, s in enumerate(specs) if s.type == "integer")
    layout = InputLayout(tuple(s.name for s in specs), integers)
    if len(_LAYOUTS) >= 256:  # versions come and go with hot swaps: keep the latest few
        _LAYOUTS.clear()
    _LAYOUTS[id(specs)] = (specs, layout)  # holds the specs: their id cannot be reused
    return layout


_LAYOUTS: dict[int, tuple[Sequence[ColumnSpec], InputLayout]] = {}


@dataclass(frozen=True)
class TensorSpec:
    """One named N-d input or output of a tensor model (ONNX): datatype and shape.

    ``datatype`` is an Open Inference Protocol name (FP32, INT64, BYTES, ...); ``shape``
    holds -1 for a dynamic dimension (the batch, usually the first).
    """

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, JSONValue]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: JSONObject) -> TensorSpec:
        return cls(str(data["name"]), str(data["datatype"]), _dimensions(data["shape"]))

    def describe(self) -> str:
        """``name FP32 [-1, 3, 32, 32]``, as errors name the expected spec."""
        return f"{self.name} {self.datatype} {list(self.shape)}"

    def check(self, value: npt.ArrayLike, *, what: str = "The input") -> Values:
        """``value`` if its datatype and shape fit this spec, else one line naming both.

        -1 matches any size; strings (``U``/``S``) are accepted for BYTES as objects.
        """
        got = np.asarray(value)
        wanted = TENSOR_DTYPES.get(self.datatype)
        if self.datatype == "BYTES" and got.dtype.kind in "USO":
            got = got.astype(object, copy=False)
        elif wanted is not None and got.dtype != wanted:
            raise UserInputError(
                f"{what} {self.name!r} must be {self.describe()}; got datatype "
                f"{_datatype_name(got.dtype)} with shape {list(got.shape)}."
            )
        fits = got.ndim == len(self.shape) and all(
            want in (-1, have) for want, have in zip(self.shape, got.shape, strict=True)
        )
        if not fits:
            raise UserInputError(
                f"{what} {self.name!r} must be {self.describe()} (-1: any size); got shape "
                f"{list(got.shape)}."
            )
        return got


@dataclass(frozen=True)
class Signature:
    """Inputs (ordered columns and types) and the output a model produces.

    ``task`` is binary, multiclass or regression (None for signatures saved before tasks
    were recorded: read as binary for a probability output, regression otherwise);
    ``classes`` are the class labels in the order of the model's probability columns;
    ``tensors``/``tensor_outputs`` describe a tensor model's inputs and outputs, beside or
    instead of the tabular columns.
    """

    inputs: tuple[ColumnSpec, ...]
    output: dict[str, JSONValue] = field(default_factory=dict)
    task: str | None = None
    classes: tuple[str | int, ...] | None = None
    tensors: tuple[TensorSpec, ...] = ()
    tensor_outputs: tuple[TensorSpec, ...] = ()

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        features: list[str],
        output: JSONObject | None = None,
        *,
        nullable: Collection[str] = (),
    ) -> Signature:
        """The signature of a model trained on ``frame[features]``.

        A column is nullable when the training frame has missing values in it (every
        learner ``fit_model`` trains scores them: boosted trees natively, the others
        behind an imputer), or when it is named in ``nullable``: the columns the user
        declares may be missing at serving time although training never saw a gap
        (boosted trees learn a default branch for every split). Every other column
        refuses nulls, at the service and in ``ctloop predict`` alike.
        """
        missing = [c for c in features if c not in frame.columns]
        if missing:
            raise UserInputError(
                f"The training data has no column(s) {missing}; choose features among "
                f"{list(frame.columns)}."
            )
        declared = [nullable] if isinstance(nullable, str) else list(nullable)
        unknown = [c for c in declared if c not in features]
        if unknown:
            raise UserInputError(
                f"The 'nullable' column(s) {unknown} are not features of the model; "
                f"choose among {features}."
            )
        inputs = tuple(_spec_of(c, frame[c], declared=c in declared) for c in features)
        return cls(inputs=inputs, output=dict(output or {}))

    @property
    def columns(self) -> list[str]:
        return [c.name for c in self.inputs]

    def to_dict(self) -> SignatureJSON:
        data: SignatureJSON = {
            "inputs": [
                {"name": c.name, "type": c.type, "nullable": c.nullable, "finite": c.finite}
                for c in self.inputs
            ],
            "output": self.output,
        }
        if self.task is not None:
            data["task"] = self.task
        if self.classes is not None:
            data["classes"] = list(self.classes)
        if self.tensors:
            data["tensors"] = [t.to_dict() for t in self.tensors]
        if self.tensor_outputs:
            data["tensor_outputs"] = [t.to_dict() for t in self.tensor_outputs]
        return data

    @classmethod
    def from_dict(cls, data: JSONObject) -> Signature:
        """A stored signature (the manifest's, a registry record's), old ones included."""
        from ctloop.models.tasks import class_label

        inputs = tuple(
            ColumnSpec(str(c["name"]), str(c["type"]), bool(c.get("nullable", True)),
                       bool(c.get("finite", True)))
            for c in map(as_object, as_list(data.get("inputs")))
        )
        classes = data.get("classes")
        task = data.get("task")
        return cls(
            inputs=inputs,
            output=dict(as_object(data.get("output"))),
            task=task if isinstance(task, str) else None,
            classes=None if classes is None else tuple(map(class_label, as_list(classes))),
            tensors=tuple(TensorSpec.from_dict(as_object(t))
                          for t in as_list(data.get("tensors"))),
            tensor_outputs=tuple(TensorSpec.from_dict(as_object(t))
                                 for t in as_list(data.get("tensor_outputs"))),
        )

    def check_tensors(
        self, inputs: Mapping[str, npt.ArrayLike], *, what: str = "The input"
    ) -> dict[str, Values]:
        """The tensor inputs in signature order, each checked against its spec.

        A missing or unknown input, a wrong datatype, rank or fixed size raises
        ``UserInputError`` naming the input and the spec it must meet.
        """
        expected = [t.describe() for t in self.tensors]
        missing = [t.name for t in self.tensors if t.name not in inputs]
        unknown = sorted(set(inputs) - {t.name for t in self.tensors})
        if missing or unknown:
            wrong = f"is missing {missing}" if missing else f"has unknown input(s) {unknown}"
            raise UserInputError(f"{what} {wrong}; the model takes {expected}.")
        return {t.name: t.check(inputs[t.name], what=what) for t in self.tensors}

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

    def conform(
        self,
        columns: Mapping[str, Sequence[object] | Values],
        *,
        coerce: bool = False,
        allow_nulls: bool = False,
        lenient: Collection[str] = (),
        what: str = "The input data",
    ) -> dict[str, Values]:
        """One typed array per signature column, checked strictly against the signature.

        Serving's check of request values: a string for an integer column,
        a number for a string column, a nested value, a null in a column that
        was never null in training or an infinity in a finite one raises
        ``UserInputError`` naming the column and an offending value.
        ``coerce`` accepts values that convert cleanly ("44" for an integer);
        ``allow_nulls`` accepts nulls everywhere. Integer columns come back as
        int64 (float64 when they hold nulls), floats as float64, booleans as
        bool (object with nulls), strings as object arrays, datetimes as
        datetime64[ns]. Columns in ``lenient`` (values the service looked up
        itself) are coerced and may hold nulls.
        """
        missing = [c for c in self.columns if c not in columns]
        if missing:
            raise UserInputError(
                f"{what} is missing column(s) {missing} that the model needs; it reads "
                f"{self.columns}."
            )
        return {
            spec.name: _conform(
                spec,
                columns[spec.name],
                coerce or spec.name in lenient,
                allow_nulls or spec.name in lenient,
                what,
            )
            for spec in self.inputs
        }


def _dimensions(value: JSONValue) -> tuple[int, ...]:
    """A stored tensor shape; anything but whole numbers is a damaged signature."""
    shape = []
    for d in as_list(value):
        if isinstance(d, bool) or not isinstance(d, int | float) or d != int(d):
            raise IntegrityError(f"A tensor shape must hold whole numbers; got {value!r}.")
        shape.append(int(d))
    return tuple(shape)


def _datatype_name(dtype: np.dtype[np.generic[object]]) -> str:
    for name, known in TENSOR_DTYPES.items():
        if known == dtype:
            return name
    return str(dtype)


def _spec_of(name: str, series: pd.Series[Cell], *, declared: bool) -> ColumnSpec:
    """What training saw in one column: its type, any null, any infinity."""
    kind = logical_type(series)
    finite = True
    if kind == "float":
        finite = not bool(np.isinf(series.to_numpy(dtype=float, na_value=np.nan)).any())
    return ColumnSpec(name, kind, declared or bool(series.isna().any()), finite)


# --- strict conversion of request values ----------------------------------------------------

_NONE = type(None)
_ALLOWED: dict[str, frozenset[type]] = {
    "integer": frozenset({int, float}),  # floats only when integral (44.0)
    "float": frozenset({int, float}),
    "boolean": frozenset({bool}),
    "string": frozenset({str}),
    "datetime": frozenset({str}),
}
_KINDS: dict[str, str] = {"integer": "iuf", "float": "iuf", "boolean": "b", "string": "OUS",
                          "datetime": "OUSM"}


def _bad(spec: ColumnSpec, what: str, value: object, why: str = "") -> UserInputError:
    got = type(value).__name__ if not isinstance(value, np.generic) else value.dtype.name
    hint = why or (
        f"send {spec.type} values (or set coerce_types = true in [ctloop.serving] to convert "
        "values that convert cleanly)"
    )
    return UserInputError(
        f"{what}: column {spec.name!r} must be {spec.type} as the model's signature says; "
        f"got {got} values such as {value!r}: {hint}."
    )


def _conform(
    spec: ColumnSpec,
    values: Sequence[object] | Values,
    coerce: bool,
    allow_nulls: bool,
    what: str,
) -> Values:
    if isinstance(values, np.ndarray):
        return _conform_array(spec, values, coerce, allow_nulls, what)
    types = set(map(type, values))
    for nested in (dict, list):
        if nested in types:
            example = next(v for v in values if isinstance(v, nested))
            raise _bad(spec, what, example, "each value must be a single scalar, not nested")
    has_null = _NONE in types
    types.discard(_NONE)
    if has_null and not (spec.nullable or allow_nulls):
        raise UserInputError(
            f"{what}: column {spec.name!r} has nulls, but it was never null in training; "
            "send a value (or set allow_nulls = true in [ctloop.serving])."
        )
    unexpected = types - _ALLOWED.get(spec.type, frozenset())
    if unexpected and not coerce:
        raise _bad(spec, what, next(v for v in values if type(v) in unexpected))
    if spec.type in ("integer", "float"):
        return _numeric(spec, values, types, has_null, what)
    if spec.type == "boolean":
        if unexpected:  # coercing: "true"/"false", 0/1
            return _coerce_bool(spec, values, what)
        return np.array(values, dtype=object if has_null else bool)
    if spec.type == "datetime":
        return _datetimes(spec, values, what)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    if unexpected:  # coercing numbers to text
        mask = np.array([v is not None for v in values], dtype=bool)
        out[mask] = out[mask].astype(str)
    return out


def _numeric(
    spec: ColumnSpec, values: Sequence[object], types: set[type], has_null: bool, what: str
) -> Values:
    if types <= {int} and not has_null and spec.type == "integer":
        try:
            return np.array(values, dtype=np.int64)
        except OverflowError:
            raise _bad(spec, what, _largest(values), "it is out of the int64 range") from None
    if types <= {int, float}:
        try:
            out = np.array(values, dtype=np.float64)
        except OverflowError:
            raise _bad(spec, what, _largest(values), "it is out of range") from None
    else:  # coercing strings and booleans
        converted = pd.to_numeric(pd.Series(values, dtype=object),  # type: ignore[arg-type]  # pandas-stubs wants str values with dtype=object
                                  errors="coerce")
        out = converted.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isnan(out) & np.array([v is not None for v in values], dtype=bool)
        if bad.any():
            raise _bad(spec, what, values[int(np.flatnonzero(bad)[0])], "it is not a number")
    return _check_numbers(spec, out, what)


def _largest(values: Sequence[object]) -> float:
    """The number furthest from 0 (the one out of range), for the error."""
    return max((v for v in values if isinstance(v, int | float)), key=abs)


def _check_numbers(spec: ColumnSpec, out: Values, what: str) -> Values:
    if spec.finite and out.dtype.kind == "f":
        infinite = np.isinf(out)
        if infinite.any():
            raise _bad(
                spec, what, float(out[infinite][0]),
                "it was always finite in training; send a finite number or null",
            )
    if spec.type == "integer" and out.dtype.kind == "f":
        finite = out[np.isfinite(out)]
        fractional = finite != np.floor(finite)
        if fractional.any():
            raise _bad(spec, what, float(finite[fractional][0]), "it is not a whole number")
        outside = np.abs(finite) >= 2.0**63  # JSON integers past 64 bits arrive as floats
        if outside.any():
            raise _bad(spec, what, float(finite[outside][0]), "it is out of the int64 range")
    return out


def _coerce_bool(spec: ColumnSpec, values: Sequence[object], what: str) -> Values:
    table = {True: True, False: False, "true": True, "false": False,
             "1": True, "0": False, None: None}
    out = []
    for v in values:
        key = v.lower() if isinstance(v, str) else v
        if key not in table:
            raise _bad(spec, what, v, "it is not true/false")
        out.append(table[key])
    return np.array(out, dtype=object if None in out else bool)


def _datetimes(spec: ColumnSpec, values: Sequence[object], what: str) -> Values:
    parsed = pd.to_datetime(pd.Series(values, dtype=object),  # type: ignore[arg-type]  # as above
                            errors="coerce", utc=True)
    bad = parsed.isna().to_numpy() & np.array([v is not None for v in values], dtype=bool)
    if bad.any():
        example = values[int(np.flatnonzero(bad)[0])]
        raise _bad(spec, what, example, "it is not an ISO timestamp")
    return np.asarray(parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]"))


def _conform_array(
    spec: ColumnSpec, values: Values, coerce: bool, allow_nulls: bool, what: str
) -> Values:
    """A typed tensor (Open Inference Protocol) checked by dtype, not value by value."""
    if values.ndim != 1:
        raise _bad(spec, what, values.shape, "each value must be a single scalar, not nested")
    kind = values.dtype.kind
    if kind == "O" or (kind in "US" and spec.type not in ("string", "datetime")):
        return _conform(spec, values.tolist(), coerce, allow_nulls, what)
    if kind not in _KINDS.get(spec.type, "") and not coerce:
        raise _bad(spec, what, values[0] if len(values) else values.dtype.name)
    if spec.type in ("integer", "float"):
        return _numeric_array(spec, values, allow_nulls, what)
    if spec.type == "boolean":
        return values.astype(bool)
    if kind == "S":
        return np.array([v.decode("utf-8", "replace") for v in values.tolist()], dtype=object)
    if spec.type == "datetime":
        return _datetimes(spec, values.astype(str).tolist(), what)
    return values.astype(object)


def _numeric_array(
    spec: ColumnSpec, values: Values, allow_nulls: bool, what: str
) -> Values:
    """A typed tensor for an integer or float column: booleans as 0/1, NaN only where the
    column may be null, unsigned values within int64, floats checked as JSON numbers are."""
    kind = values.dtype.kind
    if kind == "b":
        values = values.astype(np.int64)
    if kind == "f" and np.isnan(values).any() and not (spec.nullable or allow_nulls):
        raise UserInputError(
            f"{what}: column {spec.name!r} has NaN values, but it was never null in "
            "training; send a value (or set allow_nulls = true in [ctloop.serving])."
        )
    if kind == "u" and len(values) and int(values.max()) > np.iinfo(np.int64).max:
        raise _bad(spec, what, int(values.max()), "it is out of the int64 range")
    if kind in "iu" and spec.type == "integer":
        return values.astype(np.int64, copy=False)
    return _check_numbers(spec, values.astype(np.float64, copy=False), what)
