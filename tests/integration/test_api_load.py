"""Load on the REST API: 50 SSE clients on one job, and 20 jobs created at once.

Against the real API (`api_server`), the real Temporal dev server, a real worker, the simulated LLM and
the banking77 task app. Jobs are tiny (2 iterations x 2 trials of 4 seeds, 4-seed pools) so the file
stays quick; nothing is asserted about time (deadlines below only stop a hang).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from mipro.api.sse_client import sse_messages
from mipro.serving import BackgroundServer
from tests.conftest import api_config_body
from tests.integration.api_client import api_client

pytestmark = pytest.mark.integration
DEADLINE_S = 600  # hang guard only
CLIENTS = 50
JOBS = 20


def tiny_overrides(body: dict[str, Any], seed: int = 7) -> dict[str, Any]:
    """Prefixes of the example config's pools (still disjoint), 2 x 2 trials of 4 seeds."""
    mipro = body["prompt_learning"]["mipro"]  # type: ignore[index]
    return {
        "mipro.bootstrap_train_seeds": mipro["bootstrap_train_seeds"][:4],
        "mipro.online_pool": mipro["online_pool"][:4],
        "mipro.val_seeds": mipro["val_seeds"][:4],
        "mipro.test_pool": mipro["test_pool"][:4],
        "mipro.num_iterations": 2,
        "mipro.num_evaluations_per_iteration": 2,
        "mipro.batch_size": 4,
        "mipro.max_parallel_trials": 2,
        "mipro.seed": seed,
    }


