"""The dashboard in a real browser, on a project the flights demo filled."""

from __future__ import annotations

import re
from typing import Any

import pytest

from ctloop.metadata import RunRecord, RunStatus, new_id, open_metadata_store
from ctloop.registry import ModelRegistry, default_actor

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

Page = Any


def click(page: Page, selector: str) -> None:
    """Click something that loads a new page, and wait for that page."""
    follow(page, page.locator(selector).first)


def follow(page: Page, locator: Any) -> None:
    with page.expect_navigation():
        locator.click()


def test_runs_list_filters_paginates_and_links_to_runs(dashboard: str, page: Page,
        screenshot: Any) -> None:
    page.goto(f"{dashboard}/runs")
    rows = page.locator("#runs tbody tr")
    assert rows.count() >= 3
    text = page.locator("#runs").inner_text()
    assert "loop_ingest" in text and "loop_train" in text and "new_data" in text
    assert "bootstrap on span 2013-03" in text  # the trigger's reason
    assert re.search(r"\d+%", text)  # cached share
    screenshot(page, "runs")
    page.select_option("select[name=status]", "failed")
    click(page, "form.filters button[type=submit]")
    assert "status=failed" in page.url
    assert page.locator("#runs tbody tr").count() == 1
    assert page.locator("#runs tbody .badge.quarantined").count() == 1  # May's broken batch
    assert "data kept out" in page.locator("#runs tbody td.status").inner_text()
    page.goto(f"{dashboard}/runs?per_page=1")
    assert "page 1 of" in page.locator(".pager").inner_text()
    first = page.locator("#runs tbody tr td:nth-child(2)").inner_text()
    click(page, "a[rel=next]")
    assert "page 2 of" in page.locator(".pager").inner_text()
    assert page.locator("#runs tbody tr td:nth-child(2)").inner_text() != first
    page.goto(f"{dashboard}/runs?since=2000-01-01&until=2000-01-02")
    assert "No runs match" in page.locator("#runs").inner_text()


def test_run_page_shows_dag_steps_and_the_failed_steps_traceback(
    dashboard: str, page: Page, screenshot: Any
) -> None:
    page.goto(f"{dashboard}/runs?status=failed")
    click(page, "#runs tbody tr a")
    assert page.locator("h1 .badge.quarantined").count() == 1  # May's broken batch
    assert "run failed; data kept out" in page.locator("h1").inner_text()
    dag = page.locator("svg.graph")
    assert dag.locator("g.node").count() >= 5
    assert dag.locator("g.node.state-failed").count() >= 1
    assert "validate" in dag.text_content()
    steps = page.locator("#steps").inner_text()
    assert "succeeded" in steps and "failed" in steps and "attempts" in page.content()
    log = page.locator("tr.log").first.inner_text()
    assert "ZZ" in log and "Traceback" in log
    assert "2013-05.parquet" in page.locator("table.kv").first.inner_text()  # parameters
    assert "python" in page.content() and "runner" in page.content()  # environment, executor
    screenshot(page, "run")
    click(page, "#steps a[href^='/artifacts/']")
    assert page.url.startswith(f"{dashboard}/artifacts/")


def test_error_text_is_escaped_never_run(demo_project: Any, dashboard: str,
                                         page: Page) -> None:
    store = open_metadata_store(demo_project.settings.metadata_url)  # type: ignore[attr-defined]
    run = store.create_run(RunRecord(id=new_id(), pipeline="hostile", pipeline_version="1",
                                     status=RunStatus.FAILED,
                                     error="<script>window.pwned=1</script><b>bold</b>"))
    store.close()
    page.goto(f"{dashboard}/runs/{run.id}")
    assert "<script>window.pwned=1</script>" in page.locator(".errorbox pre").inner_text()
    assert page.evaluate("window.pwned") is None
    assert page.locator(".errorbox b").count() == 0


