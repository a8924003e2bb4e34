"""Killing the worker (SIGKILL) mid-search: the job completes, no trial is lost or run twice, and the result
equals that of an uninterrupted run with the same seed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from mipro.job_models import EventsQuery, OptimizationResult
from mipro.serving import BackgroundServer
from mipro.starter import jobs
from mipro.worker import WorkerOptions, running_worker
from mipro.workflows.mipro_workflow import MiproWorkflow
from tests.conftest import REPO, SMALL_JOB, job_config


async def start_worker_process(address: str, task_queue: str, *args: str) -> subprocess.Popen[str]:
    """`python worker.py` on `task_queue` (more options in `args`), once it says WORKER_READY."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "worker.py",
            "--address",
            address,
            "--task-queue",
            task_queue,
            "--sticky-timeout",
            "1",
            *args,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=dict(os.environ),
    )
    assert proc.stdout is not None
    line = await asyncio.to_thread(proc.stdout.readline)
    assert line.strip() == "WORKER_READY", f"worker did not start: {line!r}"
    return proc


async def wait_for_trials(client: Client, job_id: str, at_least: int) -> None:
    while True:
        progress = await jobs.progress(client, job_id)
        if progress.trials_done >= at_least:
            return
        assert progress.phase != "done", "job finished before the kill point"
        await asyncio.sleep(0.05)


def comparable(result: OptimizationResult) -> dict:
    """Everything but the job id and wall-clock timings."""
    data = result.model_dump(mode="json", exclude={"job_id", "elapsed_seconds"})
    for record in [*data["trials"], *data["validations"]]:
        record.pop("elapsed_seconds")
    return data


async def test_sigkill_mid_search_loses_nothing_and_changes_nothing(
    temporal_env: WorkflowEnvironment,
    simllm: BackgroundServer,
    task_app: BackgroundServer,
    task_queue: str,
    reference_result: OptimizationResult,
) -> None:
    client = temporal_env.client
    config = job_config(task_app.url, simllm.url, SMALL_JOB)

    address = client.service_client.config.target_host
    doomed = await start_worker_process(address, task_queue)
    try:
        handle = await jobs.start_job(client, config, task_queue=task_queue)
        await wait_for_trials(client, handle.id, at_least=4)
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait()
        async with running_worker(client, WorkerOptions(task_queue=task_queue)):
            result = await jobs.result(client, handle.id)
            events = await handle.query(MiproWorkflow.events, EventsQuery(limit=5000))
    finally:
        if doomed.poll() is None:
            doomed.kill()

    assert result.status == "succeeded"
    trial_numbers = [e.data["trial"] for e in events if e.type == "mipro.trial.complete"]
    assert trial_numbers == list(range(result.total_trials)), "each trial recorded exactly once, in order"
    assert result.total_trials == 4 * 3
    assert comparable(result) == comparable(reference_result)