async def all_events(http: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    since = 0
    while True:
        page = (await http.get(f"/jobs/{job_id}/events", params={"since_seq": since, "limit": 1000})).json()
        events += page["events"]
        since = page["next_since_seq"]
        if not page["has_more"]:
            return events


async def listed(http: httpx.AsyncClient, ids: list[str], **params: str) -> dict[str, dict[str, Any]]:
    """GET /jobs until every id is listed (visibility is updated asynchronously), by id."""
    deadline = time.monotonic() + 60
    while True:
        response = await http.get("/jobs", params={"limit": 500, **params})
        assert response.status_code == 200, response.text
        found = {j["job_id"]: j for j in response.json()["jobs"] if j["job_id"] in ids}
        if len(found) == len(ids) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


async def wait_all_finished(http: httpx.AsyncClient, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Poll GET /jobs (one request for all of them, so the polling costs the worker nothing) until every
    job has finished."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        found = await listed(http, ids)
        if all(j["finished_at"] for j in found.values()) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.5)


async def test_fifty_sse_clients_on_one_job_each_get_every_event_once_in_order(
    api_server: BackgroundServer, simllm: BackgroundServer, task_app: BackgroundServer
) -> None:
    body = api_config_body(task_app.url, simllm.url)
    async with api_client(api_server) as http:
        created = await http.post(
            "/jobs", json={"config_body": body, "overrides": tiny_overrides(body), "auto_start": False}
        )
        assert created.status_code == 201, created.text
        job_id = created.json()["job_id"]
        early = CLIENTS // 2  # open before the job starts; the others join it while it runs (paused)
        on_feed = [asyncio.Event() for _ in range(CLIENTS)]

        async def client(i: int) -> tuple[list[dict[str, Any]], list[str]]:
            """Every event message, and the kinds of message seen (event / comment / end) in order."""
            events: list[dict[str, Any]] = []
            kinds: list[str] = []
            async with (
                httpx.AsyncClient(
                    base_url=http.base_url, headers=http.headers, timeout=httpx.Timeout(60, read=120)
                ) as own,
                own.stream("GET", f"/jobs/{job_id}/events/stream") as response,
            ):
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                async for message in sse_messages(response):
                    if "comment" in message:
                        kinds.append("comment")
                    elif message.get("event") == "end":
                        kinds.append("end")
                        assert json.loads(message["data"]) == {"job_id": job_id}
                    else:
                        kinds.append("event")
                        event = json.loads(message["data"])
                        assert message["id"] == str(event["seq"]) and message["event"] == event["type"]
                        events.append(event)
                    # early clients: the hub's heartbeat means this stream is on the feed; late ones: they
                    # have caught up with the paused job
                    if i < early or message.get("event") == "mipro.job.paused":
                        on_feed[i].set()
            return events, kinds

        async def all_on_feed(group: list[asyncio.Task[Any]], flags: list[asyncio.Event]) -> None:
            ready = asyncio.gather(*(f.wait() for f in flags))
            await asyncio.wait([ready, *group], timeout=120, return_when=asyncio.FIRST_COMPLETED)
            assert ready.done(), [c.exception() for c in group if c.done()]

        clients = [asyncio.create_task(client(i)) for i in range(early)]
        await all_on_feed(clients, on_feed[:early])  # so they follow the job live from its first event
        for action in ("start", "pause"):
            response = await http.post(f"/jobs/{job_id}/{action}")
            assert response.status_code == 200, response.text
        late = [asyncio.create_task(client(i)) for i in range(early, CLIENTS)]
        await all_on_feed(late, on_feed[early:])  # joined the running job's feed and replayed its past
        clients += late
        resumed = await http.post(f"/jobs/{job_id}/resume")
        assert resumed.status_code == 200, resumed.text

        results = await asyncio.wait_for(asyncio.gather(*clients), DEADLINE_S)  # every stream ends itself
        job = (await http.get(f"/jobs/{job_id}")).json()
        assert job["status"] == "succeeded", job
        expected = await all_events(http, job_id)

    assert [e["seq"] for e in expected] == list(range(1, len(expected) + 1))
    types = [e["type"] for e in expected]
    assert types[0] == "mipro.job.started" and types[-1] == "mipro.job.completed"
    assert types.index("mipro.job.paused") < types.index("mipro.job.resumed")
    assert len(results) == CLIENTS
    for events, kinds in results:
        assert events == expected  # each event once, in order, gap-free, same content as GET /events
        assert kinds[-1] == "end" and kinds.count("end") == 1


@pytest.mark.slow  # minutes: CI skips it (pytest -m slow)
async def test_twenty_jobs_created_concurrently_are_all_served_and_all_finish(
    api_server: BackgroundServer, simllm: BackgroundServer, task_app: BackgroundServer
) -> None:
    body = api_config_body(task_app.url, simllm.url)
    async with api_client(api_server) as http:
        tag = f"load-{time.time_ns()}"

        async def create(i: int) -> httpx.Response:
            payload = {
                "config_body": body,
                "overrides": tiny_overrides(body, seed=100 + i),
                "metadata": {"batch": tag, "i": i},
            }
            return await http.post("/jobs", json=payload)

        responses = await asyncio.gather(*(create(i) for i in range(JOBS)))
        assert [r.status_code for r in responses] == [201] * JOBS, [r.text for r in responses]
        ids = [r.json()["job_id"] for r in responses]
        assert len(set(ids)) == JOBS
        assert all(r.json()["status"] == "running" for r in responses)

        mine = await listed(http, ids)
        assert set(mine) == set(ids)
        assert [mine[job_id]["metadata"] for job_id in ids] == [{"batch": tag, "i": i} for i in range(JOBS)]

        finals = await wait_all_finished(http, ids)
        assert [finals[job_id]["status"] for job_id in ids] == ["succeeded"] * JOBS, finals
        for job_id in ids:
            result = await http.get(f"/jobs/{job_id}/result")
            assert result.status_code == 200, result.text
            assert result.json()["result"]["total_trials"] == 4
            events = await all_events(http, job_id)
            assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
            assert events[-1]["type"] == "mipro.job.completed"

        succeeded = await listed(http, ids, status="succeeded")
        assert set(succeeded) == set(ids)
        assert all(j["status"] == "succeeded" and j["finished_at"] for j in succeeded.values())
