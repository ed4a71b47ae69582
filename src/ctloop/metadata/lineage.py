"""Lineage: which steps and artifacts an artifact came from, or fed into.

Walks the event edges recorded by the pipeline engine (a step read an
``input`` artifact, wrote an ``output``), breadth first, so ``ctloop lineage
ID`` can show the chain back to the raw data. The result is a small graph of
plain dicts with a stable JSON shape::

    {"root": ARTIFACT_ID, "direction": "upstream",
     "artifacts": [{...ArtifactRecord, "depth": 0}, ...],
     "steps": [{...StepRecord, "depth": 1}, ...],
     "edges": [{"source": ID, "target": ID, "kind": "input"|"output", "name": NAME}]}

Edges point the way data flowed: artifact -> step for inputs, step ->
artifact for outputs, whichever direction was walked.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from ctloop.core.errors import NotFound, UserInputError
from ctloop.core.jsontypes import JSONValue
from ctloop.metadata.base import ArtifactRecord, EventRecord, RunLineageStore, StepRecord, to_dict

__all__ = ["Lineage", "lineage"]

Direction = Literal["upstream", "downstream"]


@dataclass
class Lineage:
    """Artifacts and steps reachable from ``root``, with their distance from it."""

    root: str
    direction: Direction
    artifacts: dict[str, tuple[ArtifactRecord, int]] = field(default_factory=dict)
    steps: dict[str, tuple[StepRecord, int]] = field(default_factory=dict)
    edges: list[EventRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, JSONValue]:
        """The documented JSON shape (see the module docstring)."""
        return {
            "root": self.root,
            "direction": self.direction,
            "artifacts": [{**to_dict(a), "depth": d} for a, d in self.artifacts.values()],
            "steps": [{**to_dict(s), "depth": d} for s, d in self.steps.values()],
            "edges": [
                {
                    "source": e.artifact_id if e.kind == "input" else e.step_id,
                    "target": e.step_id if e.kind == "input" else e.artifact_id,
                    "kind": e.kind,
                    "name": e.name,
                }
                for e in self.edges
            ],
        }


def lineage(
    store: RunLineageStore,
    artifact_id: str,
    *,
    direction: Direction = "upstream",
    max_depth: int | None = None,
) -> Lineage:
    """The lineage graph of an artifact (id or unique prefix).

    ``upstream`` follows producer steps and their inputs back to the raw data;
    ``downstream`` follows the steps that read the artifact and what they wrote.
    ``max_depth`` counts steps (1 = only the producing/consuming steps).
    """
    if direction not in ("upstream", "downstream"):
        raise UserInputError(
            f"The lineage direction must be 'upstream' or 'downstream'. Got {direction!r}."
        )
    root = store.get_artifact(artifact_id)
    graph = Lineage(root=root.id, direction=direction)
    graph.artifacts[root.id] = (root, 0)
    seen_edges: set[tuple[str, str, str, str]] = set()
    queue: deque[tuple[str, int]] = deque([(root.id, 0)])
    # upstream: artifact <-output- step <-input- artifact ...; downstream mirrors it.
    toward_step, from_step = ("output", "input") if direction == "upstream" else ("input", "output")
    while queue:
        current, depth = queue.popleft()
        if max_depth is not None and depth >= max_depth:
            continue
        step_ids = [e for e in store.get_events(artifact_id=current) if e.kind == toward_step]
        producer = graph.artifacts[current][0].producer_step_id
        if direction == "upstream" and producer:
            # One step made it; cached steps that reused it also record an output edge,
            # but they are copies, not where the data came from.
            step_ids = [e for e in step_ids if e.step_id == producer] or [
                EventRecord(producer, current, "output", graph.artifacts[current][0].name)
            ]
        for edge in step_ids:
            _add_edge(graph, seen_edges, edge)
            if edge.step_id in graph.steps:
                continue
            try:
                step = store.get_step(edge.step_id)
            except NotFound:
                continue  # an edge to a step that was never saved: show the edge only
            graph.steps[step.id] = (step, depth + 1)
            for next_edge in store.get_events(step_id=step.id):
                if next_edge.kind != from_step:
                    continue
                _add_edge(graph, seen_edges, next_edge)
                if next_edge.artifact_id in graph.artifacts:
                    continue
                try:
                    artifact = store.get_artifact(next_edge.artifact_id)
                except NotFound:
                    continue
                graph.artifacts[artifact.id] = (artifact, depth + 1)
                queue.append((artifact.id, depth + 1))
    return graph


def _add_edge(graph: Lineage, seen: set[tuple[str, str, str, str]], edge: EventRecord) -> None:
    key = (edge.step_id, edge.artifact_id, edge.kind, edge.name)
    if key not in seen:
        seen.add(key)
        graph.edges.append(edge)
