"""schemathesis against the committed OpenAPI document (docs/openapi.json) on the real running API.

Every operation in the document gets generated requests (the document's examples, coverage cases, fuzzed
positive and negative data), sent to the API served by the `api_server` fixture (real dev server, real
worker). Each response must pass schemathesis's checks: no 5xx, a documented status code, a documented
content type and headers, a body that conforms to the documented schema, schema-invalid requests
rejected with a 4xx, schema-valid ones not refused for their shape, auth enforced, 405s that say what is
allowed. Run with the org key and without a key (then every route but /health must answer 401).

Generated POST /jobs bodies are nearly all invalid configs (422, nothing started). One that happened to be
valid would create a job; `auto_start` is forced to false on schema-valid bodies so such a job only waits
for a start that never comes, and the module's teardown terminates whatever was created.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import requests
import schemathesis
from schemathesis import Case, CheckContext, GenerationMode, Response
from schemathesis.specs.openapi.checks import positive_data_acceptance
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from mipro.api.openapi import DOCUMENT
from mipro.serving import BackgroundServer
from tests.conftest import ORG_A_KEY

pytestmark = pytest.mark.integration

PREFIX = "/api/prompt-learning/online"
CONFIG_ROUTES = {f"POST {PREFIX}/jobs", f"POST {PREFIX}/configs"}  # bodies validated beyond their schema
PUBLIC = {f"GET {PREFIX}/health"}
MAX_EXAMPLES = 12  # per operation and generation mode, fuzzing phase; examples and coverage add their own

schema = schemathesis.openapi.from_path(DOCUMENT)
schema.config.update(request_timeout=15)  # an SSE stream is read until this, or until it ends
schema.config.generation.update(max_examples=MAX_EXAMPLES, modes=list(GenerationMode), deterministic=True)

created_jobs: list[str] = []


@pytest_asyncio.fixture(scope="module", autouse=True)
async def _terminate_created_jobs(temporal_env: WorkflowEnvironment) -> AsyncIterator[None]:
    yield
    for job_id in created_jobs:
        handle = temporal_env.client.get_workflow_handle(job_id)
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            await handle.terminate(reason="created by the schemathesis test")


@pytest.fixture(scope="module")
def http() -> requests.Session:
    return requests.Session()


def _label(case: Case) -> str:
    return f"{case.method.upper()} {case.operation.path}"


def _is_positive(case: Case) -> bool:
    return case.meta is not None and case.meta.generation.mode.is_positive


@schemathesis.check
def config_refusals_are_about_the_config(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """A schema-valid body to a config route may still be an invalid config (422 `invalid_config`), but
    never a request the app's own validation refuses (`invalid_request`): that would mean the document
    accepts what the code does not."""
    if _label(case) in CONFIG_ROUTES and _is_positive(case) and response.status_code == 422:
        code = response.json()["error"]["code"]
        assert code == "invalid_config", f"schema-valid body refused as {code}: {response.text[:500]}"
    return None


def _send(case: Case, api: BackgroundServer, http: requests.Session, headers: dict[str, str]) -> Response:
    if _label(case) == f"POST {PREFIX}/jobs" and isinstance(case.body, dict) and _is_positive(case):
        case.body["auto_start"] = False  # a valid config must not start a real job
    config_route = _label(case) in CONFIG_ROUTES
    response = case.call_and_validate(
        base_url=api.url,
        session=http,
        headers=headers,
        # The generic "valid data is accepted" check cannot know that a config body must also be a valid
        # config; config_refusals_are_about_the_config checks those routes instead.
        excluded_checks=[positive_data_acceptance] if config_route else None,
        additional_checks=[config_refusals_are_about_the_config],
    )
    if _label(case) == f"POST {PREFIX}/jobs" and response.status_code == 201:
        created_jobs.append(response.json()["job_id"])
    return response


@schema.parametrize()
def test_api_conforms_to_its_document(
    case: Case, api_server: BackgroundServer, http: requests.Session
) -> None:
    response = _send(case, api_server, http, {"Authorization": f"Bearer {ORG_A_KEY}"})
    assert response.status_code < 500, response.text[:500]
    if response.status_code == 401:  # only when schemathesis itself left the key out, to probe the auth
        assert response.request.headers.get("Authorization") != f"Bearer {ORG_A_KEY}", response.text[:500]


@schema.parametrize()
def test_api_without_a_key_answers_401(
    case: Case, api_server: BackgroundServer, http: requests.Session
) -> None:
    if case.headers:
        case.headers.pop("Authorization", None)
    response = _send(case, api_server, http, {})
    if _label(case) in PUBLIC:
        assert response.status_code in (200, 503), response.text[:500]
    elif response.status_code != 405:  # a method the route does not have, probed by schemathesis
        assert response.status_code == 401, (_label(case), response.status_code, response.text[:500])
        assert response.json()["error"]["code"] == "unauthorized"
