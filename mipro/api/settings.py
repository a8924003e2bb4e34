"""The API server's settings, from the environment (every one also a `mipro api` option)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field

from mipro.activity_models import TASK_QUEUE


class ApiSettings(BaseModel):
    temporal_address: str = "localhost:7233"
    namespace: str = "default"
    task_queue: str = TASK_QUEUE
    data_dir: Path = Path(".mipro/api")  # saved configs
    api_keys: str | None = Field(default=None, repr=False)  # "org:key,org:key"
    api_keys_file: Path | None = None  # {"keys": [{"org", "sha256"}]}
    rpc_timeout_seconds: float = 10.0  # queries and updates: a job whose worker is down answers 503
    sse_poll_seconds: float = 0.25  # how often a streamed job's events are fetched (one poller per job)
    sse_heartbeat_seconds: float = 10.0  # a comment line when no event came for this long

    @classmethod
    def from_env(cls) -> ApiSettings:
        env = os.environ
        values: dict[str, object] = {
            "temporal_address": env.get("TEMPORAL_ADDRESS"),
            "namespace": env.get("TEMPORAL_NAMESPACE"),
            "task_queue": env.get("MIPRO_TASK_QUEUE"),
            "data_dir": env.get("MIPRO_API_DATA_DIR"),
            "api_keys": env.get("MIPRO_API_KEYS"),
            "api_keys_file": env.get("MIPRO_API_KEYS_FILE"),
        }
        return cls.model_validate({k: v for k, v in values.items() if v})
