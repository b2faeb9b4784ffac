"""Schemathesis over the served OpenAPI schema: whatever it sends, no answer is a 5xx.

Driven through hypothesis directly: schemathesis' pytest plugin does not run on pytest 9.
"""

from __future__ import annotations

import base64
import re

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase

from tests.api.live import LiveServer, register_garment, register_person
from vton.api.uploads import decode_base64
from vton.errors import InvalidInput
from vton.store.ids import check_id

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


def accepts(check, value: str) -> bool:
    try:
        check(value)
    except InvalidInput:
        return False
    return True


def test_the_schema_states_what_the_server_enforces(server: LiveServer) -> None:
    schema = httpx.get(f"{server.url}/openapi.json").json()
    components = schema["components"]["schemas"]
    for name in ("BatchTryOnRequest", "BatchJobRequest"):
        ids = components[name]["properties"]["clothingIds"]
        assert ids["maxItems"] == server.settings.max_batch_items and ids["uniqueItems"], name
    (path_id,) = schema["paths"]["/api/clothing/{clothing_id}"]["get"]["parameters"]
    body_id = components["SingleTryOnRequest"]["properties"]["clothingId"]
    for id_schema in (path_id["schema"], body_id):
        pattern = re.compile(id_schema["pattern"])
        for value in ["shirt-01", "A_b-9", "x" * 64, "../x", "-a", "a.b", "a b", "é", "a\n"]:
            stated = id_schema["minLength"] <= len(value) <= id_schema["maxLength"]
            stated = stated and pattern.fullmatch(value) is not None
            assert stated == accepts(lambda v: check_id("id", v), value), value
    image = components["ClothingRegistration"]["properties"]["image"]
    pattern = re.compile(image["pattern"])
    b64 = base64.b64encode(b"\x89PNG\xff\xfe").decode()
    for value in [
        b64,
        b64.replace("+", "-").replace("/", "_"),
        "data:image/png;base64," + b64,
        "aGk=",
        "aGk",
        "not base64 !!",
        "aGVsbG8=\n",
        "====",
        "%%%",
    ]:
        stated = pattern.fullmatch(value) is not None
        assert stated == accepts(lambda v: decode_base64(v, "image"), value), value
