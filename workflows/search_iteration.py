"""The search: iterations of TPE-suggested trials, each on the iteration's minibatch block, paired with the
baseline on the same seeds; a promotion every `validate_every_iterations`, and one after the last."""

from __future__ import annotations

from collections.abc import Callable

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from mipro import adaptive_pool
    from mipro.activity_models import EvaluateOutput
    from mipro.budget import HALTING_STOPS
    from mipro.minibatches import minibatch_blocks

from mipro.workflows.baseline_block import ensure_baseline_on
from mipro.workflows.final_evaluation import baseline_test_request
from mipro.workflows.iteration_batch import land, launch
from mipro.workflows.job import Job
from mipro.workflows.overlapped_search import OVERLAP_PATCH, overlapped_iterations
from mipro.workflows.promotion import promote, promote_last
from mipro.workflows.proposal import regenerate
from mipro.workflows.suggestions import suggest
from mipro.workflows.unbatched_iteration import run_trials

ADAPTIVE_POOL_PATCH = "adaptive-pool"  # runs recorded before it cut the online pool in fixed blocks only
# Runs recorded before it ran an iteration as several activities (the baseline's block, each trial, the
# promotion after the trials) and the TPE as a regular activity.
BATCHED_PATCH = "one-activity-per-iteration"
# Runs recorded before it ran the last promotions one after the other, and the baseline's test after them.
CLOSING_PATCH = "closing-batch"


async def search(job: Job) -> EvaluateOutput | None:
    """The iterations and the last promotions; returns the baseline's test output when it ran beside
    them (CLOSING_PATCH), else None."""
    m, s = job.m, job.s
    blocks = minibatch_blocks(m.online_pool, m.batch_size, m.seed)
    # Only a configured level asks for the patch: a NONE job's commands stay exactly what they were.
    adaptive = m.adaptive_pool.level != "NONE" and workflow.patched(ADAPTIVE_POOL_PATCH)
    batched = workflow.patched(BATCHED_PATCH)

    def next_seeds() -> list[int]:
        return _adaptive_seeds(job, blocks) if adaptive else blocks[s.iteration % len(blocks)]

    if batched and m.overlap_iterations and workflow.patched(OVERLAP_PATCH):
        await overlapped_iterations(job, next_seeds)
    else:
        await _iterations(job, next_seeds, batched)
    if s.stop_reason in HALTING_STOPS:
        return None
    if batched and workflow.patched(CLOSING_PATCH):
        due, s.promotion_due = s.promotion_due, False
        [baseline_test] = await promote_last(job, due, beside=[baseline_test_request(job)])
        job.account(baseline_test.outcomes)
        return baseline_test
    if s.promotion_due:  # the last iterations' leader
        s.promotion_due = False
        await promote(job)
    await promote(job)
    return None


async def _iterations(job: Job, next_seeds: Callable[[], list[int]], batched: bool) -> None:
    """One iteration after the other, each landed before the next starts."""
    m, s = job.m, job.s
    while s.iteration < m.num_iterations and s.stop_reason is None:
        await job.gate()
        if job.check_termination():
            break
        if s.iteration in m.generate_at_iterations and s.iteration not in s.regenerated:
            await regenerate(job)
        seeds = next_seeds()
        ran = await (_batched_iteration(job, seeds) if batched else _iteration(job, seeds))
        if not ran:
            s.stop_reason = "search_space_exhausted"
            break
        s.iteration += 1
        if s.iteration % m.validate_every_iterations == 0:
            if batched:
                s.promotion_due = True  # validated beside the next iteration's trials
            else:
                await promote(job)
        job.update_details()
        job.upsert_search_attributes()
        await job.continue_as_new_if_due()


async def _iteration(job: Job, seeds: list[int]) -> bool:
    """An iteration as runs recorded before BATCHED_PATCH ran it: the baseline's block, the TPE, then the
    trials, each its own activity. False: the search space is exhausted."""
    await ensure_baseline_on(job, seeds)
    choices = await suggest(job)
    if choices:
        await run_trials(job, choices, seeds)
    return bool(choices)


async def _batched_iteration(job: Job, seeds: list[int]) -> bool:
    """One activity for the whole iteration: the baseline on the block's new seeds, the trials, and the
    validation of the leader when a promotion is due, sharing the job's rollout slots. False: the search
    space is exhausted."""
    batch = await launch(job, seeds)
    if batch is None:
        return False
    await land(job, batch)
    return True


def _adaptive_seeds(job: Job, blocks: list[list[int]]) -> list[int]:
    """This iteration's seeds from the adaptive pool (`mipro.adaptive_pool`): the seeds that discriminate
    between the candidates seen so far, a batch that shrinks while the top lifts separate and grows when
    they tie. The pool is the fixed blocks' seeds in their seeded order (the first batch is block 0)."""
    m, s = job.m, job.s
    last = [t for t in s.trials if t.iteration == s.trials[-1].iteration] if s.trials else []
    choice = adaptive_pool.iteration_seeds(
        m.adaptive_pool.level,
        order=[seed for block in blocks for seed in block],
        batch_size=m.batch_size,
        caches=list(s.online_cache.values()),
        previous=[(t.paired_lift, t.n) for t in last] if last else None,
        previous_size=len(last[-1].seeds) if last else None,
    )
    job.emit(
        "mipro.adaptive_pool",
        f"iteration {s.iteration}: {choice.size} seeds, {choice.discriminating} known to discriminate",
        {
            "iteration": s.iteration,
            "level": m.adaptive_pool.level,
            "batch_size": choice.size,
            "previous_tied": choice.tied,
            "discriminating": choice.discriminating,
            "pool_discriminating": choice.known_discriminating,
            "pool_silent": choice.known_silent,
        },
    )
    return choice.seeds
