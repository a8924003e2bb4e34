"""Pinning a job's batches to one worker (overlapped iterations): its batches in flight at once then share
one process's per-job rollout slots, so `max_concurrent` holds across workers."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from mipro.activities.task_app import TaskAppActivities

from mipro.workflows.job import RETRY, Job


async def pin(job: Job) -> None:
    """Pin the job's batches to one worker: the one that answers on the shared rollout queue."""
    job.pinned_rollout_queue = await workflow.execute_activity_method(
        TaskAppActivities.pin_rollout_worker,
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=RETRY,
        task_queue=job.inp.task_queues.rollouts,
        summary="pin the batches to one worker",
    )
