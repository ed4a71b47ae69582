"""The dashboard tells the loop's story: verdicts on the runs list, the timeline first, and
the chart of live, evaluated and never-retrained metrics, in a real browser.

One project per module (the ``story`` fixture in conftest.py): a declared loop
(``ctloop.loop.sample``, five weekly spans of 400 rows) replayed into the project's own
stores as ``ctloop demo`` does, with the never-retrained model scored on every span.
Every span retrains; the gate asks for a gain of 0.02, so week-01's candidate (same
concept, less gain) is refused; the concept flips at week-02, whose candidate is
blessed; week-03 is defective (quarantined); week-04 retrains on the new concept while
the first model keeps decaying.
"""

from __future__ import annotations

from typing import Any

import pytest

from ctloop.loop.memory import SpanReport

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

Page = Any

def _trained(story: Any) -> list[SpanReport]:
    return [s for s in story.spans if s.gate and s.runs.get("train")]


def test_the_story_the_other_tests_rely_on(story: Any) -> None:
    verdicts = [bool(s.gate and s.gate.get("blessed")) for s in _trained(story)]
    assert True in verdicts and False in verdicts, verdicts
    assert [s.status for s in story.spans].count("quarantined") == 1
    served = [s for s in story.spans if s.live and s.baseline]
    assert len(served) >= 2
    assert any(s.live != s.baseline for s in served)  # a retrained model served a span


def test_runs_list_badges_the_gate_verdict_and_shows_the_headline_metric(
    story: Any, page: Page, screenshot: Any,
) -> None:
    page.goto(f"{story.url}/runs")
    head = page.locator("#runs thead").inner_text()
    assert "metric" in head
    for span in _trained(story):
        assert span.gate is not None
        row = page.locator(f"#runs tr[data-run='{span.runs['train']}']")
        badge = row.locator("td.status .badge")
        verdict = "blessed" if span.gate.get("blessed") else "refused"
        assert badge.inner_text() == verdict, span.span
        assert badge.get_attribute("class") == f"badge {verdict}"
        metric = row.locator("td.metric").inner_text()
        assert metric.split() == ["roc_auc", f"{round(span.gate['candidate'] or 0, 4):g}"], \
            (span.span, metric)
        note = row.locator("td.status .reason").inner_text()
        assert note == (f"v{span.gate['version']} promoted" if span.promoted
                        else f"v{span.gate['version']} not promoted")
    refused = page.locator("#runs tr[data-badge=refused]")
    assert refused.count() >= 1
    assert refused.locator(".badge.succeeded").count() == 0  # never a green "succeeded"
    quarantined = next(s for s in story.spans if s.status == "quarantined")
    row = page.locator(f"#runs tr[data-run='{quarantined.runs['validate']}']")
    assert row.locator("td.status .badge").inner_text() == "quarantined"
    assert row.locator("td.metric").inner_text().strip() == "\N{EN DASH}"  # no metric
    screenshot(page, "runs-verdicts")
    refused_run = next(s.runs["train"] for s in _trained(story)
                       if s.gate and not s.gate.get("blessed"))
    page.goto(f"{story.url}/runs/{refused_run}")  # the run's own page says the same
    heading = page.locator("h1").inner_text()
    assert page.locator("h1 .badge").inner_text() == "refused"
    assert "run succeeded; v" in heading and "not promoted" in heading and "roc_auc" in heading


@pytest.mark.parametrize("path", ["/monitoring", "/monitoring/churn"])
def test_the_monitoring_page_opens_on_the_span_timeline(story: Any, page: Page,
                                                        path: str) -> None:
    page.goto(f"{story.url}{path}")
    timeline = page.locator("section.loop[data-loop=churn] ol.timeline")
    top = timeline.bounding_box()
    assert top is not None and top["y"] + top["height"] < 900  # in the first screen
    for table in ("#firings", "section.loop table.timeline-table") + (
            ("#latest",) if path.endswith("churn") else ()):
        box = page.locator(table).first.bounding_box()
        assert box is not None and box["y"] > top["y"], table
    boxes = timeline.locator("li")
    assert [boxes.nth(i).get_attribute("data-span") for i in range(boxes.count())] == [
        s.span for s in story.spans]
    refused = [s.span for s in _trained(story) if s.gate and not s.gate.get("blessed")]
    assert [timeline.locator(f"li[data-span={s}]").get_attribute("class") for s in refused] \
        == ["span valid refused"] * len(refused)


def test_the_story_chart_draws_live_evaluated_and_never_retrained_with_a_legend(
    story: Any, page: Page, screenshot: Any,
) -> None:
    page.goto(f"{story.url}/monitoring/churn")
    chart = page.locator("section.loop[data-loop=churn] div.chart[data-kind=story]")
    chart.locator("canvas").wait_for()
    assert chart.get_attribute("data-drawn") == "true"
    legend = chart.locator(".u-legend").inner_text()
    for label in ("live (served model)", "evaluated (at promotion)", "never retrained"):
        assert label in legend, legend
    drawn = chart.evaluate("el => ({labels: el.uplot.series.map(s => s.label), "
                           "data: el.uplot.data})")
    assert drawn["labels"] == ["span", "live (served model)", "evaluated (at promotion)",
                               "never retrained"]
    xs, live, evaluated, never = drawn["data"]
    assert xs == list(range(len(story.spans)))
    assert live == [(s.live or {}).get("roc_auc") for s in story.spans]
    assert never == [(s.baseline or {}).get("roc_auc") for s in story.spans]
    at_promotion = {s.gate["version"]: s.gate["candidate"] for s in _trained(story)
                    if s.gate}
    assert evaluated == [at_promotion.get(s.served_version) if s.live else None
                         for s in story.spans]
    ticks = page.evaluate("document.querySelector('div.chart[data-kind=story]')"
                          ".uplot.axes[0]._values")
    assert set(ticks) - {""} <= {s.span for s in story.spans} and "week-02" in ticks
    chart.scroll_into_view_if_needed()
    screenshot(page, "story")
