"""``@pipeline``: a function whose component calls form the DAG.

The pipeline function runs once per run with concrete parameter values, so
ordinary Python (loops, conditions) shapes the graph. Each component call adds
a :class:`StepSpec`; passing one call's result into another draws an edge.
"""

from __future__ import annotations

import graphlib
import inspect
import math
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeAlias, overload

from typing_extensions import ParamSpec

from ctloop.core.errors import PipelineDefinitionError, UserInputError
from ctloop.core.hashing import hash_bytes, hash_source, stable_json
from ctloop.pipeline.artifacts import Artifact
from ctloop.pipeline.building import building, current_builder
from ctloop.pipeline.component import UNTYPED, AnyComponent, ParameterSpec

__all__ = [
    "AnyPipeline",
    "Graph",
    "OutputRef",
    "PipelineDef",
    "StepHandle",
    "StepSpec",
    "check_storable",
    "current_builder",
    "pipeline",
]

P = ParamSpec("P", default=...)



@dataclass(frozen=True)
class OutputRef:
    """One named output of one step."""

    step: str
    output: str
    type: type[Artifact]
    graph_id: int = 0


class StepHandle:
    """What a component call returns inside a pipeline."""

    def __init__(self, spec: StepSpec, graph_id: int) -> None:
        self._spec = spec
        self.name = spec.name
        self.outputs: dict[str, OutputRef] = {
            key: OutputRef(spec.name, key, typ, graph_id)
            for key, typ in spec.component.outputs.items()
        }

    def after(self, *others: StepHandle) -> StepHandle:
        """Run this step only after ``others``, even without data passing between them."""
        for other in others:
            self._spec.after.add(other.name)
        return self

    def __repr__(self) -> str:
        return f"StepHandle({self.name!r})"


@dataclass
class StepSpec:
    """A step in a built graph: the component, its parameter values and input edges."""

    name: str
    component: AnyComponent
    params: dict[str, object]  # checked values, by parameter name
    inputs: dict[str, OutputRef]
    after: set[str] = field(default_factory=set)

    @property
    def upstream(self) -> list[str]:
        """Names of steps this one waits for."""
        return sorted({ref.step for ref in self.inputs.values()} | self.after)


@dataclass
class Graph:
    """A built pipeline: steps in insertion order, checked for cycles and dangling edges."""

    pipeline: str
    version: str
    params: dict[str, object]  # checked values, defaults filled in
    steps: dict[str, StepSpec]

    def order(self) -> list[str]:
        """Step names in a topological order (stable: insertion order among peers)."""
        sorter = graphlib.TopologicalSorter({n: s.upstream for n, s in self.steps.items()})
        try:
            return list(sorter.static_order())
        except graphlib.CycleError as exc:
            cycle = " -> ".join(exc.args[1])
            raise PipelineDefinitionError(
                f"Pipeline {self.pipeline!r} has a cycle: {cycle}. "
                "Remove one of the .after() dependencies that close it."
            ) from None

    def downstream(self, name: str) -> set[str]:
        """All steps that depend on ``name``, directly or not."""
        out: set[str] = set()
        frontier = [name]
        while frontier:
            current = frontier.pop()
            for other, spec in self.steps.items():
                if current in spec.upstream and other not in out:
                    out.add(other)
                    frontier.append(other)
        return out


