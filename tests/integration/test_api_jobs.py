"""The REST jobs API against the real dev server, a real worker, the simulated LLM and banking77."""

from __future__ import annotations

import pytest

from mipro.serving import BackgroundServer
from tests.conftest import api_config_body
from tests.integration.api_client import SMALL, api_client, create_job, tiny_pools, wait_listed, wait_status

pytestmark = pytest.mark.integration


async def test_a_job_created_over_http_runs_to_a_result(
    api_server: BackgroundServer, simllm: BackgroundServer, task_app: BackgroundServer
) -> None:
    async with api_client(api_server) as http:
        job = await create_job(http, api_config_body(task_app.url, simllm.url), metadata={"team": "support"})
        assert job["status"] == "running" and job["job_id"].startswith("pl_") and job["org"] == "acme"
        done = await wait_status(http, job["job_id"], {"succeeded", "failed"})
        assert done["status"] == "succeeded", done
        assert (
            done["finished_at"] and done["best_score"] is not None and done["metadata"] == {"team": "support"}
        )
        result = (await http.get(f"/jobs/{job['job_id']}/result")).json()
        assert result["simulated_llm"] is True
        assert (
            result["result"]["total_trials"]
            == SMALL["mipro.num_iterations"] * SMALL["mipro.num_evaluations_per_iteration"]
        )
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
        assert (await wait_listed(http, job["job_id"], status="succeeded"))["best_score"] == done[
            "best_score"
        ]


async def test_pause_resume_and_refused_transitions(
    api_server: BackgroundServer, simllm: BackgroundServer, task_app: BackgroundServer
) -> None:
    async with api_client(api_server) as http:
        job_id = (await create_job(http, api_config_body(task_app.url, simllm.url)))["job_id"]
        paused = await http.post(f"/jobs/{job_id}/pause")
        assert paused.status_code == 200 and paused.json()["status"] == "paused", paused.text
        again = await http.post(f"/jobs/{job_id}/pause")
        assert again.status_code == 409 and "already paused" in again.json()["error"]["message"]
        assert (await http.get(f"/jobs/{job_id}/result")).status_code == 409
        resumed = await http.post(f"/jobs/{job_id}/resume")
        assert resumed.status_code == 200 and resumed.json()["status"] == "running"
        twice = await http.post(f"/jobs/{job_id}/resume")
        assert twice.status_code == 409 and "not paused" in twice.json()["error"]["message"]
        await wait_status(http, job_id, {"succeeded"})
        for action in ("pause", "resume", "cancel", "start"):
            late = await http.post(f"/jobs/{job_id}/{action}")
            assert late.status_code == 409, (action, late.text)
            assert "finished (succeeded)" in late.json()["error"]["message"]


async def test_a_job_created_without_auto_start_waits_for_start(
    api_server: BackgroundServer, simllm: BackgroundServer, task_app: BackgroundServer
) -> None:
    async with api_client(api_server) as http:
        job = await create_job(http, api_config_body(task_app.url, simllm.url), auto_start=False)
        assert job["status"] == "created" and job["started_at"] is None
        detail = await wait_status(http, job["job_id"], {"created"})
        assert detail["progress"]["trials_done"] == 0 and detail["progress"]["started_at"] is None
        refused = await http.post(f"/jobs/{job['job_id']}/pause")
        assert refused.status_code == 409 and "has not started" in refused.json()["error"]["message"]
        started = await http.post(f"/jobs/{job['job_id']}/start")
        assert started.status_code == 200, started.text
        assert (await http.post(f"/jobs/{job['job_id']}/start")).status_code == 409
        done = await wait_status(http, job["job_id"], {"succeeded"})
        assert done["started_at"] is not None and done["started_at"] >= done["created_at"]


async def test_cancel_a_created_job_and_a_running_job(
    api_server: BackgroundServer, simllm: BackgroundServer, task_app: BackgroundServer
) -> None:
    async with api_client(api_server) as http:
        body = api_config_body(task_app.url, simllm.url)
        waiting = (await create_job(http, body, auto_start=False))["job_id"]
        running = (await create_job(http, body))["job_id"]
        for job_id in (waiting, running):
            response = await http.post(f"/jobs/{job_id}/cancel")
            assert response.status_code == 200, response.text
        for job_id in (waiting, running):
            await wait_status(http, job_id, {"cancelled"})
            result = (await http.get(f"/jobs/{job_id}/result")).json()
            assert result["status"] == "cancelled" and result["result"]["best_test_score"] is None


