"""Browser tests: the dashboard served by uvicorn, driven by Playwright in Debian's chromium.

One demo replay (March to May 2013, May's batch broken) fills a project with
real runs, models, features and monitor results; the dashboard serves it on
127.0.0.1 and the browser may reach nothing else: every request to another
host is aborted and recorded, and a test that made one fails.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from ctloop.core.net import free_port
from ctloop.testing.loops import churn_loop
from ctloop.testing.services import in_ci, patience, user_environment

CHROMIUM = os.environ.get("CTLOOP_CHROMIUM", "/usr/bin/chromium")
IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
SCREENSHOTS = bool(os.environ.get("CTLOOP_UI_SCREENSHOTS"))  # read before the fixtures clear it


def _require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    if in_ci():
        pytest.fail(f"{CHROMIUM} is missing and CI is set: install Debian's chromium package")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")


@dataclass
class Project:
    home: Path
    settings: object


@pytest.fixture(scope="session")
def demo_project(tmp_path_factory: pytest.TempPathFactory,
                 request: pytest.FixtureRequest) -> Iterator[Project]:
    """A copy of a project after `ctloop demo --months 4-5 --defective-month 5`.

    The demo runs once per session (``flights_demo``, which ``test_demo_flights``
    reads too), or ``CTLOOP_E2E_PROJECT`` names a finished demo folder to copy.
    """
    _require_chromium()
    from ctloop.core.settings import load_settings
    from ctloop.testing.projects import copy_project

    home = tmp_path_factory.mktemp("ui-demo")
    reuse = os.environ.get("CTLOOP_E2E_PROJECT")
    if reuse:
        copy_project(Path(reuse), home)
    else:
        demo = request.getfixturevalue("flights_demo")
        assert demo.code == 0, demo.err
        demo.copy_into(home)
    keep = os.getcwd()
    allowed = user_environment()
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k not in allowed}
    try:
        os.chdir(home)
        yield Project(home=home, settings=load_settings(home))
    finally:
        os.chdir(keep)
        os.environ.update(saved)


@dataclass
class Server:
    url: str
    thread: threading.Thread
    server: object


def serve(app: object) -> Server:
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + patience(20)
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the dashboard did not start")
        time.sleep(0.05)
    return Server(f"http://127.0.0.1:{port}", thread, server)


def stop(server: Server) -> None:
    server.server.should_exit = True  # type: ignore[attr-defined]
    server.thread.join(10)


@pytest.fixture(scope="session")
def dashboard(demo_project: Project) -> Iterator[str]:
    """The dashboard on the demo project, without API keys (a local tool)."""
    from ctloop.ui import create_app

    server = serve(create_app(demo_project.settings))  # type: ignore[arg-type]
    yield server.url
    stop(server)


@dataclass
class Offsite:
    """Requests the browser tried to send beyond 127.0.0.1 (all aborted)."""

    urls: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One Chromium per test module.

    Playwright's sync API keeps an asyncio loop running on this thread while it is
    open; a session-wide browser would break every later test that calls
    ``asyncio.run`` (the request-log load tests do).
    """
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-background-networking"])
        yield b
        b.close()


@pytest.fixture
def offsite() -> Offsite:
    return Offsite()


@pytest.fixture
def page(browser: object, offsite: Offsite) -> Iterator[object]:
    """A fresh browser context whose requests may only go to 127.0.0.1."""
    context = browser.new_context(viewport={"width": 1360, "height": 900})  # type: ignore[attr-defined]

    def guard(route: object) -> None:
        url = route.request.url  # type: ignore[attr-defined]
        host = urlparse(url).hostname
        if url.startswith(("data:", "blob:", "about:")) or host == "127.0.0.1":
            route.continue_()  # type: ignore[attr-defined]
        else:
            offsite.urls.append(url)
            route.abort()  # type: ignore[attr-defined]

    context.route("**/*", guard)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("dialog", lambda dialog: dialog.accept())
    yield tab
    context.close()
    assert offsite.urls == [], f"the dashboard tried to reach other hosts: {offsite.urls}"
    assert errors == [], f"script errors on the page: {errors}"


def _screenshot(tab: object, name: str) -> None:
    if SCREENSHOTS:
        IMG.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(IMG / f"ui-{name}.png"), full_page=False)  # type: ignore[attr-defined]


@pytest.fixture
def screenshot() -> Callable[[object, str], None]:
    """Keep a screenshot for the docs when CTLOOP_UI_SCREENSHOTS is set (docs/img/ui-NAME.png)."""
    return _screenshot


@pytest.fixture
def served() -> Iterator[Callable[[object], str]]:
    """Serve another app (other settings, API keys) for one test; stopped after it."""
    started: list[Server] = []

    def start(app: object) -> str:
        started.append(serve(app))
        return started[-1].url

    yield start
    for server in started:
        stop(server)


# Every span retrains; a candidate must beat the champion by 0.02 to be blessed.
STORY_LOOP = churn_loop('id = "customer"', 'retrain_on = ["new_span"]', 'window = "2 spans"',
                        'train = { flavor = "lightgbm", params = { n_estimators = 20 } }',
                        "gate = { min_improvement = 0.02 }",
                        "decay = { max_drop = 0.1, min_labels = 100 }")


@dataclass
class Story:
    root: Path
    spans: list[Any]  # the replay's SpanReports, with their run ids
    url: str


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    """A declared loop replayed into the project's own stores, served by the dashboard:
    its candidates blessed and refused, one span quarantined (see test_story.py)."""
    from ctloop.core.settings import load_settings
    from ctloop.loop import load_loops
    from ctloop.loop.replay import replay
    from ctloop.loop.sample import write_sample_spans
    from ctloop.ui import create_app

    _require_chromium()
    root = tmp_path_factory.mktemp("ui-story")
    (root / "ctloop.toml").write_text(STORY_LOOP)
    write_sample_spans(root / "landing", spans=5, rows=400, change_at=2, shift_at=None,
                       defective_at=3)
    keep = os.getcwd()
    allowed = user_environment()
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k not in allowed}
    try:
        os.chdir(root)
        settings = load_settings(root)
        result = replay(load_loops(settings)["churn"], settings, baseline=True, sandbox=False)
        server = serve(create_app(settings))
        try:
            yield Story(root, result.spans, server.url)
        finally:
            stop(server)
    finally:
        os.chdir(keep)
        os.environ.update(saved)
