"""``@component``: a Python function (or a command line) as a pipeline step.

The decorator reads the signature once and returns a frozen
:class:`ComponentDef`. Called inside a ``@pipeline`` function it adds a step
to the graph being built and returns a :class:`StepHandle`; called anywhere
else it simply runs the function, so components stay unit-testable.

Typing: ``ComponentDef[P, R]`` keeps the function's signature (``ParamSpec``),
so a direct call is checked like a call of the function and returns ``R``, and
``@component(...)`` options are checked too. A call inside a pipeline (outputs
left out, step handles for inputs) matches the second ``__call__`` overload and
gives a ``StepHandle``.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, overload

from typing_extensions import ParamSpec, TypeVar

from ctloop.core.errors import PipelineDefinitionError
from ctloop.core.hashing import hash_bytes, hash_source, stable_json
from ctloop.pipeline.artifacts import Artifact, artifact_class

if TYPE_CHECKING:
    from ctloop.pipeline.dsl import StepHandle

__all__ = ["UNTYPED", "AnyComponent", "ComponentDef", "ParameterSpec", "command_component",
           "component", "component_signature", "describe_component"]

P = ParamSpec("P", default=...)
R = TypeVar("R", covariant=True, default=object)

_NO_DEFAULT = inspect.Parameter.empty
UNTYPED: object = Any  # the annotation of an argument that has none: any value goes


@dataclass(frozen=True)
class ParameterSpec:
    """A plain (non-artifact) argument of a component or pipeline."""

    name: str
    annotation: object = UNTYPED  # a type, a typing form, or a string left unresolved
    default: object = _NO_DEFAULT

    @property
    def required(self) -> bool:
        return self.default is _NO_DEFAULT


@dataclass(frozen=True)
class ComponentDef(Generic[P, R]):
    """A component: what it reads, writes and takes, and how to run it."""

    name: str
    version: str
    func: Callable[P, R] | None = field(compare=False)
    inputs: dict[str, type[Artifact]] = field(default_factory=dict)
    outputs: dict[str, type[Artifact]] = field(default_factory=dict)
    parameters: dict[str, ParameterSpec] = field(default_factory=dict)
    optional_inputs: frozenset[str] = frozenset()
    retries: int = 0
    retry_backoff: float = 1.0
    cache: bool = True
    requirements: tuple[str, ...] = ()
    resources: dict[str, object] = field(default_factory=dict)
    command: tuple[str, ...] | None = None
    module: str = ""
    qualname: str = ""
    source_file: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        # help(component) shows this component, not the ComponentDef class.
        object.__setattr__(self, "__doc__", describe_component(self))

    def __repr__(self) -> str:
        return f"<component {self.name!r} version {self.version}>"

    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...
    @overload
    def __call__(self, **kwargs: object) -> StepHandle: ...
    def __call__(self, *args: object, **kwargs: object) -> object:
        """Inside a pipeline: add a step and return its handle. Elsewhere: run the function."""
        from ctloop.pipeline.building import current_builder

        builder = current_builder()
        if builder is not None:
            return builder.add_step(self, args, kwargs)
        if self.func is None:
            raise PipelineDefinitionError(
                f"Component {self.name!r} is a command line; it runs only inside a pipeline."
            )
        func: Callable[..., object] = self.func  # the caller's arguments, checked by P
        return func(*args, **kwargs)

    def with_options(self, **changes: object) -> ComponentDef[P, R]:
        """A copy with other options (``name``, ``retries``, ``cache``, ``resources`` ...).

        The options are checked as ``@component`` checks them; an unknown option is an
        error that lists the known ones.
        """
        known = {f.name for f in dataclasses.fields(self)} - _FIXED_FIELDS
        unknown = sorted(set(changes) - known)
        if unknown:
            raise PipelineDefinitionError(
                f"Component {self.name!r} has no option {unknown[0]!r}. "
                f"Known options: {', '.join(sorted(known))}."
            )
        copy = _replace(self, changes)
        if not isinstance(copy.name, str) or not copy.name.strip():
            raise PipelineDefinitionError(
                f"The 'name' option of component {self.name!r} must be a non-empty string."
            )
        _validate_options(copy.name, copy.retries, copy.retry_backoff)
        if not isinstance(copy.cache, bool):
            raise PipelineDefinitionError(
                f"The 'cache' option of component {copy.name!r} must be True or False. "
                f"Got {copy.cache!r}."
            )
        return dataclasses.replace(copy, requirements=tuple(copy.requirements),
                                   resources=dict(copy.resources))

    @property
    def ref(self) -> str:
        """``module:qualname``, how a worker process finds the function."""
        return f"{self.module}:{self.qualname}"


AnyComponent: TypeAlias = "ComponentDef[..., object]"
"""A component whose parameters the holder does not know (the builder, the engine, the
runners: they pass a step's values by name, checked when the pipeline was built)."""


def component_signature(comp: AnyComponent) -> str:
    """``name(arg: Type, ... = default) -> Return`` as written in the source (docs quote it)."""
    if comp.func is None:
        args = [f"{k}: {t.__name__}" for k, t in comp.inputs.items()]
        args += [f"{k}: Output[{t.__name__}]" for k, t in comp.outputs.items()]
        args += [k if p.required else f"{k}={p.default!r}" for k, p in comp.parameters.items()]
        return f"{comp.name}({', '.join(args)})"

    def text(annotation: object) -> str:
        if annotation is inspect.Parameter.empty:
            return ""
        if isinstance(annotation, str):
            return annotation
        return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")

    signature = inspect.signature(comp.func)
    parts = []
    for param in signature.parameters.values():
        part = param.name + (f": {text(param.annotation)}" if text(param.annotation) else "")
        if param.default is not inspect.Parameter.empty:
            part += f" = {param.default!r}"
        parts.append(part)
    returns = text(signature.return_annotation)
    return f"{comp.name}({', '.join(parts)})" + (f" -> {returns}" if returns else "")


def describe_component(comp: AnyComponent) -> str:
    """The help text of a component: its docstring, then its inputs, outputs and parameters."""
    lines = [component_signature(comp), "", comp.description or f"Component {comp.name!r}.", ""]

    def kind(t: type[Artifact]) -> str:
        return t.__name__

    if comp.inputs:
        lines.append("Inputs (connect the output of an earlier step):")
        lines += [f"    {k}: {kind(t)}" + (" (optional)" if k in comp.optional_inputs else "")
                  for k, t in comp.inputs.items()]
    if comp.outputs:
        lines.append("Outputs (created by the engine; do not pass them):")
        lines += [f"    {k}: {kind(t)}" for k, t in comp.outputs.items()]
    if comp.parameters:
        lines.append("Parameters:")
        for key, spec in comp.parameters.items():
            annotation = spec.annotation
            text = annotation if isinstance(annotation, str) else (
                annotation.__name__ if isinstance(annotation, type) and annotation is not UNTYPED
                else "Any" if annotation is UNTYPED else str(annotation).replace("typing.", ""))
            default = " (required)" if spec.required else f" = {spec.default!r}"
            lines.append(f"    {key}: {text}{default}")
    options = [f"version {comp.version}", f"retries {comp.retries}",
               f"cache {'on' if comp.cache else 'off'}"]
    if comp.requirements:
        options.append(f"requirements {list(comp.requirements)}")
    lines += ["Options: " + ", ".join(options)]
    return "\n".join(lines)


# What a call reads from the function itself; with_options cannot change it.
_FIXED_FIELDS = frozenset({"func", "inputs", "outputs", "parameters", "optional_inputs",
                           "module", "qualname", "source_file"})


def _validate_options(name: str, retries: int, retry_backoff: float) -> None:
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise PipelineDefinitionError(
            f"The 'retries' option of component {name!r} must be an int >= 0. Got {retries!r}."
        )
    if not isinstance(retry_backoff, int | float) or isinstance(retry_backoff, bool) \
            or retry_backoff < 0:
        raise PipelineDefinitionError(
            f"The 'retry_backoff' option of component {name!r} must be >= 0. "
            f"Got {retry_backoff!r}."
        )


def _make(
    func: Callable[P, R],
    *,
    name: str | None,
    version: str | None,
    retries: int,
    retry_backoff: float,
    cache: bool,
    requirements: Sequence[str],
    resources: Mapping[str, object] | None,
) -> ComponentDef[P, R]:
    comp_name = name or func.__name__
    _validate_options(comp_name, retries, retry_backoff)
    try:
        hints = typing.get_type_hints(func, include_extras=True)  # keep Input/Output roles
    except Exception:  # unresolved forward references: fall back to raw annotations
        hints = dict(getattr(func, "__annotations__", {}))
    inputs: dict[str, type[Artifact]] = {}
    outputs: dict[str, type[Artifact]] = {}
    params: dict[str, ParameterSpec] = {}
    optional: set[str] = set()
    for pname, p in inspect.signature(func).parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise PipelineDefinitionError(
                f"Component {comp_name!r} takes *{pname}; components need named arguments."
            )
        annotation: object = hints.get(pname, UNTYPED)
        try:
            kind = artifact_class(_strip_optional(annotation))
        except TypeError as exc:
            raise PipelineDefinitionError(
                f"Component {comp_name!r}, argument {pname!r}: {exc}."
            ) from None
        if kind is None:
            params[pname] = ParameterSpec(pname, annotation, p.default)
        elif kind[0] == "input":
            inputs[pname] = kind[1]
            if p.default is None:
                optional.add(pname)
        else:
            outputs[pname] = kind[1]
    return ComponentDef(
        name=comp_name,
        version=version or hash_source(func),
        func=func,
        inputs=inputs,
        outputs=outputs,
        parameters=params,
        optional_inputs=frozenset(optional),
        retries=retries,
        retry_backoff=retry_backoff,
        cache=cache,
        requirements=tuple(requirements),
        resources=dict(resources or {}),
        module=func.__module__,
        qualname=func.__qualname__,
        source_file=inspect.getsourcefile(func) or "",
        description=inspect.getdoc(func) or "",
    )


def _replace(comp: ComponentDef[P, R], changes: Mapping[str, object]) -> ComponentDef[P, R]:
    """``dataclasses.replace`` with options named at run time (``with_options`` checks the
    names before and the values after)."""
    replace: Callable[..., ComponentDef[P, R]] = dataclasses.replace
    return replace(comp, **changes)


def _strip_optional(annotation: object) -> object:
    """``Dataset | None`` -> ``Dataset`` (an optional input)."""
    args = typing.get_args(annotation)
    if args and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


@overload
def component(func: Callable[P, R], /) -> ComponentDef[P, R]: ...
@overload
def component(
    *,
    name: str | None = None,
    version: str | None = None,
    retries: int = 0,
    retry_backoff: float = 1.0,
    cache: bool = True,
    requirements: Sequence[str] = (),
    resources: Mapping[str, object] | None = None,
) -> Callable[[Callable[P, R]], ComponentDef[P, R]]: ...
def component(
    func: Callable[..., object] | None = None,
    *,
    name: str | None = None,
    version: str | None = None,
    retries: int = 0,
    retry_backoff: float = 1.0,
    cache: bool = True,
    requirements: Sequence[str] = (),
    resources: Mapping[str, object] | None = None,
) -> ComponentDef[..., object] | Callable[[Callable[..., object]], ComponentDef[..., object]]:
    """Turn a function into a pipeline component.

    Args:
        name: step name (default: the function name).
        version: code version for cache keys (default: a hash of the source).
        retries: how many times to retry a failing step.
        retry_backoff: seconds before the first retry, doubled each time.
        cache: reuse outputs of an earlier identical step.
        requirements: pip requirements; the subprocess runner gives the step its
            own cached virtual environment with them installed.
        resources: e.g. ``{"cpus": 2, "memory": "4GB"}`` for distributed runners.
    """

    def wrap(f: Callable[..., object]) -> ComponentDef[..., object]:
        return _make(
            f,
            name=name,
            version=version,
            retries=retries,
            retry_backoff=retry_backoff,
            cache=cache,
            requirements=requirements,
            resources=resources,
        )

    return wrap(func) if func is not None else wrap


def command_component(
    name: str,
    command: Sequence[str],
    *,
    inputs: dict[str, type[Artifact]] | None = None,
    outputs: dict[str, type[Artifact]] | None = None,
    parameters: Mapping[str, object] | None = None,
    version: str | None = None,
    retries: int = 0,
    retry_backoff: float = 1.0,
    cache: bool = True,
    resources: Mapping[str, object] | None = None,
) -> ComponentDef:
    """A component that runs a command line in any language.

    Placeholders in ``command`` are replaced by paths and values:
    ``{inputs.NAME}``, ``{outputs.NAME}``, ``{params.NAME}``. ``parameters``
    maps names to defaults (``...`` for required).
    """
    if not command:
        raise PipelineDefinitionError(f"Command component {name!r} has an empty command.")
    _validate_options(name, retries, retry_backoff)
    params = {
        key: ParameterSpec(key, UNTYPED, _NO_DEFAULT if default is ... else default)
        for key, default in (parameters or {}).items()
    }
    spec = {"command": list(command), "in": sorted(inputs or {}), "out": sorted(outputs or {})}
    return ComponentDef(
        name=name,
        version=version or hash_bytes(stable_json(spec).encode())[:16],
        func=None,
        inputs=dict(inputs or {}),
        outputs=dict(outputs or {}),
        parameters=params,
        retries=retries,
        retry_backoff=retry_backoff,
        cache=cache,
        resources=dict(resources or {}),
        command=tuple(command),
        module="",
        qualname=name,
    )