async def test_an_invalid_config_is_a_422_naming_every_field_and_starts_nothing(
    api_server: BackgroundServer, simllm: BackgroundServer, task_app: BackgroundServer
) -> None:
    async with api_client(api_server) as http:
        before = (await http.get("/jobs", params={"limit": 500})).json()["jobs"]
        body = api_config_body(task_app.url, simllm.url)
        overrides = {"mipro.batch_size": 0, "mipro.num_iterations": "many"}
        response = await http.post("/jobs", json={"config_body": body, "overrides": overrides})
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["code"] == "invalid_config"
        fields = {d["field"] for d in error["details"]}
        assert {"prompt_learning.mipro.batch_size", "prompt_learning.mipro.num_iterations"} <= fields
        assert all(d["fix"] for d in error["details"] if d["field"].endswith("batch_size"))
        both = await http.post("/jobs", json={"config_body": body, "config_name": "x"})
        assert both.status_code == 422 and both.json()["error"]["code"] == "invalid_request"
        unknown = await http.post("/jobs", json={"config_name": "never-saved"})
        assert unknown.status_code == 404
        after = (await http.get("/jobs", params={"limit": 500})).json()["jobs"]
        assert {j["job_id"] for j in after} == {j["job_id"] for j in before}


async def test_saved_configs_start_jobs_by_name(
    api_server: BackgroundServer, simllm: BackgroundServer, task_app: BackgroundServer
) -> None:
    async with api_client(api_server) as http:
        body = api_config_body(task_app.url, simllm.url)
        saved = await http.post("/configs", json={"name": "banking77-small", "config_body": body})
        assert saved.status_code == 201, saved.text
        assert "banking77-small" in (await http.get("/configs")).json()["configs"]
        fetched = (await http.get("/configs/banking77-small")).json()
        assert fetched["config_body"]["prompt_learning"]["task_app_url"] == task_app.url
        bad = await http.post("/configs", json={"name": "bad", "config_body": {"prompt_learning": {}}})
        assert bad.status_code == 422 and "bad" not in (await http.get("/configs")).json()["configs"]
        overrides = {**SMALL, **tiny_pools(body)}
        job = await http.post("/jobs", json={"config_name": "banking77-small", "overrides": overrides})
        assert job.status_code == 201, job.text
        await wait_status(http, job.json()["job_id"], {"succeeded"})


async def test_a_failed_job_says_why_and_listing_is_newest_first_and_filters(
    api_server: BackgroundServer, simllm: BackgroundServer, task_app: BackgroundServer
) -> None:
    async with api_client(api_server) as http:
        body = api_config_body("http://127.0.0.1:9", simllm.url)  # nothing listens on port 9
        older = (await create_job(http, body))["job_id"]
        newer = await create_job(http, api_config_body(task_app.url, simllm.url), auto_start=False)
        failed = await wait_status(http, older, {"failed"})
        assert failed["error"]["type"] == "TaskAppHealthCheckFailed", failed
        assert failed["finished_at"] and failed["progress"] is None
        refused = await http.get(f"/jobs/{older}/result")
        assert refused.status_code == 409 and "TaskAppHealthCheckFailed" in refused.json()["error"]["message"]
        await wait_listed(http, older, status="failed")
        await wait_listed(http, newer["job_id"], status="created")
        rows = (await http.get("/jobs", params={"limit": 500})).json()["jobs"]
        ids = [row["job_id"] for row in rows]
        assert ids.index(newer["job_id"]) < ids.index(older)
        created = [row["created_at"] for row in rows]
        assert created == sorted(created, reverse=True)
        since = (await http.get("/jobs", params={"since": newer["created_at"], "limit": 500})).json()["jobs"]
        assert newer["job_id"] in {r["job_id"] for r in since} and older not in {r["job_id"] for r in since}
        first = (await http.get("/jobs", params={"limit": 1})).json()
        assert first["has_more"] and len(first["jobs"]) == 1
        assert (await http.post(f"/jobs/{newer['job_id']}/cancel")).status_code == 200
