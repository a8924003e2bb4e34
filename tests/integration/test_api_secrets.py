"""A secret in a request body never reaches a job's history, events or any response: an inline task-app key
is removed (the response says so), a provider key or secret-looking metadata is refused."""

from __future__ import annotations

import uuid

import pytest
from temporalio.testing import WorkflowEnvironment

from mipro.serving import BackgroundServer
from tests.conftest import api_config_body
from tests.integration.api_client import api_client, create_job
from tests.integration.test_secrets import history_text

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("where", ["config_body", "overrides"])
async def test_an_inline_task_app_key_is_removed_and_the_response_says_so(
    api_server: BackgroundServer,
    simllm: BackgroundServer,
    task_app: BackgroundServer,
    temporal_env: WorkflowEnvironment,
    where: str,
) -> None:
    marker = "sk-inline-" + uuid.uuid4().hex
    body = api_config_body(task_app.url, simllm.url)
    extra = {"overrides": {"task_app_api_key": marker}}
    if where == "config_body":
        body["prompt_learning"]["task_app_api_key"] = marker
        extra = {}
    async with api_client(api_server) as http:
        job = await create_job(http, body, auto_start=False, **extra)
        assert any("task_app_api_key was removed" in n for n in job["notices"]), job
        assert marker not in str(job)
        job_id = job["job_id"]
        history = await temporal_env.client.get_workflow_handle(job_id).fetch_history()
        assert marker not in history_text(history.to_json())
        for path in ("", "/events", "/metrics", "/candidates"):
            response = await http.get(f"/jobs/{job_id}{path}")
            assert response.status_code == 200 and marker not in response.text, path
        assert (await http.post(f"/jobs/{job_id}/cancel")).status_code == 200


async def test_provider_keys_and_secret_metadata_are_refused_without_echoing_them(
    api_server: BackgroundServer, simllm: BackgroundServer, task_app: BackgroundServer
) -> None:
    marker = "sk-provider-" + uuid.uuid4().hex
    body = api_config_body(task_app.url, simllm.url)
    body["prompt_learning"]["policy"]["api_key"] = marker
    async with api_client(api_server) as http:
        refused = await http.post("/jobs", json={"config_body": body})
        assert refused.status_code == 422 and marker not in refused.text
        assert refused.json()["error"]["details"][0]["field"] == "prompt_learning.policy.api_key"
        clean = api_config_body(task_app.url, simllm.url)
        meta = await http.post("/jobs", json={"config_body": clean, "metadata": {"openai_api_key": marker}})
        assert meta.status_code == 422 and marker not in meta.text
        assert meta.json()["error"]["details"][0]["field"] == "metadata.openai_api_key"
        wrong_type = await http.post("/jobs", json={"config_body": clean, "auto_start": marker})
        assert wrong_type.status_code == 422 and marker not in wrong_type.text
