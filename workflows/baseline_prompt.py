"""A job without an initial_prompt (and without declared stages) takes its baseline from the task app: one
rollout of the first bootstrap seed whose LLM calls pass unchanged; the system messages of its first call
become the initial prompt (the reference's "gather baseline messages")."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from mipro.activities.task_app import TaskAppActivities
    from mipro.activity_models import GatherInput
    from mipro.errors import FailureType
    from mipro.types import ChatMessage

from mipro.workflows.job import RETRY, Job


async def gather_baseline(job: Job) -> None:
    seed = job.m.bootstrap_train_seeds[0]
    out = await workflow.execute_activity_method(
        TaskAppActivities.gather_baseline_messages,
        GatherInput(job_id=job.inp.job_id, target=job.target("bootstrap"), seed=seed),
        start_to_close_timeout=timedelta(seconds=60 + job.m.rollout_timeout_seconds),
        retry_policy=RETRY,
        task_queue=job.inp.task_queues.rollouts,
        summary=f"gather the app's baseline prompt (seed {seed})",
    )
    job.s.spend.add("rollout", out.usage)
    system = baseline_system_messages(out.calls, seed)
    job.adopt_config(job.cfg.with_gathered_prompt(system))
    job.emit(
        "mipro.baseline.gathered",
        f"baseline instruction taken from the task app's first LLM call ({len(system[0])} characters)",
        {"seed": seed, "baseline_instruction": system[0], "calls": len(out.calls)},
    )


def baseline_system_messages(calls: list[list[ChatMessage]], seed: int) -> list[str]:
    """The system messages of the first LLM call: the first is the baseline instruction."""
    first = calls[0] if calls else []
    system = [m.content for m in first if m.role == "system" and m.content]
    if not system:
        what = "made no LLM call" if not calls else "sent no system message in its first LLM call"
        raise ApplicationError(
            f"initial_prompt is not set and the task app {what} on seed {seed}, so there is no baseline "
            "instruction to take: set initial_prompt (its system message) or declare mipro.stages",
            type=FailureType.TRANSFORM,
            non_retryable=True,
        )
    return system
