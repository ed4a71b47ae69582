"""The dashboard without a browser: errors as pages, keys, sessions and CSRF."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ctloop.core.errors import ConfigError
from ctloop.core.settings import Tables, load_settings
from ctloop.metadata import RunRecord, StepRecord, StepStatus, new_id, open_metadata_store
from ctloop.serving.auth import hash_key
from ctloop.ui import create_app
from ctloop.ui.access import AccessPolicy, load_keys, strongest_role


def _client(settings: object, policy: AccessPolicy | None = None) -> TestClient:
    return TestClient(create_app(settings, policy=policy),  # type: ignore[arg-type]
                      raise_server_exceptions=False)


def test_an_unreachable_store_is_a_503_page_naming_it_without_its_password(
    ctloop_home: Path,
) -> None:
    settings = load_settings(metadata_url="postgresql+psycopg://ui:hunter2@127.0.0.1:1/none")
    client = _client(settings)
    for path in ("/runs", "/models", "/runs/abcd1234", "/monitoring", "/healthz"):
        response = client.get(path)
        assert response.status_code == 503, path
        assert "127.0.0.1:1" in response.text and "hunter2" not in response.text
        assert "Traceback" not in response.text


def test_runs_list_counts_cached_steps_and_filters(ctloop_home: Path) -> None:
    settings = load_settings()
    store = open_metadata_store(settings.metadata_url)
    run = store.create_run(RunRecord(id=new_id(), pipeline="p", pipeline_version="1",
                                     trigger="drift", trigger_info={"reason": "temp drifted"}))
    for i, status in enumerate([StepStatus.CACHED, StepStatus.CACHED, StepStatus.SUCCEEDED,
                                StepStatus.FAILED]):
        store.save_step(StepRecord(id=new_id(), run_id=run.id, name=f"s{i}", component="c",
                                   component_version="1", status=status))
    store.create_run(RunRecord(id=new_id(), pipeline="q", pipeline_version="1"))
    client = _client(settings)
    page = client.get("/runs?trigger=drift").text
    assert "temp drifted" in page and "50%" in page and "(1 failed)" in page
    assert "1 matching" in page
    assert "2 matching" in client.get("/runs").text
    bad = client.get("/runs?since=June")
    assert bad.status_code == 400 and "YYYY-MM-DD" in bad.text
    empty = client.get("/runs?since=2020-02-02&until=2020-02-01")
    assert empty.status_code == 400 and "empty" in empty.text
    assert client.get("/runs?per_page=100000").status_code == 400


def _keys(**roles: str) -> Tables:
    """``Settings.tables`` with ``[ctloop.serving.keys]``: name=role, the secret ``NAME-secret``."""
    return Tables(serving={"keys": {name: {"hash": hash_key(f"{name}-secret"), "roles": [role]}
                                    for name, role in roles.items()}})


def test_keys_are_the_serving_keys_from_the_table_and_the_environment() -> None:
    env = {"CTLOOP_SERVING_KEYS": json.dumps(
        {"ci": {"hash": hash_key("ci-secret"), "roles": ["read", "predict"]}})}
    keys = load_keys(_keys(ada="admin", rui="read"), env)
    assert sorted((k.name, strongest_role(k)) for k in keys) == [
        ("ada", "admin"), ("ci", "predict"), ("rui", "read")]
    assert all("secret" not in k.digest for k in keys)
    policy = AccessPolicy(keys)
    assert policy.check_key("ada-secret").name == "ada"  # type: ignore[union-attr]
    assert policy.check_key("ci-secret").name == "ci"  # type: ignore[union-attr]
    assert policy.check_key("nobody") is None


def test_one_ctloop_toml_keys_both_the_service_and_the_dashboard(
    ctloop_home: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ctloop.serving.auth import KeyGuard
    from ctloop.serving.config import ServingConfig

    secret = "ctl_" + "x" * 40
    (ctloop_home / "ctloop.toml").write_text(
        f'[ctloop.serving.keys]\nops = {{ hash = "{hash_key(secret)}", roles = ["admin"] }}\n')
    monkeypatch.chdir(ctloop_home)
    settings = load_settings()
    service = KeyGuard(None, ServingConfig.from_table(settings.tables.serving).keys,  # type: ignore[arg-type]
                       public=())
    dashboard = AccessPolicy(load_keys(settings.tables, {}))
    assert service.find(secret) is not None and service.find(secret + "y") is None
    key = dashboard.check_key(secret)
    assert key is not None and key.name == "ops" and strongest_role(key) == "admin"
    assert dashboard.identify(dashboard.session_cookie(key), "anon").can_act


@pytest.mark.parametrize(("extra", "env", "message"), [
    ({"ui": {"api_keys": [{"name": "a", "role": "admin", "key": "k" * 12}]}}, {},
     r"\[ctloop.ui\] api_keys is no longer read.*\[ctloop.serving.keys\]"),
    ({"ui": {"port": 9000}}, {}, "ctloop ui --port"),
    ({"ui": {"theme": "dark"}}, {}, r"Unknown key 'theme' in the \[ctloop.ui\]"),
    ({"ui": "on"}, {}, "must be a table"),
    ({}, {"CTLOOP_UI_API_KEYS": "ada:admin:secret-123"}, "CTLOOP_UI_API_KEYS is no longer read"),
    ({"serving": {"keys": {"a": {"key": "clear-text"}}}}, {}, "in clear"),
    ({"serving": {"keys": {"a": {"hash": "md5:abc"}}}}, {}, "sha256"),
    ({"serving": {"keys": {"a": {"hash": hash_key("x"), "roles": ["boss"]}}}}, {},
     r"unknown role\(s\) \['boss'\]"),
    ({}, {"CTLOOP_SERVING_KEYS": "{not json"}, "not valid JSON"),
])
def test_bad_key_configuration_is_a_clear_error(extra: dict[str, Any], env: dict[str, str],
                                                message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_keys(Tables.from_tables(extra), env)
    assert "secret-123" not in str(caught.value) and "clear-text" not in str(caught.value)


def test_sessions_cannot_be_forged_and_csrf_is_bound_to_the_session() -> None:
    policy = AccessPolicy(load_keys(_keys(ada="admin", pia="predict"), {}))
    key = policy.check_key("ada-secret")
    assert key is not None and policy.check_key("ada-secret2") is None
    predictor = policy.check_key("pia-secret")
    assert predictor is not None
    assert not policy.identify(policy.session_cookie(predictor), "anon").can_act
    cookie = policy.session_cookie(key)
    who = policy.identify(cookie, "anon")
    assert who.name == "ada" and who.can_act
    forged = cookie.replace("|admin|", "|admin|").replace("ada|", "eve|", 1)
    assert policy.identify(forged, "anon").role is None
    other = policy.identify(None, "anon2")
    assert policy.check_csrf(who, policy.csrf_token(who))
    assert not policy.check_csrf(other, policy.csrf_token(who))
    assert not policy.check_csrf(who, "")


def test_promote_needs_admin_and_a_token(ctloop_home: Path) -> None:
    settings = load_settings()
    policy = AccessPolicy(load_keys(_keys(rui="read"), {}))
    client = _client(settings, policy)
    assert client.post("/models/m/promote", content="version=1").status_code == 403
    client.get("/runs")  # sets the anonymous session cookie
    login = client.post("/login", content="key=rui-secret&csrf=bad",
                        headers={"content-type": "application/x-www-form-urlencoded"})
    assert login.status_code == 403 and "CSRF" in login.text


def test_sign_in_redirects_only_within_the_site(ctloop_home: Path) -> None:
    import re

    policy = AccessPolicy(load_keys(_keys(ada="admin"), {}))
    for target, expected in (("/models", "/models"), ("//evil.example", "/runs"),
                             ("/\\evil.example", "/runs"), ("https://evil.example", "/runs")):
        client = _client(load_settings(), policy)  # signing in starts a new session (and token)
        form = client.get("/login").text
        token = re.search(r'name="csrf" value="([0-9a-f]+)"', form).group(1)  # type: ignore[union-attr]
        response = client.post("/login", data={"key": "ada-secret", "csrf": token,
                                               "next": target}, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == expected
        assert "ada-secret" not in response.headers["set-cookie"]  # the key never leaves


def test_chart_data_cannot_close_its_script_block() -> None:
    import json

    from ctloop.ui.pages.monitoring import script_json

    hostile = {"label": "</script><script>alert(1)</script>&"}
    text = str(script_json(hostile))
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == hostile


def test_with_keys_every_page_needs_a_session_as_the_api_does(ctloop_home: Path) -> None:
    policy = AccessPolicy(load_keys(_keys(rui="read"), {}))
    client = _client(load_settings(), policy)
    for path in ("/runs", "/models", "/monitoring", "/lineage", "/runs/abc?x=1"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next=/"), path
    assert client.get("/login").status_code == 200
    assert client.get("/healthz").status_code == 200  # health stays public
    assert client.post("/models/m/promote", content="version=1").status_code == 403
    without_keys = _client(load_settings())  # a local tool: pages open as before
    assert without_keys.get("/runs").status_code == 200


def test_an_oversized_post_is_refused_before_anything_is_read(ctloop_home: Path) -> None:
    policy = AccessPolicy(load_keys(_keys(ada="admin"), {}))
    client = _client(load_settings(), policy)
    form = {"content-type": "application/x-www-form-urlencoded"}
    for path in ("/login", "/models/m/promote", "/logout"):
        declared = client.post(path, content=b"k=" + b"x" * (100 * 1024 * 1024), headers=form)
        assert declared.status_code == 413 and "64 KiB" in declared.text, path

        def chunks() -> Iterator[bytes]:  # no length declared: counted while read
            yield b"key="
            for _ in range(200):
                yield b"x" * 65536

        chunked = client.post(path, content=chunks(), headers=form)
        # signing in reads the form (at most 64 KiB of it); the others refuse a visitor first
        assert chunked.status_code == (413 if path == "/login" else 403), path
