"""A benchmark's jobs: the banking77 config with the pools and settings a benchmark varies, and one job
run to its result on a worker of its own."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client

from mipro.config import JobConfig, load_config_file
from mipro.job_models import Event, EventsQuery, OptimizationResult
from mipro.starter import jobs
from mipro.worker import WorkerOptions, running_worker
from mipro.workflows.mipro_workflow import MiproWorkflow

REPO = Path(__file__).resolve().parents[1]
BANKING77_CONFIG = REPO / "configs" / "banking77.toml"
POOL_FIELDS = {
    "bootstrap": "bootstrap_train_seeds",
    "online": "online_pool",
    "val": "val_seeds",
    "test": "test_pool",
}


def banking77_job(
    task_app_url: str,
    llm_url: str,
    pools: Mapping[str, Sequence[int]],
    settings: Sequence[str],
    config_file: Path = BANKING77_CONFIG,
) -> JobConfig:
    """`config_file` (the banking77 job by default) against this task app and LLM (policy and
    meta-model), on `pools` (bootstrap, online, val, test seeds), with `settings` overrides on top."""
    return load_config_file(
        config_file,
        [
            f'task_app_url="{task_app_url}"',
            f'policy.inference_url="{llm_url}/v1"',
            f'mipro.meta.inference_url="{llm_url}/v1"',
            *(f"mipro.{field}={[int(s) for s in pools[name]]}" for name, field in POOL_FIELDS.items()),
            *settings,
        ],
    )


@dataclass(frozen=True)
class FinishedJob:
    result: OptimizationResult
    events: list[Event]
    wall_s: float  # from starting the job to its result


async def run_to_result(client: Client, config: JobConfig, queue_prefix: str) -> FinishedJob:
    """Start the job on a fresh task queue served by a worker of its own, wait for its result; it must
    have succeeded."""
    queue = f"{queue_prefix}-{uuid.uuid4().hex[:8]}"
    async with running_worker(client, WorkerOptions(task_queue=queue)):
        start = time.perf_counter()
        handle = await jobs.start_job(client, config, task_queue=queue)
        result: OptimizationResult = await jobs.result(client, handle.id)
        wall = time.perf_counter() - start
        events = await handle.query(MiproWorkflow.events, EventsQuery(limit=5000))
    assert result.status == "succeeded", (result.status, result.stop_reason)
    return FinishedJob(result, events, wall)
