"""Property-based check of the running sandbox against the OpenAPI spec (schemathesis 4.x).

Each operation of the spec gets generated requests (positive and negative data, bounded
examples) sent over real HTTP with a real bearer token; every answer must be free of
server errors and conform to the spec (status code, content type, body schema).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from carrier_sandbox import Sandbox
from carrier_sandbox.spec_check import SPEC_PATH

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLE_REGISTRATION = "reg_xyz789"  # the registration id used by the spec's example

schema = schemathesis.openapi.from_path(str(SPEC_PATH))


@pytest.fixture(scope="module")
def live() -> Iterator[Sandbox]:
    """One validating sandbox for the whole module (hypothesis needs a non-function scope)."""
    box = Sandbox(
        client_id="st-client",
        client_secret="st-secret-77ab",
        delivery_delay=0.1,
        registrations=(EXAMPLE_REGISTRATION,),
        validate=True,
    ).start()
    for i in range(5):
        box.inject_inbound(EXAMPLE_REGISTRATION, "tel:+12125559876", f"reply {i}")
    try:
        yield box
        if box.response_violations:
            pytest.fail("responses violate the spec:\n" + "\n".join(box.response_violations))
    finally:
        box.stop()


@pytest.fixture(scope="module")
def auth_headers(live: Sandbox) -> dict[str, str]:
    r = requests.post(
        live.base_url + "/oauth/v4/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "st-client",
            "client_secret": "st-secret-77ab",
            "scope": "SMS",
        },
        timeout=5,
    )
    r.raise_for_status()
    return {"Authorization": "Bearer " + r.json()["access_token"]}


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_sandbox_conforms_to_spec(case, live: Sandbox, auth_headers: dict[str, str]) -> None:
    case.call_and_validate(base_url=live.base_url, headers=auth_headers, checks=CHECKS, timeout=10)


def test_generated_traffic_reached_every_operation(live: Sandbox) -> None:
    """Runs after the generated tests (same module): every operation was exercised."""
    requests_seen = live.state()["requests"]
    for key in (
        "POST /oauth/v4/token",
        "POST /sms/v3/messaging/outbox",
        "GET /sms/v3/messaging/outbox/{messageId}",
        "GET /sms/v3/messaging/inbox/{registrationId}",
    ):
        assert requests_seen.get(key, 0) >= 5, (key, requests_seen)
    assert live.state()["sent"], "the spec's example send must have been accepted"
