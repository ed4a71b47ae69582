"""The ONNX flavor: any ONNX graph, run by onnxruntime.

This is how PyTorch (``torch.onnx.export``) and TensorFlow/Keras (``tf2onnx``)
models are served, and scikit-learn ones converted by ``skl2onnx``. The graph's
inputs and outputs (names, element types, shapes with -1 for dynamic sizes) are
read from the graph into the signature's tensor specs. A tabular graph — one
``[N, F]`` float input, or one ``[N]``/``[N, 1]`` input per column — also gets
columns, so data frames, v1 rows and the loop's tabular path score it; any graph
answers N-d tensors through ``LoadedModel.predict_tensors``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ctloop.core.errors import UserInputError
from ctloop.core.lazy import lazy_module
from ctloop.core.plugins import require
from ctloop.models.signature import ColumnSpec, Signature, TensorSpec
from ctloop.models.tasks import Task, shaped

if TYPE_CHECKING:
    import onnxruntime as ort  # untyped (ignore_missing_imports): names for the reader
    import pandas as pd

    from ctloop.core.arrays import Cell, Floats, Values
else:
    pd = lazy_module("pandas", globals(), "pd")

__all__ = ["OnnxFlavor", "OnnxModel"]

# onnxruntime's element types as Open Inference Protocol datatypes.
_DATATYPES = {
    "tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(float16)": "FP16",
    "tensor(int8)": "INT8", "tensor(int16)": "INT16", "tensor(int32)": "INT32",
    "tensor(int64)": "INT64", "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32", "tensor(uint64)": "UINT64", "tensor(bool)": "BOOL",
    "tensor(string)": "BYTES",
}
_COLUMN_TYPES = {"FP32": "float", "FP64": "float", "FP16": "float", "BOOL": "boolean",
                 "BYTES": "string"}
_NUMPY = {"FP32": np.float32, "FP64": np.float64, "FP16": np.float16}
# The dtype kinds of typed columns cast to each input type as pandas would (others: the
# frame path, which converts or refuses them); integer inputs take "iu" only.
_FEEDABLE = {"FP32": "iufb", "FP64": "iufb", "FP16": "iufb", "BOOL": "b", "BYTES": "OU"}
# ai.onnx.ml attributes that hold a classifier's labels, in probability-column order.
_CLASS_ATTRIBUTES = ("classlabels_strings", "classlabels_int64s", "classlabels_ints")


def _session(data: bytes) -> ort.InferenceSession:
    ort = require("onnxruntime", "onnx", "Running an ONNX model")
    options = ort.SessionOptions()
    # One thread, no spinning: a loop scores beside other steps and services on shared
    # cores, where spinning thread pools cost far more than they give (as for LightGBM).
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def _spec(node: ort.NodeArg) -> TensorSpec | None:
    datatype = _DATATYPES.get(str(node.type))
    if datatype is None:  # a sequence or map (ZipMap's probabilities): not a tensor
        return None
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in node.shape or ())
    return TensorSpec(str(node.name), datatype, shape)


def _classes(data: bytes) -> list[str | int] | None:
    """The class labels an ai.onnx.ml classifier node (or ZipMap) declares, if any."""
    onnx = require("onnx", "onnx", "Reading an ONNX graph")
    graph = onnx.load_from_string(data).graph
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.name in _CLASS_ATTRIBUTES:
                values = onnx.helper.get_attribute_value(attribute)
                return [v.decode() if isinstance(v, bytes) else int(v) for v in values]
    return None


@dataclass
class OnnxModel:
    """A loaded graph: its bytes, the session and the specs read from it."""

    data: bytes
    session: ort.InferenceSession
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    output_kinds: dict[str, str]  # every output name -> onnxruntime type (maps included)
    classes_: list[str | int] | None = None

    @classmethod
    def from_bytes(cls, data: bytes, *, read_classes: bool = False) -> OnnxModel:
        session = _session(data)
        inputs = tuple(s for s in map(_spec, session.get_inputs()) if s is not None)
        if len(inputs) != len(session.get_inputs()):
            raise UserInputError("The ONNX graph has an input that is not a tensor; "
                                 "ctloop feeds tensors only.")
        outputs = tuple(s for s in map(_spec, session.get_outputs()) if s is not None)
        kinds = {str(o.name): str(o.type) for o in session.get_outputs()}
        return cls(data, session, inputs, outputs, kinds,
                   _classes(data) if read_classes else None)

    @property
    def layout(self) -> str | None:
        """``matrix`` (one [N, F] float input), ``columns`` (one [N] or [N, 1] per column)."""
        if len(self.inputs) == 1 and len(self.inputs[0].shape) == 2 and (
            self.inputs[0].datatype in _NUMPY
        ) and self.inputs[0].shape[1] != 1:
            return "matrix"
        if self.inputs and all(
            len(t.shape) == 1 or (len(t.shape) == 2 and t.shape[1] == 1) for t in self.inputs
        ):
            return "columns"
        return None

    def feeds(self, frame: pd.DataFrame) -> dict[str, Values]:
        """The graph's inputs from a frame already reduced to the signature's columns."""
        if self.layout == "matrix":
            spec = self.inputs[0]
            matrix = frame.to_numpy(dtype=_NUMPY[spec.datatype], na_value=np.nan)
            return {spec.name: np.ascontiguousarray(matrix)}
        out = {}
        for spec in self.inputs:
            values = frame[spec.name]
            if spec.datatype == "BYTES":
                array = values.astype(str).to_numpy(dtype=object)
            else:
                if spec.datatype not in _NUMPY and values.hasnans:
                    raise _cannot_hold_missing(spec, values)
                array = values.to_numpy(dtype=_tensor_dtype(spec.datatype))
            out[spec.name] = array.reshape(-1, 1) if len(spec.shape) == 2 else array
        return out

    def column_feeds(self, columns: Mapping[str, Values]) -> dict[str, Values] | None:
        """:meth:`feeds` straight from typed columns (the serving row path), same arrays.

        None when a column needs the frame path's conversion or error: an object column
        with nulls, floats (with NaN) for an integer input, text for a number.
        """
        if self.layout == "matrix":
            spec = self.inputs[0]
            arrays = list(columns.values())
            if any(a.ndim != 1 or a.dtype.kind not in "iufb" for a in arrays):
                return None
            matrix = np.empty((len(arrays[0]) if arrays else 0, len(arrays)),
                              dtype=_NUMPY[spec.datatype])
            for j, values in enumerate(arrays):
                matrix[:, j] = values
            return {spec.name: matrix}
        out = {}
        for spec in self.inputs:
            values = columns[spec.name]
            if values.ndim != 1 or values.dtype.kind not in _FEEDABLE.get(spec.datatype, "iu"):
                return None
            if spec.datatype == "BYTES":
                if values.dtype.kind == "O" and any(
                        not isinstance(v, str) for v in values.tolist()):
                    return None
                array = values.astype(object)
            else:
                array = np.asarray(values, dtype=_tensor_dtype(spec.datatype))
            out[spec.name] = array.reshape(-1, 1) if len(spec.shape) == 2 else array
        return out

    def answer(self, frame: pd.DataFrame, task: Task) -> Floats:
        """The output the task reads: probabilities for a classifier, values otherwise."""
        return self.answer_feeds(self.feeds(frame), task)

    def answer_feeds(self, feeds: Mapping[str, Values], task: Task) -> Floats:
        """:meth:`answer` for the graph's inputs as :meth:`feeds` makes them."""
        name = self._output_for(task)
        (value,) = self.session.run([name], dict(feeds))
        if isinstance(value, list):  # ZipMap: one {class: probability} per row
            classes = (self.classes_ or sorted(value[0])) if value else []
            return np.array([[row[c] for c in classes] for row in value], dtype=np.float64)
        array = np.asarray(value, dtype=np.float64)
        return array.reshape(len(array)) if array.ndim == 2 and array.shape[1] == 1 else array

    def _output_for(self, task: Task) -> str:
        floats = [o for o in self.outputs if o.datatype in _NUMPY]
        if task != "regression":
            maps = [n for n, kind in self.output_kinds.items() if kind.startswith("seq(map")]
            wide = [o for o in floats if len(o.shape) == 2]
            named = [o for o in wide if "prob" in o.name.lower()]
            for found in (named, wide):
                if found:
                    return found[0].name
            if maps:
                return maps[0]
        if floats:
            return floats[0].name
        raise UserInputError(
            f"The ONNX graph has no float output to read as {task} answers; its outputs are "
            f"{[o.describe() for o in self.outputs]}. Use predict_tensors."
        )

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.outputs]
        values = self.session.run(names, dict(inputs))
        return {n: np.asarray(v) for n, v in zip(names, values, strict=True)}