def test_compare_puts_runs_side_by_side_and_marks_differences(dashboard: str,
                                                              page: Page,
        screenshot: Any) -> None:
    page.goto(f"{dashboard}/runs?status=succeeded&pipeline=loop_train")
    boxes = page.locator("#runs tbody input[type=checkbox]")
    boxes.nth(0).check()
    boxes.nth(1).check()
    click(page, "#compare-form button[type=submit]")
    assert "/compare?" in page.url
    params = page.locator("#params")
    assert params.locator("thead th").count() == 3
    differing = params.locator("tr.differs").all_inner_texts()
    assert any(row.startswith("spans") for row in differing)
    same = params.locator("tbody tr:not(.differs)").all_inner_texts()
    assert any(row.startswith("model_name") for row in same)
    assert page.locator("#metrics tbody tr").count() > 3
    assert "roc_auc" in page.locator("#metrics").inner_text()
    screenshot(page, "compare")
    page.goto(f"{dashboard}/compare?run=onlyone")
    assert "at least two runs" in page.locator(".error").inner_text()


def test_promote_moves_the_alias_and_rollback_returns_it(demo_project: Any,
                                                         dashboard: str, page: Page,
        screenshot: Any) -> None:
    store = open_metadata_store(demo_project.settings.metadata_url)  # type: ignore[attr-defined]
    registry = ModelRegistry(store)
    before = registry.aliases("flights-delay")["champion"]
    other = next(v.version for v in registry.versions("flights-delay") if v.version != before)
    page.goto(f"{dashboard}/models/flights-delay")
    assert f"champion → v{before}" in page.locator("[data-alias=champion]").inner_text()
    assert "blessed" in page.locator("#versions").inner_text()
    assert "roc_auc" in page.locator("#versions thead").inner_text()
    page.select_option("#promote-form select[name=version]", str(other))
    page.fill("#promote-form input[name=reason]", "browser test: try the other one")
    click(page, "#promote-form button[type=submit]")
    assert f"champion → v{other}" in page.locator("[data-alias=champion]").inner_text()
    latest = page.locator("#history tbody tr").first.inner_text()
    assert f"v{before} → v{other}" in latest and "browser test: try the other one" in latest
    assert f"{default_actor()} (ui)" in latest  # audited like the CLI: the login name
    assert registry.aliases("flights-delay")["champion"] == other  # really moved in the store
    screenshot(page, "model")
    page.fill("#rollback-form input[name=reason]", "browser test: back")
    click(page, "#rollback-form button[type=submit]")
    assert f"champion → v{before}" in page.locator("[data-alias=champion]").inner_text()
    latest = page.locator("#history tbody tr").first
    assert latest.locator(".badge.rollback").count() == 1
    assert "browser test: back" in latest.inner_text()
    assert registry.aliases("flights-delay")["champion"] == before
    store.close()


def test_version_page_shows_metrics_intervals_slices_confusion_and_blessing(
    dashboard: str, page: Page, screenshot: Any
) -> None:
    page.goto(f"{dashboard}/models/flights-delay/versions/2")
    overall = page.locator("#overall").inner_text()
    assert "roc_auc" in overall and re.search(r"\[0\.\d+, 0\.\d+\]", overall)
    matrix = page.locator("table.matrix").inner_text()
    assert "TP" in matrix and "FN" in matrix
    assert page.locator("#blessing tbody tr").count() >= 2
    assert "vs champion" in page.locator("#blessing").inner_text()
    assert page.locator("table.slices").count() >= 1
    screenshot(page, "version")
    click(page, "form.actions button")  # compare with the other version on the same data
    same = page.locator("#same-data").inner_text()
    assert "Δ" in same and "roc_auc" in same
    assert "same" in page.locator("main p").first.inner_text()


