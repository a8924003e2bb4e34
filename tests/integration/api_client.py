"""Small HTTP helpers for the REST API tests: an authorised client, job creation, status polling, SSE."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from mipro.serving import BackgroundServer
from tests.conftest import ORG_A_KEY, SMALL_JOB

BASE = "/api/prompt-learning/online"
SMALL = {item.split("=")[0]: int(item.split("=")[1]) for item in SMALL_JOB}
FINAL = {"succeeded", "cancelled", "failed", "terminated", "timed_out"}


def api_client(api: BackgroundServer, key: str | None = ORG_A_KEY) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(base_url=api.url + BASE, headers=headers, timeout=60)


# Smaller seed pools than the shipped config (40/96/60/150): API tests exercise the API, not the search.
TINY_POOLS = {"bootstrap_train_seeds": 16, "online_pool": 48, "val_seeds": 16, "test_pool": 24}


def tiny_pools(body: dict[str, Any]) -> dict[str, Any]:
    """Overrides cutting each seed pool of a config body to TINY_POOLS (pools stay disjoint)."""
    mipro = body["prompt_learning"]["mipro"]
    return {f"mipro.{pool}": mipro[pool][:n] for pool, n in TINY_POOLS.items()}


async def create_job(http: httpx.AsyncClient, body: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """POST /jobs with SMALL_JOB's search and tiny pools (plus any `overrides` given)."""
    overrides = {**SMALL, **tiny_pools(body), **extra.pop("overrides", {})}
    payload = {"config_body": body, "overrides": overrides, **extra}
    response = await http.post("/jobs", json=payload)
    assert response.status_code == 201, response.text
    return response.json()


async def wait_status(http: httpx.AsyncClient, job_id: str, wanted: set[str]) -> dict[str, Any]:
    job: dict[str, Any] = {}
    for _ in range(2400):
        job = (await http.get(f"/jobs/{job_id}")).json()
        if job["status"] in wanted:
            return job
        if job["status"] in FINAL:
            raise AssertionError(f"job {job_id} ended {job['status']} before reaching {wanted}: {job}")
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {wanted}: {job}")


def event_of(message: dict[str, str]) -> dict[str, Any]:
    return json.loads(message["data"])


async def wait_listed(http: httpx.AsyncClient, job_id: str, **params: Any) -> dict[str, Any]:
    """The job's row in GET /jobs (visibility is eventually consistent: poll until it shows)."""
    for _ in range(400):
        rows = (await http.get("/jobs", params={"limit": 500, **params})).json()["jobs"]
        found = [row for row in rows if row["job_id"] == job_id]
        if found:
            return found[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} never listed with {params}")
