"""One event poller per streamed job, shared by all its SSE clients.

Temporal has no push for queries, so a streamed job's events are polled; with a feed per job, fifty
clients on one job cost one `events` query per poll interval, not fifty. A feed lives while it has
subscribers and ends when the job has closed and its last events were read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from mipro.api.errors import ApiError
from mipro.job_models import Event

log = structlog.get_logger("api.events")
BATCH = 1000  # events fetched per query
KEEP = 5000  # events a feed keeps for clients that reconnect with an older Last-Event-ID

FetchEvents = Callable[[str, int, int], Awaitable[list[Event]]]  # (job_id, since_seq, limit)
IsClosed = Callable[[str], Awaitable[bool]]


@dataclass
class _Feed:
    job_id: str
    events: list[Event] = field(default_factory=list)
    ended: bool = False
    subscribers: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    @property
    def last_seq(self) -> int:
        return self.events[-1].seq if self.events else 0

    def publish(self, events: list[Event], ended: bool = False) -> None:
        self.events.extend(events)
        del self.events[:-KEEP]
        self.ended = self.ended or ended
        old, self.changed = self.changed, asyncio.Event()
        old.set()

    def after(self, seq: int) -> list[Event]:
        return [e for e in self.events if e.seq > seq]


class EventHub:
    def __init__(self, fetch: FetchEvents, is_closed: IsClosed, poll_seconds: float) -> None:
        self._fetch = fetch
        self._is_closed = is_closed
        self._poll = poll_seconds
        self._feeds: dict[str, _Feed] = {}

    async def subscribe(
        self, job_id: str, since_seq: int, heartbeat_seconds: float
    ) -> AsyncIterator[Event | None]:
        """Every event after `since_seq`, once and in order, until the job ends; None when idle."""
        feed = self._feeds.get(job_id)
        if feed is None:
            feed = self._feeds[job_id] = _Feed(job_id)
            feed.task = asyncio.create_task(self._run(feed), name=f"events:{job_id}")
        feed.subscribers += 1
        cursor = since_seq
        try:
            while True:
                changed = feed.changed  # taken before reading, so no publish in between is missed
                for event in feed.after(cursor):
                    cursor = event.seq
                    yield event
                if feed.ended and not feed.after(cursor):
                    return
                try:
                    await asyncio.wait_for(changed.wait(), heartbeat_seconds)
                except TimeoutError:
                    yield None
        finally:
            feed.subscribers -= 1

    async def _run(self, feed: _Feed) -> None:
        try:
            if await self._read_ended(feed):
                return
            while feed.subscribers > 0 and not await self._poll_once(feed):
                pass
        except Exception as exc:  # never leave clients waiting on a dead feed
            log.error("events_feed_failed", job_id=feed.job_id, error=repr(exc))
        finally:
            self._feeds.pop(feed.job_id, None)
            feed.publish([], ended=True)

    async def _read_ended(self, feed: _Feed) -> bool:
        """A job that had already ended: read its events once and end the feed (True). Each `events` query
        on an ended job replays its whole history on a worker; the poll loop would make three."""
        try:
            if not await self._is_closed(feed.job_id):
                return False
            while True:
                new = await self._fetch(feed.job_id, feed.last_seq, BATCH)
                feed.publish(new, ended=len(new) < BATCH)
                if len(new) < BATCH:
                    return True
        except ApiError as exc:
            if exc.status == 404:
                return True
            log.info("events_poll_failed", job_id=feed.job_id, error=exc.message)
            return False  # the poll loop carries on from what was read

    async def _poll_once(self, feed: _Feed) -> bool:
        """Fetch what is new; True when the job has closed and everything was read."""
        try:
            new = await self._fetch(feed.job_id, feed.last_seq, BATCH)
            if new:
                feed.publish(new)
                return False
            if await self._is_closed(feed.job_id):
                feed.publish(await self._fetch(feed.job_id, feed.last_seq, BATCH), ended=True)
                return True
        except ApiError as exc:  # the job's worker is down or Temporal is busy: keep the clients, try again
            if exc.status == 404:
                return True
            log.info("events_poll_failed", job_id=feed.job_id, error=exc.message)
        await asyncio.sleep(self._poll)
        return False
