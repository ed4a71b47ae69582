"""Charts as uPlot draws them (``static/charts.js``): typed series, one JSON per chart.

uPlot takes columns: one shared x array and one y array per series. Monitor
results share a time axis (Unix seconds of each window's end); the loop's story
chart has one point per span, so its x is the span's position and ``labels``
name the ticks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from markupsafe import Markup

from ctloop.ui.loops import LoopTimeline

__all__ = ["Chart", "Series", "chart", "script_json", "story_chart"]

Point = tuple[float, float | None]


@dataclass(frozen=True)
class Series:
    """One line: its legend label, its points and how it is drawn."""

    label: str
    points: Sequence[Point]
    dash: tuple[int, ...] | None = None
    color: str | None = None

    def style(self) -> dict[str, object]:
        out: dict[str, object] = {"label": self.label}
        if self.dash:
            out["dash"] = list(self.dash)
        if self.color:
            out["color"] = self.color
        return out


@dataclass(frozen=True)
class Chart:
    """What ``charts.js`` draws, and the values table under it."""

    title: str
    ylabel: str
    xs: list[float]
    columns: list[list[float | None]]  # one per series, aligned with xs
    series: list[dict[str, object]]
    labels: list[str] = field(default_factory=list)  # tick names of a span axis

    @property
    def data(self) -> list[list[float | None]]:
        return [list(self.xs), *self.columns]

    def rows(self) -> list[tuple[str, list[float | None]]]:
        """(x as text, the series' values) per point, for the values table."""
        from ctloop.ui.filters import from_epoch

        names = self.labels or [from_epoch(x) for x in self.xs]
        return [(names[i], [col[i] for col in self.columns]) for i in range(len(self.xs))]

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"title": self.title, "ylabel": self.ylabel,
                                  "data": self.data, "series": self.series}
        if self.labels:
            out["labels"] = self.labels
        return out


def chart(title: str, ylabel: str, series: Sequence[Series],
          labels: Sequence[str] = ()) -> Chart:
    """Series on one shared x axis; a series without a value at some x has a gap there."""
    xs = sorted({x for s in series for x, _ in s.points})
    columns = []
    for s in series:
        by_x = dict(s.points)
        columns.append([by_x.get(x) for x in xs])
    return Chart(title, ylabel, xs, columns, [s.style() for s in series], list(labels))


def script_json(value: object) -> Markup:
    """JSON safe inside ``<script type="application/json">``: no ``</script>`` can close it."""
    text = json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e")
    return Markup(text.replace("&", "\\u0026"))


def story_chart(timeline: LoopTimeline) -> Chart | None:
    """The loop's point, span by span: the served model's live metric, the metric it was
    evaluated at when the gate blessed it, and the never-retrained model on the same
    rows. None until some span was served."""
    metric = timeline.metric
    if metric is None:
        return None
    evaluated = {s.trained_version: s.candidate for s in timeline.spans
                 if s.trained_version is not None}
    live: list[Point] = []
    expected: list[Point] = []
    never: list[Point] = []
    for i, span in enumerate(timeline.spans):
        x = float(i)
        value = span.live_value(metric)
        live.append((x, value))
        expected.append((x, evaluated.get(span.served_version)
                         if value is not None and span.served_version is not None else None))
        never.append((x, span.baseline_value(metric)))
    if all(v is None for _, v in live):
        return None
    return chart(f"{metric} of {timeline.name}, span by span", metric, [
        Series("live (served model)", live, color="#d4a72c"),
        Series("evaluated (at promotion)", expected, dash=(6, 4), color="#0969da"),
        Series("never retrained", never, dash=(2, 4), color="#8c959f"),
    ], labels=[s.span for s in timeline.spans])
