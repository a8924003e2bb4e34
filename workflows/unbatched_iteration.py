"""An iteration's evaluations as runs recorded before the batched iteration ran them (replay only): the
baseline's block, then each trial as an activity of its own, `max_parallel_trials` at a time, each with
its share of `max_concurrent`."""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from mipro.activity_models import EvaluateOutput
    from mipro.types import CandidateChoice

from mipro.workflows.evaluation import evaluate
from mipro.workflows.job import Job
from mipro.workflows.trials import record_trial, start_trial


async def run_trials(job: Job, choices: list[CandidateChoice], seeds: list[int]) -> None:
    slots = asyncio.Semaphore(job.m.max_parallel_trials)
    first_trial = len(job.s.trials)

    async def trial(index: int, choice: CandidateChoice) -> EvaluateOutput | None:
        async with slots:
            await job.gate()
            if job.s.stop_reason is not None or job.check_termination(planned=index):
                return None
            request = start_trial(job, first_trial + index, choice, seeds)
            if not request.seeds:
                return EvaluateOutput(outcomes=[])
            sharing = min(len(choices), job.m.max_parallel_trials)
            return await evaluate(
                job, request.label, request.candidate, request.seeds, "online", sharing=sharing
            )

    outs = await asyncio.gather(*(trial(i, c) for i, c in enumerate(choices)))
    for choice, out in zip(choices, outs, strict=True):
        if out is not None and out.ran:
            record_trial(job, choice, seeds, out)