def test_statistics_schema_anomalies_and_drift_with_every_bar_labelled(
    dashboard: str, page: Page, screenshot: Any
) -> None:
    page.goto(f"{dashboard}/artifacts?type=Anomalies")
    click(page, "#artifacts tbody a")  # the newest: May's defective batch
    anomalies = page.locator("#anomalies")
    assert anomalies.locator("tr.anomaly").count() >= 1
    assert "ZZ" in anomalies.inner_text()
    click(page, "#drift-link")
    drift = page.locator("#drift")
    carrier = drift.locator("tr[data-feature=carrier]")
    labels = carrier.locator("g.bar").evaluate_all("bs => bs.map(b => b.dataset.label)")
    assert "ZZ" in labels and "UA" in labels  # the new category and an old one, both labelled
    assert carrier.locator("g.bar.new[data-label=ZZ] text").text_content().endswith("★new")
    stamp = drift.locator("tr[data-feature=time_hour] g.bar text").first.text_content()
    assert re.fullmatch(r"2013-\d\d-\d\d", stamp), stamp  # dates, not epoch seconds
    months = drift.locator("tr[data-feature=month] g.bar").evaluate_all(
        "bs => bs.map(b => b.dataset.label)")
    assert months == ["4", "5"]  # integers get one bar per value
    carrier.scroll_into_view_if_needed()
    screenshot(page, "drift")
    page.goto(f"{dashboard}/artifacts?type=Statistics")
    click(page, "#artifacts tbody a")
    stats = page.locator("#stats")
    assert "arr_delay" in stats.inner_text() and stats.locator("svg.hist").count() > 5
    page.goto(f"{dashboard}/artifacts?type=Schema")
    click(page, "#artifacts tbody a")
    assert "carrier" in page.locator("#schema").inner_text()


def test_lineage_from_the_champion_back_to_raw_data_and_forward_to_aliases(
    dashboard: str, page: Page, screenshot: Any
) -> None:
    page.goto(f"{dashboard}/lineage")
    click(page, "#deployed a")
    graph = page.locator("#lineage-graph svg")
    text = graph.text_content()
    # the loop's training set is cut by window_set from the spans (its parameters); the
    # validation artifacts of loop_ingest are not inputs of loop_train's steps
    for kind in ("Model", "Dataset", "Metrics", "@champion", "window_set", "event_time="):
        assert kind in text, kind
    assert "code train v" in text  # the code version of each step
    assert page.locator("#lineage-steps tbody tr").count() >= 3
    assert "champion" in page.locator("#forward").inner_text()
    screenshot(page, "lineage")
    follow(page, graph.locator("a:has(g.node:has-text('Dataset'))").first)
    assert page.url.startswith(f"{dashboard}/artifacts/")
    page.go_back()
    follow(page, page.locator("#lineage-graph svg a[href^='/artifacts/']:has(.state-model)"))
    assert "flights-delay v" in page.locator("#versions").inner_text()  # the model's versions


def test_feature_catalog_search_and_use(dashboard: str, page: Page,
        screenshot: Any) -> None:
    page.goto(f"{dashboard}/features")
    page.fill("input[name=q]", "carrier")
    click(page, "form.filters button")
    text = page.locator("#features").inner_text()
    assert "carrier_delay_rate_7d" in text and "weather" not in text.split("\n")[1]
    screenshot(page, "features")
    click(page, "#features tbody a")
    assert "flights-delay v" in page.locator("#used-by").inner_text()
    assert page.locator("#definitions tbody tr").count() >= 1
    assert "materialized" in page.locator("#freshness").inner_text()


def test_monitoring_charts_live_vs_evaluated_drift_and_trigger_firings(
    dashboard: str, page: Page, screenshot: Any
) -> None:
    page.goto(f"{dashboard}/monitoring")
    click(page, "#monitored a")
    assert page.locator("#latest tbody tr").count() >= 2
    for kind in ("decay", "drift", "top drifted features"):
        chart = page.locator(f"div.chart[data-kind='{kind}']")
        chart.locator("canvas").wait_for()
        assert chart.get_attribute("data-drawn") == "true"
    legend = page.locator("div.chart[data-kind=decay] .u-legend").inner_text()
    assert "live" in legend and "evaluated" in legend
    ticks = page.evaluate(
        "document.querySelector('div.chart[data-kind=drift]').uplot.axes[0]._values")
    assert ticks and any(re.search(r"20\d\d|Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec|/",
                                   str(t)) for t in ticks), ticks
    firings = page.locator("#firings")
    assert "new_data" in firings.inner_text()
    assert page.locator("section.loop[data-loop=flights] ol.timeline li").count() >= 2
    screenshot(page, "monitoring")
    follow(page, firings.locator("a").first)
    assert page.url.startswith(f"{dashboard}/runs/")


