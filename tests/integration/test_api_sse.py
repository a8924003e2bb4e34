"""Events over Server-Sent Events: resumable with Last-Event-ID, once each and in order, closed at the end."""

from __future__ import annotations

import pytest

from mipro.api.sse_client import sse_messages
from mipro.serving import BackgroundServer
from tests.conftest import api_config_body
from tests.integration.api_client import api_client, create_job, event_of, wait_status

pytestmark = pytest.mark.integration


async def test_a_client_that_reconnects_with_last_event_id_gets_every_event_once_in_order(
    api_server: BackgroundServer, simllm: BackgroundServer, task_app: BackgroundServer
) -> None:
    async with api_client(api_server) as http:
        job_id = (await create_job(http, api_config_body(task_app.url, simllm.url)))["job_id"]
        received: list[int] = []
        async with http.stream("GET", f"/jobs/{job_id}/events/stream") as first:
            assert first.status_code == 200
            assert first.headers["content-type"].startswith("text/event-stream")
            async for message in sse_messages(first):
                if "id" in message:
                    assert int(message["id"]) == event_of(message)["seq"]
                    assert message["event"] == event_of(message)["type"]
                    received.append(int(message["id"]))
                if len(received) == 5:
                    break  # the client goes away mid-job
        assert received == [1, 2, 3, 4, 5]
        progress = (await http.get(f"/jobs/{job_id}")).json()["progress"]
        assert progress is not None and progress["phase"] != "done"  # the job is still running
        ended = False
        headers = {"Last-Event-ID": str(received[-1])}
        async with http.stream("GET", f"/jobs/{job_id}/events/stream", headers=headers) as second:
            async for message in sse_messages(second):
                if message.get("event") == "end":
                    ended = True
                elif "id" in message:
                    received.append(int(message["id"]))
        assert ended, "the stream must close with an end event when the job ends"
        assert (await wait_status(http, job_id, {"succeeded"}))["status"] == "succeeded"
        logged = (await http.get(f"/jobs/{job_id}/events", params={"limit": 1000})).json()["events"]
        assert received == [e["seq"] for e in logged] == list(range(1, len(logged) + 1))
        assert logged[-1]["type"] == "mipro.job.completed"


async def test_a_stream_of_a_finished_job_replays_it_and_closes_and_since_seq_skips(
    api_server: BackgroundServer, simllm: BackgroundServer, task_app: BackgroundServer
) -> None:
    async with api_client(api_server) as http:
        job_id = (await create_job(http, api_config_body(task_app.url, simllm.url)))["job_id"]
        await wait_status(http, job_id, {"succeeded"})
        total = len((await http.get(f"/jobs/{job_id}/events", params={"limit": 1000})).json()["events"])
        async with http.stream("GET", f"/jobs/{job_id}/events/stream", params={"since_seq": 3}) as response:
            seqs = [int(m["id"]) async for m in sse_messages(response) if "id" in m]
        assert seqs == list(range(4, total + 1))


async def test_an_idle_stream_sends_heartbeats(
    api_server: BackgroundServer, simllm: BackgroundServer, task_app: BackgroundServer
) -> None:
    async with api_client(api_server) as http:
        job_id = (await create_job(http, api_config_body(task_app.url, simllm.url), auto_start=False))[
            "job_id"
        ]
        heartbeats = 0
        async with http.stream("GET", f"/jobs/{job_id}/events/stream") as response:
            async for message in sse_messages(response):
                heartbeats += message.get("comment") == "heartbeat"
                if heartbeats == 2:
                    break
        assert heartbeats == 2
        assert (await http.post(f"/jobs/{job_id}/cancel")).status_code == 200
