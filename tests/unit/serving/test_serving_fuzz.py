"""schemathesis over the service's OpenAPI document: no generated request gets a 5xx.

Runs against a real started server with a prediction log, a canary and a
shadow, so generated bodies reach parsing, routing, scoring and logging. Half
the cases keep schemathesis's model name and half use the served one, so
both the 404 path and the scoring path are fuzzed. Bounded in examples per
operation to keep the suite fast.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctloop.requestlog.log import open_prediction_log
from ctloop.serving import ServingConfig
from ctloop.serving.background import background_server


@pytest.mark.slow
def test_no_generated_request_gets_a_server_error(three_versions, tmp_path) -> None:
    config = ServingConfig.from_table({"canary": "challenger=30%", "shadow": "v3",
                                       "reload_interval": 0})
    app = three_versions.app(config=config, prediction_log=open_prediction_log(tmp_path / "l"))
    seen: dict[str, int] = {}
    with background_server(app) as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        for result in schema.get_all_operations():
            operation = result.ok()  # type: ignore[union-attr]  # our schema is valid

            @given(case=operation.as_strategy(), served=st.booleans())
            @settings(max_examples=25, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            def check(case, served: bool) -> None:
                if served and "name" in (case.path_parameters or {}):
                    case.path_parameters["name"] = "flights"
                response = case.call(base_url=url)
                seen[case.operation.label] = seen.get(case.operation.label, 0) + 1
                assert response.status_code < 500, (
                    case.method, case.formatted_path, case.body, response.text[:300]
                )

            check()
    assert len(seen) >= 15 and {"POST /v1/models/{name}:predict",
                                "POST /v2/models/{name}/infer"} <= set(seen)