class _Builder:
    def __init__(self, pipeline_name: str) -> None:
        self.pipeline_name = pipeline_name
        self.steps: dict[str, StepSpec] = {}
        self.id = id(self)

    def add_step(self, comp: AnyComponent, args: tuple[object, ...], kwargs: dict[str, object]
                 ) -> StepHandle:
        if args:
            raise PipelineDefinitionError(
                f"In pipeline {self.pipeline_name!r}, call component {comp.name!r} with "
                "keyword arguments (name=value) so each edge is explicit."
            )
        name = comp.name
        n = 2
        while name in self.steps:
            name = f"{comp.name}-{n}"
            n += 1
        params: dict[str, object] = {}
        inputs: dict[str, OutputRef] = {}
        for key, value in kwargs.items():
            if key in comp.outputs:
                raise PipelineDefinitionError(
                    f"Step {name!r}: {key!r} is an output of {comp.name!r}; outputs are "
                    "created by the engine, do not pass them."
                )
            if key in comp.inputs:
                inputs[key] = self._resolve_input(name, comp, key, value)
            elif key in comp.parameters:
                if isinstance(value, StepHandle | OutputRef):
                    raise PipelineDefinitionError(
                        f"Step {name!r}: parameter {key!r} is a plain value, but got the "
                        "output of another step. Declare it as an Input[...] artifact."
                    )
                params[key] = _check_value(
                    comp.parameters[key], value, f"parameter {key!r} of step {name!r}"
                )
            else:
                known = sorted([*comp.inputs, *comp.parameters])
                raise PipelineDefinitionError(
                    f"Step {name!r}: component {comp.name!r} has no argument {key!r}. "
                    f"Known arguments: {', '.join(known) or 'none'}."
                )
        for key in comp.inputs:
            if key not in inputs and key not in comp.optional_inputs:
                raise PipelineDefinitionError(
                    f"Step {name!r}: input {key!r} ({comp.inputs[key].__name__}) is not "
                    "connected. Pass the output of an earlier step."
                )
        for key, param in comp.parameters.items():
            if key not in params and param.required:
                raise PipelineDefinitionError(
                    f"Step {name!r}: required parameter {key!r} of {comp.name!r} is missing."
                )
        spec = StepSpec(name=name, component=comp, params=params, inputs=inputs)
        self.steps[name] = spec
        return StepHandle(spec, self.id)

    def _resolve_input(self, step: str, comp: AnyComponent, key: str, value: object
                       ) -> OutputRef:
        if isinstance(value, StepHandle):
            if len(value.outputs) != 1:
                names = ", ".join(value.outputs) or "none"
                raise PipelineDefinitionError(
                    f"Step {step!r}: input {key!r} got step {value.name!r}, which has "
                    f"outputs: {names}. Pick one: {value.name}.outputs['NAME']."
                )
            value = next(iter(value.outputs.values()))
        if not isinstance(value, OutputRef):
            raise PipelineDefinitionError(
                f"Step {step!r}: input {key!r} must be the output of an earlier step in this "
                f"pipeline, got {type(value).__name__}."
            )
        if value.graph_id != self.id or value.step not in self.steps:
            raise PipelineDefinitionError(
                f"Step {step!r}: input {key!r} refers to step {value.step!r}, which is not "
                f"part of pipeline {self.pipeline_name!r} (a dangling input)."
            )
        expected = comp.inputs[key]
        if not issubclass(value.type, expected):
            raise PipelineDefinitionError(
                f"Step {step!r}: input {key!r} expects {expected.__name__}, got "
                f"{value.type.__name__} from {value.step}.{value.output}."
            )
        return value


