"""An iteration's choices: the informative first picks, the TPE's, and the leader when a re-run is due;
none of them a candidate still in flight (`pending`: an overlapped iteration's)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from mipro import search as decide
    from mipro.activities.search import suggest_candidates
    from mipro.activity_models import SuggestInput
    from mipro.job_models import CandidateSummary
    from mipro.types import CandidateChoice

from mipro.workflows.job import RETRY, Job

FIRST_ITERATION_PATCH = "informative-first-iteration"  # runs recorded before it used the TPE from the start
REEVALUATE_PATCH = "reevaluate-leader"  # runs recorded before it never ran a candidate twice


async def suggest(
    job: Job,
    busy: list[str] | None = None,
    local: bool = False,
    pending: list[CandidateChoice] | None = None,
    started: int = 0,
    summaries: list[CandidateSummary] | None = None,
) -> list[CandidateChoice]:
    """This iteration's choices: the informative first picks, the TPE's, the leader when a re-run is due.
    `busy`: keys the leader's re-run must not be; `pending`: candidates in flight, not suggested again;
    `started`: trials in flight, not yet recorded (this iteration's trial numbers come after them);
    `summaries`: the candidates as the leader's re-run and the TPE see them (default: the job's; with an
    iteration draining, its trials on the seeds they have finished too)."""
    k = job.m.num_evaluations_per_iteration
    seeded: list[CandidateChoice] = []
    if job.s.iteration == 0 and job.m.informative_first_iteration and workflow.patched(FIRST_ITERATION_PATCH):

        def untried(choice: CandidateChoice) -> bool:
            return job.compile(choice).content_hash not in job.s.online_cache

        seeded = decide.informative_choices(job.s.instructions, job.s.demo_sets, untried)[:k]
    if len(seeded) == k:
        return seeded
    first_trial = len(job.s.trials) + started
    summaries = job.summaries() if summaries is None else summaries
    rerun = _leader_to_rerun(job, summaries, first_trial, k - len(seeded), busy or [])
    wanted = k - len(seeded) - len(rerun)
    exclude = [c.as_params() for c in [*seeded, *(pending or [])]]
    fresh = await _tpe_suggest(job, summaries, wanted, exclude, local) if wanted else []
    return seeded + fresh + rerun


def _leader_to_rerun(
    job: Job, summaries: list[CandidateSummary], first_trial: int, slots: int, busy: list[str]
) -> list[CandidateChoice]:
    """[the leader] when one of this iteration's trial numbers is a multiple of `reevaluate_every_trials`.

    A candidate is promoted on its minibatch lift; the best of many noisy lifts is often luck. Running the
    leader again on the new block (paired with the baseline there) firms up its lift before it costs a
    validation, and tells the TPE which of its favourites hold up.
    """
    if not decide.rerun_due(job.m.reevaluate_every_trials, first_trial, slots):
        return []
    if not workflow.patched(REEVALUATE_PATCH):
        return []
    top = decide.leader(summaries, [*job.s.validation, *busy], job.m.batch_size)
    return [top.choice] if top is not None else []


async def _tpe_suggest(
    job: Job, summaries: list[CandidateSummary], k: int, exclude: list[list[int]], local: bool
) -> list[CandidateChoice]:
    """The TPE's k picks. `local`: as a local activity (no round trip through the server's task queue;
    it is a pure function of its input, so any workflow worker can run it)."""
    inp = SuggestInput(
        space=decide.search_space(job.s.instructions, job.s.demo_sets),
        history=decide.tpe_history(summaries, job.baseline.key),
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
