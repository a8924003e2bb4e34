"""The search: iterations of TPE-suggested trials, each on the iteration's minibatch block, paired with the
baseline on the same seeds; a promotion every `validate_every_iterations`, and one after the last."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from mipro import adaptive_pool
    from mipro import search as decide
    from mipro.activities.search import suggest_candidates
    from mipro.activity_models import EvaluateOutput, SuggestInput
    from mipro.budget import HALTING_STOPS
    from mipro.minibatches import minibatch_blocks
    from mipro.types import CandidateChoice

from mipro.workflows.baseline_block import baseline_request, ensure_baseline_on
from mipro.workflows.evaluation import evaluate_together
from mipro.workflows.final_evaluation import baseline_test_request
from mipro.workflows.job import RETRY, Job
from mipro.workflows.promotion import conclude_promotion, promote, promote_last, promotion_request
from mipro.workflows.proposal import regenerate
from mipro.workflows.trials import record_trial, trial_requests
from mipro.workflows.unbatched_iteration import run_trials

FIRST_ITERATION_PATCH = "informative-first-iteration"  # runs recorded before it used the TPE from the start
REEVALUATE_PATCH = "reevaluate-leader"  # runs recorded before it never ran a candidate twice
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
    while s.iteration < m.num_iterations and s.stop_reason is None:
        await job.gate()
        if job.check_termination():
            break
        if s.iteration in m.generate_at_iterations and s.iteration not in s.regenerated:
            await regenerate(job)
        seeds = _adaptive_seeds(job, blocks) if adaptive else blocks[s.iteration % len(blocks)]
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


async def _iteration(job: Job, seeds: list[int]) -> bool:
    """An iteration as runs recorded before BATCHED_PATCH ran it: the baseline's block, the TPE, then the
    trials, each its own activity. False: the search space is exhausted."""
    await ensure_baseline_on(job, seeds)
    choices = await _suggest(job)
    if choices:
        await run_trials(job, choices, seeds)
    return bool(choices)


async def _batched_iteration(job: Job, seeds: list[int]) -> bool:
    """One activity for the whole iteration: the baseline on the block's new seeds, the trials, and the
    validation of the leader when a promotion is due, sharing the job's rollout slots. False: the search
    space is exhausted."""
    s = job.s
    promotion = promotion_request(job) if s.promotion_due else None
    busy = [promotion.top.key] if promotion else []
    choices = await _suggest(job, busy=busy, local=True)
    if not choices:
        return False  # the due promotion runs alone after the search
    s.promotion_due = False
    requests, trials = trial_requests(job, choices, seeds)
    baseline = baseline_request(job, seeds)
    if baseline:
        requests.insert(0, baseline)
    if promotion:
        requests.append(promotion.request)
    results = await evaluate_together(job, _label(job), requests)
    outs = dict(zip([r.label for r in requests], results, strict=True))
    if baseline:
        out = outs[baseline.label]
        job.account(out.outcomes)
        job.cache(baseline.candidate.content_hash, out.outcomes)
    for choice, label in trials:
        out = outs[label] if label in outs else EvaluateOutput(outcomes=[])  # nothing new to run
        if out.ran:
            record_trial(job, choice, seeds, out)
    if promotion:
        await conclude_promotion(job, promotion, outs[promotion.request.label])
    return True


def _label(job: Job) -> str:
    return f"iteration-{job.s.iteration:04d}"


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


async def _suggest(job: Job, busy: list[str] | None = None, local: bool = False) -> list[CandidateChoice]:
    """This iteration's choices: the informative first picks, the TPE's, the leader when a re-run is due."""
    k = job.m.num_evaluations_per_iteration
    seeded: list[CandidateChoice] = []
    if job.s.iteration == 0 and job.m.informative_first_iteration and workflow.patched(FIRST_ITERATION_PATCH):

        def untried(choice: CandidateChoice) -> bool:
            return job.compile(choice).content_hash not in job.s.online_cache

        seeded = decide.informative_choices(job.s.instructions, job.s.demo_sets, untried)[:k]
    if len(seeded) == k:
        return seeded
    rerun = _leader_to_rerun(job, k - len(seeded), busy or [])
    wanted = k - len(seeded) - len(rerun)
    exclude = [c.as_params() for c in seeded]
    fresh = await _tpe_suggest(job, wanted, exclude, local) if wanted else []
    return seeded + fresh + rerun


def _leader_to_rerun(job: Job, slots: int, busy: list[str]) -> list[CandidateChoice]:
    """[the leader] when one of this iteration's trial numbers is a multiple of `reevaluate_every_trials`.

    A candidate is promoted on its minibatch lift; the best of many noisy lifts is often luck. Running the
    leader again on the new block (paired with the baseline there) firms up its lift before it costs a
    validation, and tells the TPE which of its favourites hold up.
    """
    if not decide.rerun_due(job.m.reevaluate_every_trials, len(job.s.trials), slots):
        return []
    if not workflow.patched(REEVALUATE_PATCH):
        return []
    top = decide.leader(job.summaries(), [*job.s.validation, *busy], job.m.batch_size)
    return [top.choice] if top is not None else []


async def _tpe_suggest(job: Job, k: int, exclude: list[list[int]], local: bool) -> list[CandidateChoice]:
    """The TPE's k picks. `local`: as a local activity (no round trip through the server's task queue;
    it is a pure function of its input, so any workflow worker can run it)."""
    inp = SuggestInput(
        space=decide.search_space(job.s.instructions, job.s.demo_sets),
        history=decide.tpe_history(job.summaries(), job.baseline.key),
        tpe=job.m.tpe,
        seed=(job.m.seed * 1_000_003 + job.s.iteration) % 2**31,
        k=k,
        exclude=exclude,
    )
    timeout = timedelta(seconds=60)
    summary = f"TPE suggestions for iteration {job.s.iteration}"
    if local:
        out = await job.local_activity(
            suggest_candidates, inp, start_to_close_timeout=timeout, retry_policy=RETRY, summary=summary
        )
    else:
        out = await workflow.execute_activity(
            suggest_candidates, inp, start_to_close_timeout=timeout, retry_policy=RETRY, summary=summary
        )
    return [CandidateChoice(instruction=p[0::2], demo_set=p[1::2]) for p in out.configs]
