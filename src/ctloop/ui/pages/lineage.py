"""Lineage: from a deployed model back to raw data, code and parameters, and forward to aliases.

The graph is ``ctloop.metadata.lineage`` walked upstream from the model's
artifact, plus the steps the run's DAG ran first without passing an artifact
(validation before the training set is read from the feature store), back to
the steps that landed the raw files (their paths are parameters), plus the
registry's view forward: the model versions made from the artifact and the
aliases that held them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from ctloop.core.errors import NotFound, UserInputError
from ctloop.metadata.base import ArtifactRecord, MetadataStore, ModelVersionRecord, StepRecord
from ctloop.metadata.lineage import Lineage, lineage
from ctloop.ui.filters import compact
from ctloop.ui.state import page, state_of
from ctloop.ui.svg import GraphNode, graph_svg

__all__ = ["router"]

router = APIRouter()


def _artifact_node(a: ArtifactRecord, root: str) -> GraphNode:
    lines = [a.name or "-", a.id[:12]]
    if a.type == "Anomalies":
        props = a.properties
        lines[0] = f"{props.get('errors', 0)} errors, {props.get('warnings', 0)} warnings"
    if a.type == "Dataset" and "rows" in a.properties:
        lines.insert(0, f"{a.properties['rows']:,} rows")
    return GraphNode(id=a.id, title=a.type, lines=lines,
                     state="model" if a.type == "Model" else "artifact",
                     href=f"/artifacts/{a.id}", highlight=a.id == root)


def _step_node(s: StepRecord) -> GraphNode:
    params = ", ".join(f"{k}={compact(v, 20)}" for k, v in list(s.parameters.items())[:2])
    return GraphNode(id=s.id, title=s.name, lines=[f"code {s.component} v{s.component_version}",
                                                   params or "no parameters"],
                     state=s.status.value, href=f"/runs/{s.run_id}#step-{s.name}")


@dataclass
class _Graph:
    """The lineage graph as it is assembled: nodes by id, and the steps met."""

    store: MetadataStore
    root: str
    nodes: dict[str, GraphNode] = field(default_factory=dict)
    steps: dict[str, StepRecord] = field(default_factory=dict)
    forward: list[tuple[ModelVersionRecord, str, bool]] = field(default_factory=list)

    def add_walk(self, graph: Lineage) -> None:
        """The artifacts and steps one lineage walk found."""
        for a, _ in graph.artifacts.values():
            self.nodes.setdefault(a.id, _artifact_node(a, self.root))
        for s, _ in graph.steps.values():
            self.steps[s.id] = s
            self.nodes.setdefault(s.id, _step_node(s))

    def add_edges(self, graph: Lineage) -> None:
        for e in graph.edges:
            source, target = (e.artifact_id, e.step_id) if e.kind == "input" else \
                (e.step_id, e.artifact_id)
            if target in self.nodes and source not in self.nodes[target].upstream:
                self.nodes[target].upstream.append(source)

    def add_waited_steps(self, upstream: Lineage) -> None:
        """Steps an upstream step waited for without reading their artifacts (a training
        set built from the feature store after validation passed): the run's DAG says
        they came first."""
        run_steps: dict[str, dict[str, StepRecord]] = {}
        queue = [s for s in self.steps.values() if s.id in upstream.steps]
        while queue:
            step = queue.pop()
            if step.run_id not in run_steps:
                run_steps[step.run_id] = {x.name: x for x in self.store.get_steps(step.run_id)}
            for name in step.upstream:
                before = run_steps[step.run_id].get(name)
                if before is None:
                    continue
                if before.id not in self.nodes[step.id].upstream:
                    self.nodes[step.id].upstream.append(before.id)
                if before.id not in self.steps:
                    self._add_step(before)
                    queue.append(before)

    def _add_step(self, step: StepRecord) -> None:
        """A step found through the DAG, with the artifacts it read and wrote."""
        self.steps[step.id] = step
        self.nodes[step.id] = _step_node(step)
        for event in self.store.get_events(step_id=step.id):
            if event.artifact_id not in self.nodes:
                try:
                    art = self.store.get_artifact(event.artifact_id)
                except NotFound:
                    continue
                self.nodes[art.id] = _artifact_node(art, self.root)
            if event.kind == "input":
                self.nodes[step.id].upstream.append(event.artifact_id)
            else:
                self.nodes[event.artifact_id].upstream.append(step.id)

    def add_forward(self, root: ArtifactRecord) -> None:
        """Registry versions of the root artifact and every alias that held them."""
        for mv in self.store.list_model_versions():
            if mv.artifact_id != root.id:
                continue
            vid = f"mv:{mv.name}:{mv.version}"
            self.nodes[vid] = GraphNode(id=vid, title=f"{mv.name} v{mv.version}", state="model",
                                        lines=["registered " + (mv.created_by or "")],
                                        href=f"/models/{mv.name}/versions/{mv.version}",
                                        upstream=[root.id])
            current = self.store.get_aliases(mv.name)
            held = {e.alias for e in self.store.alias_history(mv.name)
                    if e.version == mv.version}
            for alias_name in sorted(held):
                now = current.get(alias_name) == mv.version
                aid = f"alias:{mv.name}:{alias_name}"
                self.nodes[aid] = GraphNode(
                    id=aid, title=f"@{alias_name}", state="alias" if now else "skipped",
                    lines=["holds it now" if now else f"now v{current.get(alias_name)}"],
                    href=f"/models/{mv.name}", upstream=[vid])
                self.forward.append((mv, alias_name, now))


@router.get("/lineage", response_class=HTMLResponse)
def lineage_page(
    request: Request,
    artifact: Annotated[str | None, Query(min_length=4)] = None,
    model: Annotated[str | None, Query()] = None,
    version: Annotated[int | None, Query(ge=1)] = None,
    alias: Annotated[str | None, Query()] = None,
) -> HTMLResponse:
    state = state_of(request)
    registry = state.registry()
    if artifact is None and model is None:
        deployed = [(m.name, a, v) for m in registry.models() for a, v in m.aliases.items()]
        return page(request, "lineage_index.html", {"deployed": deployed,
                                                    "models": registry.models()})
    if artifact is None:
        ref = f"{model}:{version}" if version else f"{model}@{alias or 'champion'}"
        artifact = registry.get(ref).artifact_id
    up = lineage(state.store, artifact, direction="upstream")
    down = lineage(state.store, artifact, direction="downstream", max_depth=2)
    graph = _Graph(state.store, up.root)
    graph.add_walk(up)
    graph.add_walk(down)
    graph.add_waited_steps(up)
    graph.add_edges(up)
    graph.add_edges(down)
    root = state.store.get_artifact(up.root)
    graph.add_forward(root)
    if len(graph.nodes) > 400:
        raise UserInputError(f"The lineage graph has {len(graph.nodes)} nodes; open a smaller "
                             "part (an intermediate artifact) instead.")
    svg = graph_svg(list(graph.nodes.values()), label=f"lineage of {root.id}", box_w=170,
                    gap_x=34)
    params = [(s.name, s.component, s.component_version, s.parameters, s.run_id)
              for s in graph.steps.values()]
    return page(request, "lineage.html", {"root": root, "svg": svg, "steps": params,
                                          "forward": graph.forward, "count": len(graph.nodes)})
