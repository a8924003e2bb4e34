"""A cluster on one machine (issue 10): a Temporal dev server of its own on a non-default port and namespace,
the workflows, the rollouts and the proposals on task queues of their own, served by three worker
processes (each with its own interceptor port); the rollouts spread over the two that serve them, and
killing one mid-job changes nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from mipro.job_models import ActivityQueues, OptimizationResult
from mipro.serving import BackgroundServer
from mipro.starter import jobs
from mipro.worker import connect
from tests.conftest import SMALL_JOB, job_config
from tests.integration.test_durability import start_worker_process
from tests.integration.test_faults import DevServer, progress_where, until
from tests.integration.test_outages import decisions

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # minutes: CI skips it (pytest -m slow)
NAMESPACE = "mipro-cluster"


@pytest_asyncio.fixture
async def cluster_server(tmp_path: Path) -> AsyncIterator[DevServer]:
    server = DevServer(tmp_path / "temporal.db", tmp_path / "temporal.log", namespace=NAMESPACE)
    await server.start()
    yield server
    await server.stop()


async def started_by(client: Client, job_id: str) -> dict[str, Counter[str]]:
    """Per activity type, how many attempts each worker identity started (Temporal records who ran what);
    "workflow tasks": who ran the workflow (and its local activities: the TPE)."""
    scheduled: dict[int, str] = {}
    started: dict[str, Counter[str]] = {}
    async for event in client.get_workflow_handle(job_id).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            who = event.workflow_task_started_event_attributes.identity
            started.setdefault("workflow tasks", Counter())[who] += 1
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attrs = event.activity_task_started_event_attributes
            started.setdefault(scheduled[attrs.scheduled_event_id], Counter())[attrs.identity] += 1
    return started


async def test_split_task_queues_on_three_workers_spread_the_rollouts_and_survive_a_kill(
    cluster_server: DevServer,
    simllm: BackgroundServer,
    task_app: BackgroundServer,
    reference_result: OptimizationResult,
) -> None:
    tag = uuid.uuid4().hex[:6]
    queue, rollouts, proposals = f"wf-{tag}", f"rollouts-{tag}", f"proposals-{tag}"
    address = cluster_server.address
    splits = ["--namespace", NAMESPACE, "--rollout-task-queue", rollouts, "--proposal-task-queue", proposals]
    workers = [
        await start_worker_process(address, queue, *splits, "--serve", "workflows"),
        await start_worker_process(address, queue, *splits, "--serve", "rollouts,proposals"),
        await start_worker_process(address, queue, *splits, "--serve", "rollouts"),
    ]
    try:
        client = await connect(address, NAMESPACE)
        config = job_config(task_app.url, simllm.url, SMALL_JOB)
        handle = await jobs.start_job(
            client,
            config,
            task_queue=queue,
            task_queues=ActivityQueues(rollouts=rollouts, proposals=proposals),
        )
        await until(progress_where(client, handle.id, lambda p: p.trials_done >= 4), "4 trials")
        spread_before_kill = await started_by(client, handle.id)
        os.kill(workers[2].pid, signal.SIGKILL)  # one of the two rollout workers dies mid-search
        workers[2].wait()
        result = await handle.result()
        ran = await started_by(client, handle.id)
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in workers:
            await asyncio.to_thread(proc.wait, 60)

    assert result.status == "succeeded"
    assert decisions(result) == decisions(reference_result)  # the kill changed nothing
    evaluations = ("evaluate_candidate", "evaluate_candidates")  # one candidate, or an iteration's
    before = set().union(*(spread_before_kill.get(kind, Counter()) for kind in evaluations))
    assert len(before) == 2, "both rollout workers ran evaluations"
    evaluators = set().union(*(ran.get(kind, Counter()) for kind in evaluations))
    assert len(ran["propose_instructions"]) == 1 and len(ran["workflow tasks"]) == 1
    assert "suggest_candidates" not in ran, "the TPE runs as a local activity of the workflow worker"
    proposer = next(iter(ran["propose_instructions"]))
    workflow_worker = next(iter(ran["workflow tasks"]))
    assert proposer in evaluators, "the rollouts+proposals worker ran both"
    assert workflow_worker not in evaluators, "the workflow worker ran no rollout"
