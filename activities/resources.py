"""What the activities of one worker process share: its interceptor registry and URL, an HTTP client, secrets.

Secrets (task-app key, provider keys) are read from this process's environment by name; job payloads only
ever carry the names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from mipro.interceptor.registry import Registry


@dataclass
class WorkerResources:
    registry: Registry
    interceptor_url: str
    http: httpx.AsyncClient
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)

    def secret(self, env_name: str | None) -> str | None:
        return self.environ.get(env_name) if env_name else None
