"""The loop's span timeline in a real browser: a small declared loop, replayed, then read.

Four generated weekly spans (``ctloop.loop.sample``): week-00 trains the first
champion (the bootstrap), week-01 is calm, week-02 is defective (a renamed
column: quarantined), week-03 flips the concept, so decay fires and a retrained
candidate takes over. ``ctloop loop replay`` runs it in its sandbox (the
*latest replay* timeline, unlinked: its runs live in the sandbox). A loop's
memory in the project's own database is the *live* timeline, with runs and
versions linked: ``ctloop demo`` replays its loop there, as the second test reads.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ctloop.loop.sample import write_sample_spans
from ctloop.testing.loops import churn_loop
from ctloop.testing.services import user_environment

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

Page = Any

LOOP = churn_loop('id = "customer"', 'retrain_on = ["decay"]', 'window = "2 spans"',
                  'train = { flavor = "lightgbm", params = { n_estimators = 20 } }',
                  "decay = { max_drop = 0.1, min_labels = 100 }")


@pytest.fixture(scope="module")
def loop_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    from ctloop.cli.main import main

    root = tmp_path_factory.mktemp("ui-loop")
    (root / "ctloop.toml").write_text(LOOP)
    write_sample_spans(root / "landing", spans=4, rows=500, change_at=3, shift_at=None,
                       defective_at=2)
    keep = os.getcwd()
    allowed = user_environment()
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k not in allowed}
    try:
        os.chdir(root)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["loop", "replay", "churn", "--json"]) == 0
        yield root, json.loads(out.getvalue())
    finally:
        os.chdir(keep)
        os.environ.update(saved)


def test_the_timeline_shows_spans_served_versions_gate_and_promotions(
    loop_project: tuple[Path, dict[str, Any]], page: Page, served: Any, screenshot: Any,
) -> None:
    from ctloop.core.settings import load_settings
    from ctloop.ui import create_app

    root, replay = loop_project
    spans = {s["span"]: s for s in replay["spans"]}
    assert spans["week-02"]["status"] == "quarantined"  # the story the test relies on
    promoted = {s["span"]: s["promoted"] for s in replay["spans"] if s["promoted"]}
    assert promoted.get("week-00") == 1 and len(promoted) >= 2, promoted

    url = served(create_app(load_settings(root)))  # type: ignore[arg-type]
    page.goto(f"{url}/monitoring")
    section = page.locator("section.loop[data-loop=churn][data-source=replay]")
    assert "latest replay" in section.locator("h2").inner_text()
    strip = section.locator("ol.timeline li")
    assert strip.count() == 4
    assert [strip.nth(i).get_attribute("data-status") for i in range(4)] == [
        "valid", "valid", "quarantined", "valid"]
    summary = section.locator(".summary").inner_text()
    assert "3 valid, 1 quarantined" in summary
    for span, version in promoted.items():
        assert f"v{version} on {span}" in summary
        row = section.locator(f"tr[data-span={span}]")
        assert f"★ v{version}" in row.locator("td.promoted").inner_text()
        assert "blessed" in row.locator("td.gate").inner_text()
    quarantined = section.locator("tr[data-span=week-02]").inner_text()
    assert "quarantined" in quarantined and "spend" in quarantined  # the anomaly, by column
    for span, report in spans.items():  # the version that served each span
        served_cell = section.locator(f"tr[data-span={span}] td.served").inner_text()
        expected = f"v{report['served_version']}" if report["served_version"] else "none yet"
        assert served_cell.strip() == expected, span
    assert "decay" in section.locator("tr[data-span=week-03]").inner_text()
    screenshot(page, "loop")
    # the model's page shows the same loop; an unknown one shows no loops of other models
    page.goto(f"{url}/monitoring/churn")
    assert page.locator("section.loop[data-loop=churn] ol.timeline li").count() == 4


def test_the_demo_loop_is_live_with_links_to_its_runs_and_versions(dashboard: str,
                                                                   page: Page) -> None:
    """``ctloop demo`` replays its loop into the project's stores: a linked, live timeline."""
    page.goto(f"{dashboard}/monitoring/flights-delay")
    section = page.locator("section.loop[data-loop=flights][data-source=live]")
    strip = section.locator("ol.timeline li")
    statuses = {strip.nth(i).get_attribute("data-span"): strip.nth(i).get_attribute("data-status")
                for i in range(strip.count())}
    assert statuses.get("2013-05") == "quarantined", statuses  # --defective-month 5
    assert "valid" in statuses.values()
    assert "promotions: v1 on" in section.locator(".summary").inner_text()
    served = section.locator("td.served a").first
    assert re.fullmatch(r"/models/flights-delay/versions/\d+", served.get_attribute("href") or "")
    with page.expect_navigation():
        section.locator("td.gate a[href^='/runs/']").first.click()
    assert "loop_train" in page.locator("main").inner_text()
