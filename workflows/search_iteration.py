"""The search: iterations of TPE-suggested trials, each on the iteration's minibatch block, paired with the
baseline on the same seeds; a promotion every `validate_every_iterations`, and one after the last."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from mipro import adaptive_pool
    from mipro import search as decide
    from mipro.activities.search import suggest_candidates
    from mipro.activity_models import EvaluateOutput, SuggestInput
    from mipro.budget import HALTING_STOPS
    from mipro.job_models import TrialRecord
    from mipro.minibatches import minibatch_blocks
    from mipro.results import lift_stats, mean
    from mipro.types import CandidateChoice

from mipro.workflows.evaluation import evaluate
from mipro.workflows.job import RETRY, Job
from mipro.workflows.promotion import promote
from mipro.workflows.proposal import regenerate

FIRST_ITERATION_PATCH = "informative-first-iteration"  # runs recorded before it used the TPE from the start
REEVALUATE_PATCH = "reevaluate-leader"  # runs recorded before it never ran a candidate twice
ADAPTIVE_POOL_PATCH = "adaptive-pool"  # runs recorded before it cut the online pool in fixed blocks only


async def search(job: Job) -> None:
    m, s = job.m, job.s
    blocks = minibatch_blocks(m.online_pool, m.batch_size, m.seed)
    # Only a configured level asks for the patch: a NONE job's commands stay exactly what they were.
    adaptive = m.adaptive_pool.level != "NONE" and workflow.patched(ADAPTIVE_POOL_PATCH)
    while s.iteration < m.num_iterations and s.stop_reason is None:
        await job.gate()
        if job.check_termination():
            break
        if s.iteration in m.generate_at_iterations and s.iteration not in s.regenerated:
            await regenerate(job)
        seeds = _adaptive_seeds(job, blocks) if adaptive else blocks[s.iteration % len(blocks)]
        await _ensure_baseline_on(job, seeds)
        choices = await _suggest(job)
        if not choices:
            s.stop_reason = "search_space_exhausted"
            break
        await _run_trials(job, choices, seeds)
        s.iteration += 1
        if s.iteration % m.validate_every_iterations == 0:
            await promote(job)
        job.update_details()
        job.upsert_search_attributes()
        await job.continue_as_new_if_due()
    if s.stop_reason not in HALTING_STOPS:  # the last iterations' leader, unless the job was stopped
        await promote(job)


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


async def _ensure_baseline_on(job: Job, seeds: list[int]) -> None:
    baseline = job.compile(job.baseline)
    cached = job.s.online_cache.get(baseline.content_hash, {})
    missing = [s for s in seeds if s not in cached]
    if missing:
        out = await evaluate(job, f"baseline-i{job.s.iteration:04d}", baseline, missing, "online")
        job.account(out.outcomes)
        job.cache(baseline.content_hash, out.outcomes)


async def _suggest(job: Job) -> list[CandidateChoice]:
    """This iteration's choices: the informative first picks, the TPE's, the leader when a re-run is due."""
    k = job.m.num_evaluations_per_iteration
    seeded: list[CandidateChoice] = []
    if job.s.iteration == 0 and job.m.informative_first_iteration and workflow.patched(FIRST_ITERATION_PATCH):

        def untried(choice: CandidateChoice) -> bool:
            return job.compile(choice).content_hash not in job.s.online_cache

        seeded = decide.informative_choices(job.s.instructions, job.s.demo_sets, untried)[:k]
    if len(seeded) == k:
        return seeded
    rerun = _leader_to_rerun(job, k - len(seeded))
    wanted = k - len(seeded) - len(rerun)
    fresh = await _tpe_suggest(job, wanted, exclude=[c.as_params() for c in seeded]) if wanted else []
    return seeded + fresh + rerun


def _leader_to_rerun(job: Job, slots: int) -> list[CandidateChoice]:
    """[the leader] when one of this iteration's trial numbers is a multiple of `reevaluate_every_trials`.

    A candidate is promoted on its minibatch lift; the best of many noisy lifts is often luck. Running the
    leader again on the new block (paired with the baseline there) firms up its lift before it costs a
    validation, and tells the TPE which of its favourites hold up.
    """
    if not decide.rerun_due(job.m.reevaluate_every_trials, len(job.s.trials), slots):
        return []
    if not workflow.patched(REEVALUATE_PATCH):
        return []
    top = decide.leader(job.summaries(), job.s.validation, job.m.batch_size)
    return [top.choice] if top is not None else []


async def _tpe_suggest(job: Job, k: int, exclude: list[list[int]]) -> list[CandidateChoice]:
    out = await workflow.execute_activity(
        suggest_candidates,
        SuggestInput(
            space=decide.search_space(job.s.instructions, job.s.demo_sets),
            history=decide.tpe_history(job.summaries(), job.baseline.key),
            tpe=job.m.tpe,
            seed=(job.m.seed * 1_000_003 + job.s.iteration) % 2**31,
            k=k,
            exclude=exclude,
        ),
        start_to_close_timeout=timedelta(seconds=60),
        retry_policy=RETRY,
        summary=f"TPE suggestions for iteration {job.s.iteration}",
    )
    return [CandidateChoice(instruction=p[0::2], demo_set=p[1::2]) for p in out.configs]


async def _run_trials(job: Job, choices: list[CandidateChoice], seeds: list[int]) -> None:
    slots = asyncio.Semaphore(job.m.max_parallel_trials)
    first_trial = len(job.s.trials)

    async def trial(index: int, choice: CandidateChoice) -> EvaluateOutput | None:
        async with slots:
            await job.gate()
            if job.s.stop_reason is not None or job.check_termination(planned=index):
                return None
            job.emit(
                "mipro.trial.started",
                f"trial {first_trial + index}",
                {"iteration": job.s.iteration, "trial": first_trial + index, "candidate": choice.key},
            )
            candidate = job.compile(choice)
            cached = job.s.online_cache.get(candidate.content_hash, {})
            todo = [s for s in seeds if s not in cached]
            if not todo:
                return EvaluateOutput(outcomes=[])
            sharing = min(len(choices), job.m.max_parallel_trials)
            return await evaluate(
                job, f"trial-{first_trial + index:04d}", candidate, todo, "online", sharing=sharing
            )

    outs = await asyncio.gather(*(trial(i, c) for i, c in enumerate(choices)))
    for choice, out in zip(choices, outs, strict=True):
        if out is not None and out.ran:
            _record_trial(job, choice, seeds, out)


def _record_trial(job: Job, choice: CandidateChoice, seeds: list[int], out: EvaluateOutput) -> None:
    candidate = job.compile(choice)
    job.account(out.outcomes)
    job.cache(candidate.content_hash, out.outcomes)
    job.s.counters.trials += 1
    cache = job.s.online_cache.get(candidate.content_hash, {})
    base = job.s.online_cache.get(job.baseline_hash(), {})
    score = mean([cache[s] for s in seeds if s in cache])
    lift, n = lift_stats(cache, base, seeds)
    record = TrialRecord(
        trial=len(job.s.trials),
        iteration=job.s.iteration,
        choice=choice,
        candidate_hash=candidate.content_hash,
        seeds=seeds,
        minibatch_score=score,
        paired_lift=lift,
        n=n,
        errors=sum(1 for o in out.outcomes if not o.ok),
        elapsed_seconds=job.elapsed(),
        spend_usd=job.s.spend.total.cost_usd,
    )
    job.s.trials.append(record)
    job.emit(
        "mipro.trial.complete",
        f"trial {record.trial}: minibatch {score}",
        {
            "iteration": record.iteration,
            "trial": record.trial,
            "minibatch_score": score,
            "paired_lift": lift,
            "num_seeds": len(seeds),
            "errors": record.errors,
            "candidate": choice.key,
        },
    )
    job.check_termination()
