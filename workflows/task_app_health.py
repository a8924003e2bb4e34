"""The task app's health: the check that opens a job, and waiting out an outage mid-job.

An outage is waited out, not scored: when failed rollouts are re-run and the app's health check fails, the
job enters a pause-like state (`waiting_for_task_app`; nothing new starts, no budget is spent) and leaves it
by itself when the app answers again. A stop condition that holds meanwhile (max_duration_minutes) or a
cancel ends the wait.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from mipro.activities.task_app import TaskAppActivities
    from mipro.activity_models import HealthCheckInput, TaskAppInfo
    from mipro.config import PoolName
    from mipro.errors import FailureType

from mipro.workflows.job import Job

POOLS: dict[str, PoolName] = {
    "bootstrap_train_seeds": "bootstrap",
    "online_pool": "online",
    "val_seeds": "validation",
    "test_pool": "test",
    "reference_pool": "bootstrap",  # the reference corpus runs with the bootstrap pool's env config
}
FIRST_POLL_SECONDS = 5.0  # the health check while waiting: after 5 s, doubling up to outage_poll_max_seconds


def health_check_input(job: Job) -> HealthCheckInput:
    cfg = job.cfg
    return HealthCheckInput(
        task_app_url=cfg.task_app_url,
        task_app_api_key_env=cfg.task_app_api_key_env,
        seed_pools={name: getattr(job.m, name) for name in POOLS},
        split=_split(cfg.env_config),
        pool_splits={name: _split(cfg.env_config_for(pool)) for name, pool in POOLS.items()},
        policy_inference_url=cfg.policy.inference_url,
        policy_api_key_env=cfg.policy.api_key_env,
    )


async def check_task_app(job: Job, attempts: int = 3) -> TaskAppInfo:
    """The health check activity; its failure is typed (auth, or health check) and never retried here."""
    try:
        return await workflow.execute_activity_method(
            TaskAppActivities.check_task_app,
            health_check_input(job),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(
                maximum_attempts=attempts,
                non_retryable_error_types=[FailureType.HEALTH_CHECK, FailureType.AUTH],
            ),
            task_queue=job.inp.task_queues.rollouts,
            summary=f"health check of {job.cfg.task_app_url}",
        )
    except ActivityError as err:
        cause = err.cause
        kind = cause.type if isinstance(cause, ApplicationError) and cause.type == FailureType.AUTH else None
        message = str(cause) if cause else str(err)
        raise ApplicationError(message, type=kind or FailureType.HEALTH_CHECK, non_retryable=True) from None


async def answers(job: Job) -> bool:
    """Whether the task app passes its health check now (one attempt). A refused key is no outage: it
    fails the job (TaskAppAuthError) instead of being waited out."""
    try:
        await check_task_app(job, attempts=1)
    except ApplicationError as err:
        if err.type == FailureType.AUTH:
            raise
        return False
    return True


async def wait_out_outage(job: Job) -> bool:
    """If the task app does not answer, wait (pause-like) until it does. False: the job stopped meanwhile.

    Evaluations running side by side share one wait: the first to find the app down polls it, the others
    wait for it to come back.
    """
    s = job.s
    if s.waiting_for_task_app:
        await workflow.wait_condition(lambda: not s.waiting_for_task_app)
        return s.stop_reason is None
    if await answers(job):
        return True
    s.waiting_for_task_app = True
    since = job.elapsed()
    job.emit(
        "mipro.task_app.unavailable",
        f"the task app at {job.cfg.task_app_url} does not answer its health check: waiting for it "
        "(nothing new starts; the job resumes by itself when it answers)",
        {"task_app_url": job.cfg.task_app_url},
        level="warning",
    )
    job.upsert_search_attributes()
    delay = min(FIRST_POLL_SECONDS, job.m.outage_poll_max_seconds)
    try:
        while not job.check_termination():
            await workflow.sleep(timedelta(seconds=delay))
            delay = min(job.m.outage_poll_max_seconds, delay * 2)
            await job.gate()
            if await answers(job):
                job.emit(
                    "mipro.task_app.available",
                    f"the task app answers again after {job.elapsed() - since:.0f} s: resuming",
                    {"waited_seconds": job.elapsed() - since},
                )
                break
    finally:
        s.waiting_for_task_app = False
        job.upsert_search_attributes()
    return s.stop_reason is None


def _split(env_config: Mapping[str, object]) -> str | None:
    return str(env_config.get("split") or "") or None
