"""The API's event hub against a fake job: every event once and in order, one poller per job, and an
ended job read with a single `events` query."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from mipro.api.errors import ApiError
from mipro.api.event_hub import EventHub
from mipro.job_models import Event


class FakeJob:
    def __init__(self, events: int = 0, closed: bool = False) -> None:
        self.events: list[Event] = []
        self.closed = closed
        self.fetches = 0
        self.describes = 0
        self.emit(events)

    def emit(self, n: int) -> None:
        for _ in range(n):
            seq = len(self.events) + 1
            self.events.append(Event(seq=seq, type="t", message=str(seq), created_at=datetime.now(UTC)))

    async def fetch(self, job_id: str, since: int, limit: int) -> list[Event]:
        self.fetches += 1
        await asyncio.sleep(0)
        return [e for e in self.events if e.seq > since][:limit]

    async def is_closed(self, job_id: str) -> bool:
        self.describes += 1
        await asyncio.sleep(0)
        return self.closed


async def collect(hub: EventHub, since: int = 0) -> list[int]:
    return [e.seq async for e in hub.subscribe("pl_0", since, heartbeat_seconds=0.05) if e is not None]


async def test_an_ended_job_is_read_with_one_query_and_one_describe() -> None:
    job = FakeJob(events=30, closed=True)
    hub = EventHub(job.fetch, job.is_closed, poll_seconds=0.01)
    assert await collect(hub) == list(range(1, 31))
    assert (job.fetches, job.describes) == (1, 1)
    assert await collect(hub, since=25) == [26, 27, 28, 29, 30]  # a new feed after the first ended


async def test_live_job_many_subscribers_each_get_every_event_once_in_order() -> None:
    job = FakeJob(events=3)
    hub = EventHub(job.fetch, job.is_closed, poll_seconds=0.01)
    clients = [asyncio.create_task(collect(hub)) for _ in range(20)]
    late = None
    for _ in range(10):
        job.emit(5)
        await asyncio.sleep(0.02)
        if late is None:
            late = asyncio.create_task(collect(hub, since=2))  # joins the running feed mid-way
    job.closed = True
    results = await asyncio.wait_for(asyncio.gather(*clients), 5)
    assert all(r == list(range(1, 54)) for r in results)
    assert late is not None and await asyncio.wait_for(late, 5) == list(range(3, 54))
    assert job.fetches < 100  # one poller for all: not one per subscriber


async def test_unknown_job_ends_the_stream() -> None:
    async def missing(job_id: str, *_: object) -> bool:
        raise ApiError(404, "not_found", "no such job")

    hub = EventHub(missing, missing, poll_seconds=0.01)  # type: ignore[arg-type]
    assert await asyncio.wait_for(collect(hub), 5) == []
