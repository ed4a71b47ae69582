"""schemathesis over the dashboard's routes: no generated request gets a 5xx.

The dashboard serves HTML and publishes no OpenAPI document, so the test builds one
from its routes (``app.openapi()``, FastAPI's own) and adds what FastAPI cannot see:
the form bodies of its POST routes, which the dashboard parses itself. The app runs
live under uvicorn over a project a loop has really run in (a run, a model with a
champion, a loop's memory, monitor reports), and half the generated cases name what
exists there (the model, a run, an artifact, a version, a valid CSRF token), so the
cases reach the pages' queries and the registry's moves, not only their 404s.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ctloop.loop.sample import write_sample_spans
from ctloop.testing.loops import churn_loop

pytestmark = pytest.mark.slow

ANON = "a" * 32  # the anonymous session cookie every case carries
FORMS = {  # field -> JSON schema of the form bodies the dashboard reads (ui/forms.py)
    "/login": {"csrf": {"type": "string"}, "key": {"type": "string"},
               "next": {"type": "string"}},
    "/logout": {"csrf": {"type": "string"}},
    "/models/{name}/promote": {"csrf": {"type": "string"}, "version": {"type": "string"},
                               "alias": {"type": "string"}, "reason": {"type": "string"}},
    "/models/{name}/rollback": {"csrf": {"type": "string"}, "alias": {"type": "string"},
                                "reason": {"type": "string"}},
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A churn project after ``ctloop loop run churn --once`` over two landed spans."""
    from ctloop.cli.main import main
    from ctloop.core.settings import load_settings
    from ctloop.metadata import open_metadata_store

    home = tmp_path_factory.mktemp("ui-fuzz")
    monkey = pytest.MonkeyPatch()
    monkey.chdir(home)
    for var in ("CTLOOP_HOME", "CTLOOP_METADATA_URL", "CTLOOP_ARTIFACTS_URL",
                "CTLOOP_ONLINE_STORE_URL", "CTLOOP_RUNNER"):
        monkey.delenv(var, raising=False)
    try:
        write_sample_spans(home / "landing", spans=2, rows=300, change_at=None, shift_at=None)
        (home / "ctloop.toml").write_text(churn_loop(
            'window = "2 spans"',
            'train = { flavor = "lightgbm", params = { n_estimators = 10 } }'))
        assert main(["loop", "run", "churn", "--once"]) == 0
        settings = load_settings()
        store = open_metadata_store(settings.metadata_url)
        try:
            runs = store.list_runs()
            artifacts = store.list_artifacts()
        finally:
            store.close()
        assert runs and artifacts
        yield {"settings": settings, "run": runs[0].id, "artifact": artifacts[0].id}
    finally:
        monkey.undo()


def _document(app: Any) -> dict[str, Any]:
    """The dashboard's routes as FastAPI describes them, with their form bodies."""
    document: dict[str, Any] = app.openapi()
    for path, fields in FORMS.items():
        document["paths"][path]["post"]["requestBody"] = {"content": {
            "application/x-www-form-urlencoded": {"schema": {
                "type": "object", "properties": fields}}}}
    return document


def test_no_generated_request_to_the_dashboard_gets_a_server_error(
        project: dict[str, Any]) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from ctloop.serving.background import background_server
    from ctloop.ui import create_app
    from ctloop.ui.access import Identity
    from ctloop.ui.state import ANON_COOKIE

    app = create_app(project["settings"])
    csrf = app.state.ui.policy.csrf_token(Identity("local user", "admin", ANON))
    real = {"name": "churn", "model": "churn", "run_id": project["run"],
            "artifact_id": project["artifact"], "version": 1}
    schema = schemathesis.openapi.from_dict(_document(app))
    seen: dict[str, int] = {}
    answered: set[str] = set()  # operations some case reached a page (or a move) of
    with background_server(app) as url:
        for result in schema.get_all_operations():
            operation = result.ok()  # type: ignore[union-attr]  # our schema is valid

            @given(case=operation.as_strategy(), known=st.booleans())
            @settings(max_examples=30, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            def check(case: Any, known: bool) -> None:
                if known:  # what exists, so the case reaches the page's queries
                    for key in case.path_parameters or {}:
                        case.path_parameters[key] = real.get(key, case.path_parameters[key])
                    if isinstance(case.body, dict) and "csrf" in case.body:
                        case.body["csrf"] = csrf
                        if "version" in case.body:
                            case.body["version"] = "1"  # a real move of the registry
                response = case.call(base_url=url, allow_redirects=False,
                                     headers={"Cookie": f"{ANON_COOKIE}={ANON}"})
                seen[case.operation.label] = seen.get(case.operation.label, 0) + 1
                if response.status_code < 400:
                    answered.add(case.operation.label)
                assert response.status_code < 500, (
                    case.method, case.formatted_path, case.query, case.body,
                    response.text[-400:])

            check()
    assert len(answered) >= 12, sorted(answered)  # the cases reach the pages themselves
    assert "POST /models/{name}/promote" in answered  # a generated form moved an alias
    assert len(seen) == 20 and {"POST /models/{name}/promote", "GET /lineage",
                                "GET /models/{name}/versions/{version}"} <= set(seen)
