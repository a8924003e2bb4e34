"""What schemathesis found in the API, pinned without Temporal: requests the app refuses before it reaches
Temporal (routing, auth, validation). tests/integration/test_api_schema.py runs the generated requests."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from temporalio.service import RPCError, RPCStatusCode

from mipro.api.app import PREFIX, create_app
from mipro.api.settings import ApiSettings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

KEY = "sk_unit_test_key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = create_app(ApiSettings(api_keys=f"acme:{KEY}"))
    app.state.service = object()  # never reached: every request here is refused before the route runs
    return TestClient(app, raise_server_exceptions=False)  # no lifespan: no Temporal


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/configs", "GET, POST"),
        ("PUT", "/jobs", "GET, POST"),
        ("OPTIONS", "/jobs/pl_0123456789abcdef", "GET"),
        ("GET", "/jobs/pl_0123456789abcdef/pause", "POST"),
    ],
)
def test_405_names_all_methods_of_the_path(client: TestClient, method: str, path: str, allowed: str) -> None:
    response = client.request(method, PREFIX + path, headers=AUTH)
    assert response.status_code == 405 and response.headers["Allow"] == allowed
    assert response.json()["error"]["code"] == "method_not_allowed"


BAD_JOB_BODIES: list[dict[str, Any]] = [
    {"config_name": "saved", "auto_start": 0},  # no coercion: 0 is not false
    {"config_name": "saved", "overrides": {"mipro.batch_size": 8}, "config_body": {"prompt_learning": {}}},
    {"overrides": {}},  # neither config_body nor config_name
]


@pytest.mark.parametrize("body", BAD_JOB_BODIES)
def test_bodies_the_document_refuses_are_refused(client: TestClient, body: dict[str, Any]) -> None:
    response = client.post(f"{PREFIX}/jobs", json=body, headers=AUTH)
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request"
    assert client.post(f"{PREFIX}/jobs", json=body).status_code == 401  # without a key: only a 401


def test_a_body_that_is_not_utf8_json_is_a_422_not_a_400(client: TestClient) -> None:
    raw = b"\xc3(C["  # not UTF-8: FastAPI answers 400 "error parsing the body"
    headers = {"Content-Type": "application/json"}
    response = client.post(f"{PREFIX}/jobs", content=raw, headers={**headers, **AUTH})
    assert response.status_code == 422 and response.json()["error"]["details"][0]["field"] == "body"
    unauthenticated = client.post(f"{PREFIX}/jobs", content=raw, headers=headers)
    assert unauthenticated.status_code == 401 and unauthenticated.headers["WWW-Authenticate"] == "Bearer"


NOT_RFC3339 = ["0.5", "1700000000", "2026-01-31T12:00:00", "2026-01-31", "2026-01-31T12:00Z"]


@pytest.mark.parametrize("since", NOT_RFC3339)
def test_since_is_an_rfc3339_date_time_with_an_offset(client: TestClient, since: str) -> None:
    response = client.get(f"{PREFIX}/jobs", params={"since": since}, headers=AUTH)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == "query.since"


def test_a_bad_key_hears_401_before_any_validation_error(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer sk_wrong"}, {"Authorization": f"Basic {KEY}"}):
        response = client.get(f"{PREFIX}/jobs", params={"limit": 0, "since": "x"}, headers=headers)
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"


class _TemporalDown:
    """A JobService stand-in whose Temporal calls fail as the SDK fails when the frontend is unreachable."""

    async def list(self, *_: Any) -> None:
        raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")


def test_temporal_unreachable_is_a_503_in_the_error_shape() -> None:
    app = create_app(ApiSettings(api_keys=f"acme:{KEY}"))
    app.state.service = _TemporalDown()
    response = TestClient(app, raise_server_exceptions=False).get(f"{PREFIX}/jobs", headers=AUTH)
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "unavailable" and "UNAVAILABLE" in error["message"]
