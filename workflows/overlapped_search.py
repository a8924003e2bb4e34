"""Overlapped iterations (`mipro.overlap_iterations`): each iteration is launched while the previous one
drains, so its rollouts take the slots the previous one's last waves leave idle, and its TPE suggestion
runs while the previous one's last rollouts do.

The previous iteration's activity signals when its rollouts still to start fit in one wave of slots
(`BatchDraining`, with the scores so far); the TPE then learns from its trials' paired lifts on the seeds
they have finished, and excludes their candidates, as Optuna's TPE does running trials. A due promotion
rides in the iteration after next. The first iteration (the informative picks) lands before the second
starts: with nothing known yet, a second iteration suggested blind cost a replicate of the vs-DSPy
benchmark its leader's re-run and ended it on the baseline.

Both iterations' batches run on one worker (its own rollout queue, `pin`), where they share the job's
`max_concurrent` rollout slots, oldest first; so the per-job cap holds however many workers serve the job.
Runs recorded before DRAINING_PATCH launched the next iteration as soon as the previous one had started,
its TPE blind to that one's results.
"""

from __future__ import annotations

from collections.abc import Callable

from temporalio import workflow

from mipro.workflows.baseline_block import baseline_request
from mipro.workflows.iteration_batch import DrainingView, IterationBatch, draining_view, land, launch
from mipro.workflows.job import Job
from mipro.workflows.pinning import pin
from mipro.workflows.proposal import regenerate

OVERLAP_PATCH = "overlapped-iterations"
DRAINING_PATCH = "overlap-when-draining"


async def overlapped_iterations(job: Job, next_seeds: Callable[[], list[int]]) -> None:
    """The search's iterations, two in flight at a time; every iteration is landed when this returns."""
    m, s = job.m, job.s
    await pin(job)
    when_draining = workflow.patched(DRAINING_PATCH)
    pending: IterationBatch | None = None
    try:
        while s.iteration < m.num_iterations and s.stop_reason is None:
            if pending is not None and when_draining:
                pending = await _drained(job, pending)
            await job.gate()
            if job.check_termination():
                break
            if s.iteration in m.generate_at_iterations and s.iteration not in s.regenerated:
                pending = await _landed(job, pending)  # new instructions change the TPE's space
                await regenerate(job)
            seeds = next_seeds()
            if pending and (pending.iteration == 0 or _shares_baseline_seeds(job, pending, seeds)):
                # The TPE's first suggestions see the first iteration's picks; the baseline runs each
                # seed once.
                pending = await _landed(job, pending)
            view = _view(job, pending) if when_draining else None
            batch = await launch(job, seeds, pending, view, notify_draining=when_draining)
            if batch is None:
                if pending is None:
                    s.stop_reason = "search_space_exhausted"
                    break
                pending = await _landed(job, pending)  # its candidates were all that was left
                continue
            s.iteration += 1
            previous, pending = pending, batch
            await _landed(job, previous)
            job.update_details()
            job.upsert_search_attributes()
            if job.continue_as_new_due():
                pending = await _landed(job, pending)
                await job.continue_as_new_if_due()
    except BaseException:
        if pending is not None:
            pending.results.cancel()  # a cancelled job stops its rollouts too
        raise
    await _landed(job, pending)


async def _drained(job: Job, pending: IterationBatch) -> IterationBatch | None:
    """Wait until the pending batch drains (its activity's signal) or is done; a done one is
    landed (its results are all in: the next iteration is suggested as in a synchronous search). Returns
    what is still pending."""
    await workflow.wait_condition(lambda: pending.label in job.draining or pending.results.done())
    if pending.results.done():
        return await _landed(job, pending)
    return pending


def _view(job: Job, pending: IterationBatch | None) -> DrainingView | None:
    """The pending batch as its draining signal shows it (None: no signal)."""
    notice = job.draining.get(pending.label) if pending is not None else None
    if pending is None or notice is None:
        return None
    view = draining_view(job, pending, notice)
    seen = sum(view.seen_seeds.values())
    job.emit(
        "mipro.iteration.overlapped",
        f"iteration {job.s.iteration} starts while iteration {pending.iteration} drains: the TPE sees its "
        f"{len(pending.trials)} trials on {seen} of {len(pending.trials) * len(pending.seeds)} seeds, "
        f"{len(view.finished)} of them finished",
        {
            "iteration": job.s.iteration,
            "beside": pending.iteration,
            "seen_seeds": list(view.seen_seeds.values()),
            "finished": sorted(view.finished),
        },
    )
    return view


async def _landed(job: Job, batch: IterationBatch | None) -> None:
    """Land `batch` (if any) and mark the promotion its iteration makes due. Returns None, what is then
    pending: `pending = await _landed(job, pending)`."""
    if batch is not None:
        await land(job, batch)
        job.draining.pop(batch.label, None)
        if (batch.iteration + 1) % job.m.validate_every_iterations == 0:
            job.s.promotion_due = True  # validated beside the next launched iteration's trials


def _shares_baseline_seeds(job: Job, pending: IterationBatch, seeds: list[int]) -> bool:
    """The baseline would be run on seeds the pending batch is running it on."""
    new = baseline_request(job, seeds)
    return bool(new and pending.baseline and set(new.seeds) & set(pending.baseline.seeds))
