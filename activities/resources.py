"""What the activities of one worker process share: its interceptor registry and URL, an HTTP client, secrets.

Secrets (task-app key, provider keys) are read from this process's environment by name; job payloads only
ever carry the names.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from temporalio import activity

from mipro.activities.job_slots import PrioritySlots
from mipro.interceptor.registry import Registry


@dataclass
class WorkerResources:
    registry: Registry
    interceptor_url: str
    http: httpx.AsyncClient
    # Worker-wide cap on rollouts in flight, whatever the number of jobs: past it, rollouts queue here
    # (their activities keep heartbeating) instead of piling up in the HTTP pool.
    rollout_slots: asyncio.Semaphore
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    # This worker's own rollout queue (jobs that overlap iterations pin their evaluations to one worker, so
    # one job's concurrent activities share its rollout cap here); None: it serves no rollouts.
    own_rollout_queue: str | None = None
    _job_slots: dict[str, PrioritySlots] = field(default_factory=dict)

    def secret(self, env_name: str | None) -> str | None:
        return self.environ.get(env_name) if env_name else None

    @asynccontextmanager
    async def job_rollout_slots(self, job_id: str, size: int) -> AsyncIterator[PrioritySlots]:
        """The job's `size` rollout slots in this process, shared by all of its batches running here at
        once (the oldest batch first); dropped when the last one ends."""
        slots = self._job_slots.get(job_id)
        if slots is None:
            slots = self._job_slots[job_id] = PrioritySlots(size)
        slots.users += 1
        try:
            yield slots
        finally:
            slots.users -= 1
            if slots.users == 0:
                del self._job_slots[job_id]


async def heartbeat_forever(details: Callable[[], Any]) -> None:
    """Heartbeat `details()` every second, so cancellation arrives within seconds (the worker sends them
    on to the server at most every `HEARTBEAT_THROTTLE`)."""
    while True:
        activity.heartbeat(details())
        await asyncio.sleep(1.0)
