"""What the activities of one worker process share: its interceptor registry and URL, an HTTP client, secrets.

Secrets (task-app key, provider keys) are read from this process's environment by name; job payloads only
ever carry the names.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from temporalio import activity

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

    def secret(self, env_name: str | None) -> str | None:
        return self.environ.get(env_name) if env_name else None


async def heartbeat_forever(details: Callable[[], Any]) -> None:
    """Heartbeat `details()` every second, so cancellation arrives within seconds (the worker sends them
    on to the server at most every `HEARTBEAT_THROTTLE`)."""
    while True:
        activity.heartbeat(details())
        await asyncio.sleep(1.0)