def test_bad_input_gets_a_page_with_a_message_and_a_status(dashboard: str, page: Page) -> None:
    cases = {
        "/runs/0000doesnotexist": (404, "No run with id"),
        "/runs?page=abc": (400, "page"),
        "/runs?status=exploded": (400, "Unknown run status"),
        "/models/nope": (404, "No model named 'nope'"),
        "/models/flights-delay/versions/999": (404, "no version 999"),
        "/artifacts/ffffffffffff": (404, "No artifact"),
        "/lineage?artifact=zzzzzzzz": (404, "No artifact"),
        "/no/such/page": (404, "no page"),
    }
    for path, (status, text) in cases.items():
        response = page.goto(f"{dashboard}{path}")
        assert response.status == status, path
        message = page.locator(".error .message").inner_text()
        assert text.lower() in message.lower(), (path, message)
        assert "Traceback" not in page.content()


def test_with_api_keys_visitors_sign_in_readers_read_and_admins_act(demo_project: Any, page: Page,
                                                         served: Any) -> None:
    from ctloop.core.settings import Tables, TomlTable
    from ctloop.serving.auth import hash_key
    from ctloop.ui import create_app
    from ctloop.ui.access import AccessPolicy, load_keys

    serving_keys: TomlTable = {"ada": {"hash": hash_key("admin-secret-1"), "roles": ["admin"]},
                               "rui": {"hash": hash_key("read-secret-1"), "roles": ["read"]}}
    keys = load_keys(Tables(serving={"keys": serving_keys}), {})
    url = served(create_app(demo_project.settings, policy=AccessPolicy(keys)))
    if True:
        page.goto(f"{url}/models/flights-delay")  # with keys, every page needs a session
        assert "/login?next=" in page.url and page.locator("input[name=key]").count() == 1
        page.fill("input[name=key]", "read-secret-1")
        click(page, "form.stack button")
        assert page.url.endswith("/models/flights-delay")
        assert "rui (read)" in page.locator("header").inner_text()
        assert page.locator("#promote-form button").is_disabled()
        status = page.evaluate(
            """async () => (await fetch('/models/flights-delay/promote', {method: 'POST',
                 headers: {'content-type': 'application/x-www-form-urlencoded'},
                 body: 'version=1&csrf=' + document.querySelector('input[name=csrf]').value
               })).status""")
        assert status == 403  # a reader with a valid token still may not act
        click(page, "header form button")  # sign out
        page.goto(f"{url}/login?next=/models/flights-delay")
        page.fill("input[name=key]", "wrong-key-123")
        click(page, "form.stack button")
        assert "not valid" in page.locator("main").inner_text()
        page.fill("input[name=key]", "admin-secret-1")
        click(page, "form.stack button")
        assert page.url.endswith("/models/flights-delay")
        assert not page.locator("#promote-form button").is_disabled()
        no_token = page.evaluate(
            """async () => (await fetch('/models/flights-delay/promote', {method: 'POST',
                 headers: {'content-type': 'application/x-www-form-urlencoded'},
                 body: 'version=1'})).status""")
        assert no_token == 403  # CSRF: a form without the session's token is refused
        current = page.locator("[data-alias=champion]").inner_text()
        version = "1" if "v1" not in current else "2"
        page.select_option("#promote-form select[name=version]", version)
        click(page, "#promote-form button[type=submit]")
        assert f"champion → v{version}" in page.locator("[data-alias=champion]").inner_text()
        assert "ada (ui)" in page.locator("#history tbody tr").first.inner_text()


def test_the_guard_catches_requests_to_other_hosts(page: Page, offsite: Any) -> None:
    """The check every other test relies on: a request beyond 127.0.0.1 is seen and stopped."""
    page.set_content('<img src="http://example.com/pixel.png"><link rel=stylesheet '
                     'href="https://cdn.example.org/x.css">')
    page.wait_for_timeout(300)
    assert sorted(offsite.urls) == ["http://example.com/pixel.png",
                                    "https://cdn.example.org/x.css"]
    offsite.urls.clear()  # seen: let the fixture's own check pass