def _refuse_nan_answers(nulls: Mapping[str, int], rows: int) -> None:
    """NaN answers for rows with missing values: the graph cannot score them, so refuse.

    A graph converted from a model without missing-value support passes NaN through to
    its probabilities (whose likeliest class would then read as the first) or values;
    the rows are refused as scikit-learn refuses them. NaN answers for complete rows
    are the graph's own and are returned as they are.
    """
    if nulls:
        raise UserInputError(
            f"The ONNX model answered NaN for rows with a missing value (null or NaN) in "
            f"column(s) {list(nulls)} (in {max(nulls.values())} of {rows} row(s)): the graph "
            "cannot score a missing value. Send a value in every row, or export a graph that "
            "imputes missing values (an imputer before the model)."
        )


def _cannot_hold_missing(spec: TensorSpec, values: pd.Series[Cell]) -> UserInputError:
    """Why a null cannot reach an integer or boolean input: NumPy would cast it to a value.

    NaN cast to int64 is INT64_MIN and None cast to bool is False; the graph would score
    that value as if it had been sent, so the rows are refused instead.
    """
    missing = int(values.isna().sum())
    kind = "a boolean" if spec.datatype == "BOOL" else "an integer"
    return UserInputError(
        f"Column {spec.name!r} has a missing value (null or NaN) in {missing} of "
        f"{len(values)} row(s), but the ONNX model's input {spec.name!r} is "
        f"{spec.datatype} {list(spec.shape)}: {kind} tensor cannot hold a missing value. "
        "Send a value in every row, or export the model with a float input (FP32) for this "
        "column, where NaN marks a missing value."
    )


