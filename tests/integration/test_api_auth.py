"""Auth and org isolation on every route of the committed API: 401 without a valid key, 404 (never 403)
for another org's job, and another org's jobs and configs never listed or changed."""

from __future__ import annotations

import pytest

from mipro.api.app import create_app
from mipro.api.settings import ApiSettings
from mipro.serving import BackgroundServer
from tests.conftest import ORG_B_KEY, api_config_body
from tests.integration.api_client import api_client, create_job, wait_listed

pytestmark = pytest.mark.integration
ROUTES = [
    (method.upper(), path.removeprefix("/api/prompt-learning/online"))
    for path, item in create_app(ApiSettings(api_keys="doc:unused")).openapi()["paths"].items()
    for method in item
]
PUBLIC = {("GET", "/health")}


def test_every_route_is_listed() -> None:
    assert len(ROUTES) >= 16 and ("GET", "/jobs/{job_id}/events/stream") in ROUTES


@pytest.mark.parametrize("key", [None, "sk_mipro_not_a_key", ""])
async def test_every_route_but_health_needs_a_valid_key(
    api_server: BackgroundServer, key: str | None
) -> None:
    async with api_client(api_server, key=key) as http:
        for method, path in ROUTES:
            url = path.replace("{job_id}", "pl_0123456789abcdef").replace("{name}", "cfg")
            response = await http.request(method, url, json={} if method == "POST" else None)
            if (method, path) in PUBLIC:
                assert response.status_code == 200, (method, path)
                continue
            assert response.status_code == 401, (method, path, response.text)
            assert response.json()["error"]["code"] == "unauthorized"
            assert response.headers["www-authenticate"] == "Bearer"


async def test_an_org_never_sees_lists_or_controls_another_orgs_job(
    api_server: BackgroundServer, simllm: BackgroundServer, task_app: BackgroundServer
) -> None:
    async with api_client(api_server) as acme, api_client(api_server, key=ORG_B_KEY) as beta:
        body = api_config_body(task_app.url, simllm.url)
        job_id = (await create_job(acme, body, auto_start=False))["job_id"]  # waits: nothing runs
        assert (
            await acme.post("/configs", json={"name": "acme-only", "config_body": body})
        ).status_code == 201
        for method, path in ROUTES:
            if "{job_id}" not in path and "{name}" not in path:
                continue
            url = path.replace("{job_id}", job_id).replace("{name}", "acme-only")
            response = await beta.request(method, url)
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["error"]["code"] == "not_found"
            assert job_id not in response.text or "no job" in response.text
        assert (await wait_listed(acme, job_id))["status"] == "created"  # so visibility has it by now
        listed_for_beta = (await beta.get("/jobs", params={"limit": 500})).json()["jobs"]
        assert job_id not in {j["job_id"] for j in listed_for_beta}
        assert "acme-only" not in (await beta.get("/configs")).json()["configs"]
        still = (await acme.get(f"/jobs/{job_id}")).json()
        assert still["status"] == "created" and still["org"] == "acme"
        assert (await acme.post(f"/jobs/{job_id}/cancel")).status_code == 200
