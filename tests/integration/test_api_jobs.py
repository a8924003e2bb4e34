"""The REST jobs API against the real dev server, a real worker, the simulated LLM and banking77."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from mipro.serving import BackgroundServer
from tests.conftest import ORG_A_KEY, SMALL_JOB, api_config_body

pytestmark = pytest.mark.integration
BASE = "/api/prompt-learning/online"
SMALL = {item.split("=")[0]: int(item.split("=")[1]) for item in SMALL_JOB}


def client(api: BackgroundServer, key: str = ORG_A_KEY) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=api.url + BASE, headers={"Authorization": f"Bearer {key}"}, timeout=60)


async def create(http: httpx.AsyncClient, body: dict[str, Any], **extra: Any) -> dict[str, Any]:
    response = await http.post("/jobs", json={"config_body": body, "overrides": SMALL, **extra})
    assert response.status_code == 201, response.text
    return response.json()


async def wait_status(http: httpx.AsyncClient, job_id: str, wanted: set[str]) -> dict[str, Any]:
    for _ in range(1200):
        job = (await http.get(f"/jobs/{job_id}")).json()
        if job["status"] in wanted:
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {wanted}: {job}")


async def test_a_job_created_over_http_runs_to_a_result(
    api_server: BackgroundServer, simllm: BackgroundServer, task_app: BackgroundServer
) -> None:
    async with client(api_server) as http:
        job = await create(http, api_config_body(task_app.url, simllm.url), metadata={"team": "support"})
        assert job["status"] == "running" and job["job_id"].startswith("pl_") and job["org"] == "acme"
        done = await wait_status(http, job["job_id"], {"succeeded", "failed"})
        assert done["status"] == "succeeded", done
        assert done["finished_at"] and done["best_score"] is not None and done["metadata"] == {"team": "support"}
        result = (await http.get(f"/jobs/{job['job_id']}/result")).json()
        assert result["simulated_llm"] is True
        assert result["result"]["total_trials"] == SMALL["mipro.num_iterations"] * SMALL[
            "mipro.num_evaluations_per_iteration"
        ]
        assert result["best_messages"][0]["role"] == "system"
        metrics = (await http.get(f"/jobs/{job['job_id']}/metrics")).json()
        names = {m["name"] for m in metrics}
        assert {"trial.minibatch_score", "validation.score", "spend.rollout_usd"} <= names
        trials = [m for m in metrics if m["name"] == "trial.minibatch_score"]
        assert len(trials) == result["result"]["total_trials"] - sum(
            t["minibatch_score"] is None for t in result["result"]["trials"]
        )
        page = (await http.get(f"/jobs/{job['job_id']}/candidates", params={"limit": 2, "offset": 1})).json()
        assert page["total"] == len(result["result"]["attempted_candidates"]) and len(page["candidates"]) == 2
        events = (await http.get(f"/jobs/{job['job_id']}/events", params={"limit": 3})).json()
        assert [e["seq"] for e in events["events"]] == [1, 2, 3] and events["has_more"]
        report = await http.get(f"/jobs/{job['job_id']}/report")
        assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
        listed = (await http.get("/jobs", params={"status": "succeeded"})).json()
        assert job["job_id"] in [j["job_id"] for j in listed["jobs"]]