def _tensor_dtype(datatype: str) -> np.dtype[np.generic[object]]:
    from ctloop.models.signature import TENSOR_DTYPES

    return TENSOR_DTYPES[datatype]


def _graph_bytes(model: object) -> bytes:
    """The serialized graph from a ModelProto, bytes, a loaded OnnxModel or a .onnx path."""
    if isinstance(model, OnnxModel):
        return model.data
    if isinstance(model, bytes | bytearray):
        return bytes(model)
    if isinstance(model, str | Path):
        path = Path(model)
        if not path.is_file():
            raise UserInputError(f"No ONNX file at {path}.")
        return path.read_bytes()
    if hasattr(model, "SerializeToString"):
        return bytes(model.SerializeToString())
    raise UserInputError(
        f"Cannot save a {type(model).__name__} as ONNX: give an onnx.ModelProto, its bytes "
        "or the path of a .onnx file."
    )


class OnnxFlavor:
    """Any ONNX graph in its own file (``model.onnx``), run by onnxruntime on the CPU."""

    name: ClassVar[str] = "onnx"
    packages: ClassVar[tuple[str, ...]] = ("onnxruntime", "numpy")
    file_name: ClassVar[str] = "model.onnx"

    def describe(self, model: object, signature: Signature) -> tuple[OnnxModel, Signature]:
        """The graph as an :class:`OnnxModel` and the signature completed from it.

        Tensor specs always come from the graph. A tabular graph keeps the given columns
        when they fit its input (a ``--sample``), else gets columns ``x0..x{F-1}`` (one
        matrix) or the inputs' names (one input per column).
        """
        loaded = OnnxModel.from_bytes(_graph_bytes(model), read_classes=True)
        columns = _columns(loaded, signature)
        task = signature.task
        if task is None and loaded.classes_ is None:
            task = "regression"  # a graph without class labels answers values as they are
        return loaded, replace(
            signature, inputs=columns, tensors=loaded.inputs, tensor_outputs=loaded.outputs,
            task=task,
        )

    def save(self, model: object, path: Path) -> None:
        path.write_bytes(_graph_bytes(model))

    def load(self, data: bytes) -> OnnxModel:
        return OnnxModel.from_bytes(data, read_classes=True)

    def predict(self, model: OnnxModel, frame: pd.DataFrame, task: Task) -> Floats:
        out = shaped(model.answer(frame, task), task)
        if np.isnan(out).any():
            nulls = {str(c): int(n) for c, n in frame.isna().sum().items() if n}
            _refuse_nan_answers(nulls, len(frame))
        return out

    def predict_tensors(
        self, model: OnnxModel, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        return model.run(inputs)

    def columns_predictor(
        self, model: OnnxModel, signature: Signature, task: Task
    ) -> Callable[[Mapping[str, Values]], Floats | None] | None:
        """:meth:`predict` on typed columns without a frame (``OnnxModel.column_feeds``)."""
        if model.layout is None or not signature.inputs:
            return None
        if model.layout == "columns" and {t.name for t in model.inputs} != set(
                signature.columns):
            return None
        names = signature.columns

        def predict(columns: Mapping[str, Values]) -> Floats | None:
            feeds = model.column_feeds({name: columns[name] for name in names})
            if feeds is None:
                return None
            out = shaped(model.answer_feeds(feeds, task), task)
            if np.isnan(out).any():
                counts = {n: int(np.isnan(columns[n]).sum()) for n in names
                          if columns[n].dtype.kind == "f"}
                _refuse_nan_answers({n: k for n, k in counts.items() if k}, len(out))
            return out

        return predict


def _columns(model: OnnxModel, signature: Signature) -> tuple[ColumnSpec, ...]:
    layout = model.layout
    if layout == "columns":
        given = {c.name: c for c in signature.inputs}
        return tuple(
            given.get(t.name) or ColumnSpec(t.name, _COLUMN_TYPES.get(t.datatype, "integer"),
                                            nullable=t.datatype in _NUMPY)
            for t in model.inputs
        )
    if layout != "matrix":
        return ()
    width = model.inputs[0].shape[1]
    if signature.inputs:
        if width != -1 and len(signature.inputs) != width:
            raise UserInputError(
                f"The ONNX graph's input {model.inputs[0].describe()} takes {width} features; "
                f"the sample has {len(signature.inputs)} columns {signature.columns}."
            )
        strings = [c.name for c in signature.inputs if c.type == "string"]
        if strings:
            raise UserInputError(
                f"The ONNX graph's input {model.inputs[0].describe()} takes numbers; the "
                f"sample's column(s) {strings} hold strings."
            )
        return signature.inputs
    if width == -1:
        raise UserInputError(
            f"The ONNX graph's input {model.inputs[0].describe()} does not say how many "
            "features it takes; give a sample (--sample) with its columns."
        )
    return tuple(ColumnSpec(f"x{i}", "float") for i in range(width))