def check_storable(value: object, what: str) -> None:
    """Refuse values every metadata backend cannot store and read back as JSON.

    NaN and infinity have no JSON form (PostgreSQL and MariaDB reject them while
    SQLite accepts them), and integers longer than Python's int-to-text limit
    cannot be written or parsed; both fail here, before anything is recorded.
    """
    if isinstance(value, float) and not math.isfinite(value):
        raise UserInputError(
            f"The {what} is {value!r}, which cannot be stored (JSON has no NaN or infinity). "
            "Pass null (None) or a string such as \"nan\" and convert it in the component."
        )
    if isinstance(value, int) and not isinstance(value, bool):
        limit = sys.get_int_max_str_digits() or 4300
        if value.bit_length() > 4 * limit or _too_long(value):
            raise UserInputError(
                f"The {what} is an integer of about {int(value.bit_length() * 0.30103)} digits; "
                f"parameters are limited to {limit} digits. Pass it as a string or an artifact."
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            check_storable(item, f"{what} (key {key!r})")
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            check_storable(item, what)


def _too_long(value: int) -> bool:
    try:
        str(value)
    except ValueError:
        return True
    return False


def _check_value(spec: ParameterSpec, value: object, what: str) -> object:
    check_storable(value, what)
    if spec.annotation is UNTYPED or spec.annotation is inspect.Parameter.empty:
        return value
    from pydantic import TypeAdapter, ValidationError  # loaded when a value is checked

    try:
        # An annotation read from the function: a type form pydantic knows, or one it
        # refuses with its own error (typing has no static type for "a type form").
        form = typing.cast("type[object]", spec.annotation)
        checked: object = TypeAdapter(form).validate_python(value, strict=False)
        return checked
    except ValidationError as exc:
        rule = _type_name(spec.annotation)
        first = exc.errors()[0]["msg"] if exc.errors() else str(exc)
        raise UserInputError(
            f"The {what} must be {rule}. Got {value!r} ({first})."
        ) from None


def _type_name(annotation: object) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


@dataclass(frozen=True)
class PipelineDef(Generic[P]):
    """A pipeline definition: call :meth:`build` with parameters to get its graph.

    Calling the definition with the pipeline function's own arguments builds the
    graph too, type-checked against the function's signature (``ParamSpec``).
    """

    name: str
    func: Callable[P, object]
    parameters: dict[str, ParameterSpec]
    description: str = ""

    def validate_params(self, raw: Mapping[str, object]) -> dict[str, object]:
        """Defaults filled in and every value checked against its annotation."""
        unknown = sorted(set(raw) - set(self.parameters))
        if unknown:
            known = ", ".join(self.parameters) or "none"
            raise UserInputError(
                f"Pipeline {self.name!r} has no parameter {unknown[0]!r}. Known: {known}."
            )
        values: dict[str, object] = {}
        for key, spec in self.parameters.items():
            if key in raw:
                values[key] = _check_value(spec, raw[key], f"parameter {key!r} of pipeline "
                                           f"{self.name!r}")
            elif spec.required:
                raise UserInputError(
                    f"Pipeline {self.name!r} needs parameter {key!r}: pass --param {key}=VALUE."
                )
            else:
                values[key] = spec.default
        return values

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Graph:
        """The graph for these arguments (as the pipeline function takes them)."""
        bound = inspect.signature(self.func).bind_partial(*args, **kwargs)
        return self.build(dict(bound.arguments))

    def build(self, params: Mapping[str, object] | None = None) -> Graph:
        """Run the pipeline function with ``params`` and return the checked graph."""
        values = self.validate_params(params or {})
        builder = _Builder(self.name)
        func: Callable[..., object] = self.func  # called with the checked values by name
        with building(builder):
            func(**values)
        if not builder.steps:
            raise PipelineDefinitionError(f"Pipeline {self.name!r} has no steps.")
        for spec in builder.steps.values():
            for other in spec.after:
                if other not in builder.steps:
                    raise PipelineDefinitionError(
                        f"Step {spec.name!r} runs after {other!r}, which is not in pipeline "
                        f"{self.name!r}."
                    )
        graph = Graph(self.name, self._version(builder.steps), values, builder.steps)
        graph.order()  # raises on cycles
        return graph

    def _version(self, steps: dict[str, StepSpec]) -> str:
        shape = {
            "source": hash_source(self.func),
            "steps": {
                n: [s.component.name, s.component.version, s.upstream] for n, s in steps.items()
            },
        }
        return hash_bytes(stable_json(shape).encode())[:16]


AnyPipeline: TypeAlias = "PipelineDef[...]"
"""A pipeline whose parameters the holder does not know (a trigger, a loop: they pass
parameters read from ctloop.toml, checked when the pipeline is built)."""


@overload
def pipeline(func: Callable[P, object], /) -> PipelineDef[P]: ...
@overload
def pipeline(*, name: str | None = None) -> Callable[[Callable[P, object]], PipelineDef[P]]: ...
def pipeline(func: Callable[..., object] | None = None, *, name: str | None = None
             ) -> AnyPipeline | Callable[[Callable[..., object]], AnyPipeline]:
    """Declare a pipeline: a function that calls components with keyword arguments."""

    def wrap(f: Callable[..., object]) -> AnyPipeline:
        try:
            hints = typing.get_type_hints(f)
        except Exception:
            hints = dict(getattr(f, "__annotations__", {}))
        params = {
            key: ParameterSpec(key, hints.get(key, UNTYPED), p.default)
            for key, p in inspect.signature(f).parameters.items()
        }
        return PipelineDef(
            name=name or f.__name__, func=f, parameters=params,
            description=inspect.getdoc(f) or "",
        )

    return wrap(func) if func is not None else wrap
