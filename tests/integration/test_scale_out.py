"""Jobs scale out over worker processes: a worker joins mid-job, another leaves (SIGTERM), and every job
still gives the result of a run on one worker. Evidence of who ran what comes from Temporal's own history
(the identity, `pid@host`, that started each activity)."""

from __future__ import annotations

import asyncio
import signal
import socket

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from mipro.job_models import OptimizationResult
from mipro.serving import BackgroundServer
from mipro.starter import jobs
from tests.conftest import SMALL_JOB, job_config
from tests.integration.test_durability import comparable, start_worker_process
from tests.integration.test_faults import progress_where, until


async def activity_identities(handle: WorkflowHandle) -> set[str]:
    """The identities that started this job's activities, over all its runs."""
    identities = set()
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_started_event_attributes"):
            identities.add(event.activity_task_started_event_attributes.identity)
    return identities


@pytest.mark.slow  # minutes: CI skips it (pytest -m slow)
async def test_a_worker_joins_and_another_leaves_mid_job(
    temporal_env: WorkflowEnvironment,
    simllm: BackgroundServer,
    task_app: BackgroundServer,
    task_queue: str,
    reference_result: OptimizationResult,
) -> None:
    client: Client = temporal_env.client
    address = client.service_client.config.target_host
    config = job_config(task_app.url, simllm.url, SMALL_JOB)
    first = await start_worker_process(address, task_queue)
    second = None
    try:
        handles = [await jobs.start_job(client, config, task_queue=task_queue) for _ in range(3)]
        for handle in handles:
            await until(progress_where(client, handle.id, lambda p: p.trials_done >= 1), "a trial per job")
        second = await start_worker_process(address, task_queue)
        first.send_signal(signal.SIGTERM)  # graceful: in-flight work finishes, the rest goes to `second`
        assert await asyncio.to_thread(first.wait, 60) == 0
        results = await asyncio.gather(*(h.result() for h in handles))
        identities = set().union(*[await activity_identities(h) for h in handles])
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()

    host = socket.gethostname()
    assert {f"{first.pid}@{host}", f"{second.pid}@{host}"} <= identities, identities
    for result in results:
        assert comparable(result) == comparable(reference_result)
