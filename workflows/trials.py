"""A trial's two ends: which of an iteration's choices start (and on which seeds not yet scored), and
the trial's record once its evaluation is back (cache, paired lift, event)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from mipro.activity_models import EvaluateOutput
    from mipro.job_models import TrialRecord
    from mipro.results import lift_stats, mean
    from mipro.types import CandidateChoice

from mipro.workflows.evaluation import EvaluationRequest
from mipro.workflows.job import Job


def trial_requests(
    job: Job, choices: list[CandidateChoice], seeds: list[int], started: int = 0
) -> tuple[list[EvaluationRequest], list[tuple[CandidateChoice, str]]]:
    """The iteration's trials that may start (max_trials, the stop), each with its label, and the
    evaluations of their seeds not yet scored. `started`: trials in flight, not yet recorded."""
    first_trial = len(job.s.trials) + started
    requests, trials = [], []
    for index, choice in enumerate(choices):
        if job.s.stop_reason is not None or job.check_termination(planned=started + index):
            break
        request = start_trial(job, first_trial + index, choice, seeds)
        if request.seeds:
            requests.append(request)
        trials.append((choice, request.label))
    return requests, trials


def start_trial(job: Job, trial: int, choice: CandidateChoice, seeds: list[int]) -> EvaluationRequest:
    """Announce a trial; its evaluation on the seeds its candidate has no score on yet (maybe none)."""
    job.emit(
        "mipro.trial.started",
        f"trial {trial}",
        {"iteration": job.s.iteration, "trial": trial, "candidate": choice.key},
    )
    candidate = job.compile(choice)
    cached = job.s.online_cache.get(candidate.content_hash, {})
    todo = [x for x in seeds if x not in cached]
    return EvaluationRequest(f"trial-{trial:04d}", candidate, todo, "online")


def record_trial(
    job: Job, choice: CandidateChoice, seeds: list[int], out: EvaluateOutput, iteration: int | None = None
) -> None:
    """Take in a trial's evaluation; `iteration`: the one it ran in (default: the current one)."""
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
        iteration=job.s.iteration if iteration is None else iteration,
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
