"""The baseline on an iteration's block: the reference every trial of the iteration is paired against.
Its scores are cached, so each seed is run once for the baseline, whichever phase runs it first."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from mipro.minibatches import minibatch_blocks

from mipro.workflows.evaluation import EvaluationRequest, evaluate
from mipro.workflows.job import Job


def first_block(job: Job) -> list[int]:
    """Iteration 0's seeds when they are known before the search: the fixed blocks' first (an adaptive
    pool chooses its seeds from the evidence when the iteration starts)."""
    m = job.m
    if m.adaptive_pool.level != "NONE":
        return []
    blocks = minibatch_blocks(m.online_pool, m.batch_size, m.seed)
    return blocks[0] if blocks else []


def baseline_request(job: Job, seeds: list[int]) -> EvaluationRequest | None:
    """The baseline on those of `seeds` it has not scored yet (None: it has them all)."""
    baseline = job.compile(job.baseline)
    cached = job.s.online_cache.get(baseline.content_hash, {})
    missing = [seed for seed in seeds if seed not in cached]
    if not missing:
        return None
    return EvaluationRequest(f"baseline-i{job.s.iteration:04d}", baseline, missing, "online")


async def ensure_baseline_on(job: Job, seeds: list[int]) -> None:
    request = baseline_request(job, seeds)
    if request is not None:
        out = await evaluate(job, request.label, request.candidate, request.seeds, request.pool)
        job.account(out.outcomes)
        job.cache(request.candidate.content_hash, out.outcomes)
