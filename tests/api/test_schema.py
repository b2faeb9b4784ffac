"""Schemathesis over the served OpenAPI schema: whatever it sends, no answer is a 5xx.

Driven through hypothesis directly: schemathesis' pytest plugin does not run on pytest 9.
"""

from __future__ import annotations

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase

from tests.api.live import LiveServer, register_garment, register_person

USER = "schema-user"
EXAMPLES = 6
"""Generated requests per operation: enough to reach every validator, fast on two cores."""


@pytest.fixture(scope="module")
def api_schema(server: LiveServer) -> schemathesis.schemas.BaseSchema:
    with server.client(USER) as client:  # so that the schema's example ids exist
        register_person(client)
        register_garment(client, "shirt-01")
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


def test_no_request_gets_a_5xx(
    api_schema: schemathesis.schemas.BaseSchema, server: LiveServer
) -> None:
    headers = {"Authorization": f"Bearer {server.token(USER)}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20

    for operation in operations:

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=EXAMPLES,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def no_5xx(case: schemathesis.Case) -> None:
            response = case.call(headers=headers, timeout=60)
            assert response.status_code < 500, (case.method, case.path, response.text)

        no_5xx()
