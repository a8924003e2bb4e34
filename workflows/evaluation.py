"""One evaluation of a candidate on a batch of seeds, inside the budgets: every rollout of a job goes here."""

from __future__ import annotations

from collections.abc import Sequence, Sized
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from mipro.activities.task_app import TaskAppActivities
    from mipro.activity_models import EvaluateInput, EvaluateOutput
    from mipro.budget import (
        EvaluationFit,
        budget_name,
        candidate_estimate,
        extra_prompt_chars,
        final_reserve,
        fit_evaluation,
    )
    from mipro.config import PoolName
    from mipro.types import CandidateChoice, CompiledCandidate, Usage

from mipro.workflows.job import RETRY, Job


async def evaluate(
    job: Job,
    label: str,
    candidate: CompiledCandidate,
    seeds: list[int],
    pool: PoolName,
    capture: bool = False,
    final: bool = False,
    sharing: int = 1,
) -> EvaluateOutput:
    """Evaluate a candidate on seeds of `pool`, within the budgets: shrunk to what fits, or skipped.

    `sharing` is how many evaluations run side by side; they split `max_concurrent` rollouts, so a lone
    evaluation (a promotion, a baseline block) uses all of it.
    """
    await job.gate()
    fit = _fit(job, candidate, len(seeds), final)
    if fit.seeds == 0:
        job.stop(budget_name(job.cfg.termination, job.s.spend))
        return EvaluateOutput(outcomes=[], skipped_for_budget=True)
    seeds = seeds[: fit.seeds]
    m = job.m
    concurrency = max(1, m.max_concurrent // sharing)
    waves = -(-len(seeds) // concurrency)
    allowance = fit.allowance or Usage()
    job.evaluations_in_flight += 1
    job.reserved = job.reserved.plus(allowance)
    try:
        out = await workflow.execute_activity_method(
            TaskAppActivities.evaluate_candidate,
            EvaluateInput(
                job_id=job.inp.job_id,
                label=label,
                target=job.target(pool),
                candidate=candidate,
                seeds=seeds,
                concurrency=concurrency,
                capture_examples=capture,
                max_cost_usd=fit.allowance.cost_usd if fit.allowance else None,
                max_tokens=fit.allowance.total_tokens if fit.allowance else None,
            ),
            start_to_close_timeout=timedelta(
                seconds=60 + waves * m.rollout_timeout_seconds * (m.rollout_retries + 1)
            ),
            # Heartbeats reach the server every 2 s; the slack absorbs a loaded server or worker.
            heartbeat_timeout=timedelta(seconds=15),
            retry_policy=RETRY,
            summary=f"{label}: {len(seeds)} seeds",
        )
        _count_lost_attempts(job, label, out)
        return out
    finally:
        job.evaluations_in_flight -= 1
        job.reserved = job.reserved.minus(allowance)


def _fit(job: Job, candidate: CompiledCandidate, seeds: int, final: bool) -> EvaluationFit:
    """During the search, enough is kept back for the final test evaluation."""
    held = job.reserved if final else job.reserved.plus(_final_reserve(job))
    return fit_evaluation(job.cfg.termination, job.s.spend, held, estimate(job, candidate), seeds)


def estimate(job: Job, candidate: CompiledCandidate) -> Usage | None:
    """Expected usage of one rollout of `candidate`: the baseline's measured rollouts plus what its longer
    instruction and its demos add."""
    if job.s.rollout_estimate is None:
        return None
    extra = extra_prompt_chars(candidate, job.compile(job.baseline))
    return candidate_estimate(job.s.rollout_estimate, extra, job.cfg.pricing.get(job.cfg.policy.model))


def _final_reserve(job: Job) -> Usage:
    """The final test evaluation's share: the largest candidate the search can pick, and the baseline."""
    base = job.s.rollout_estimate
    if base is None:
        return Usage()
    largest = estimate(job, _largest_candidate(job)) or base
    return final_reserve(largest, base, job.plan.test)


def _largest_candidate(job: Job) -> CompiledCandidate:
    """Per stage the longest instruction with the largest demo set: an upper bound of any pick's prompt."""
    instruction, demo_set = [], []
    for i, stage in enumerate(job.stages):
        texts = job.s.instructions[i] if job.s.instructions else [stage.baseline_instruction]
        sets = job.s.demo_sets[i] if job.s.demo_sets else [[]]
        instruction.append(_longest(texts))
        demo_set.append(_longest(sets))
    return job.compile(CandidateChoice(instruction=instruction, demo_set=demo_set))


def _longest(items: Sequence[Sized]) -> int:
    return max(range(len(items)), key=lambda j: len(items[j]))


def _count_lost_attempts(job: Job, label: str, out: EvaluateOutput) -> None:
    """A retried evaluation reports what its lost attempts spent on seeds they did not finish: count it."""
    if out.lost_usage.calls or out.lost_usage.cost_usd:
        job.s.spend.add("rollout", out.lost_usage)
        job.emit(
            "mipro.evaluation.resumed",
            f"{label}: a lost attempt's spend on unfinished seeds is counted",
            {"label": label, "lost_usd": out.lost_usage.cost_usd, "lost_calls": out.lost_usage.calls},
            level="warning",
        )
