"""One evaluation of a candidate on a batch of seeds, inside the budgets: every rollout of a job goes here."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence, Sized
from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError, TimeoutType

with workflow.unsafe.imports_passed_through():
    from mipro.activities.task_app import TaskAppActivities
    from mipro.activity_models import (
        BatchProgress,
        EvaluateBatchInput,
        EvaluateBatchOutput,
        EvaluateInput,
        EvaluateOutput,
    )
    from mipro.budget import (
        HALTING_STOPS,
        EvaluationFit,
        budget_name,
        candidate_estimate,
        extra_prompt_chars,
        final_reserve,
        fit_evaluation,
    )
    from mipro.config import PoolName
    from mipro.errors import FailureType
    from mipro.types import CandidateChoice, CompiledCandidate, Usage

from mipro.workflows.job import RETRY, Job
from mipro.workflows.pinning import pin
from mipro.workflows.task_app_health import wait_out_outage


@dataclass(frozen=True)
class EvaluationRequest:
    """What to evaluate: a candidate on seeds of a pool (`capture`: keep good rollouts as demos; `final`:
    part of the final test evaluation, which spends the budget kept back for it)."""

    label: str
    candidate: CompiledCandidate
    seeds: list[int]
    pool: PoolName
    capture: bool = False
    final: bool = False


TRANSIENT_ERRORS = frozenset({"http_5xx", "rate_limited", "timeout", "connection", "bad_json", "llm_error"})


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

    Rollouts that failed on a transient error (the app or the LLM unreachable, 5xx, timeouts) are run again
    until they score or the job stops, so a comparison never rests on the seeds an outage happened to hit.
    `sharing` is how many evaluations run side by side; they split `max_concurrent` rollouts, so a lone
    evaluation (a promotion, a baseline block) uses all of it.
    """
    out = await _run_once(job, label, candidate, seeds, pool, capture, final, sharing)
    return await _rerun_failed(
        job, EvaluationRequest(label, candidate, seeds, pool, capture, final), out, sharing
    )


async def evaluate_together(
    job: Job, label: str, requests: list[EvaluationRequest], priority: int = 0, notify_draining: bool = False
) -> list[EvaluateOutput]:
    """Several evaluations as one activity whose rollouts share `max_concurrent` slots, so one that
    finishes hands its slots to the others at once (no per-evaluation tails); at most
    `max_parallel_trials` of them have rollouts in flight at a time. Each is fitted to the budgets in
    order (what fits of it runs), and its failed rollouts are run again as `evaluate` does. `priority`:
    beside the job's other batches on its pinned worker, a lower number gets freed slots first;
    `notify_draining`: the activity signals when it drains (`Job.draining`)."""
    await job.gate()
    prepared = [_prepare(job, r, final=r.final, concurrency=job.m.max_concurrent) for r in requests]
    runnable = [p for p in prepared if not isinstance(p, EvaluateOutput)]
    ran = iter(await _run_batch(job, label, runnable, priority, notify_draining) if runnable else [])
    outs = [p if isinstance(p, EvaluateOutput) else _checked(job, p[0].label, next(ran)) for p in prepared]
    # Re-runs are small (the failed seeds); side by side they split max_concurrent.
    sharing = len(requests)
    reruns = (_rerun_failed(job, r, out, sharing) for r, out in zip(requests, outs, strict=True))
    return list(await asyncio.gather(*reruns))


async def _rerun_failed(
    job: Job, request: EvaluationRequest, out: EvaluateOutput, sharing: int
) -> EvaluateOutput:
    """Run the rollouts that failed on a transient error again, after each pause of
    mipro.rerun_delays_seconds (about a minute in all: longer than an app restart), each after a health
    check that waits out an outage. A seed still failing after the last, with the app answering, fails
    for a reason of its own: it is an error, and later evaluations try it once instead of waiting again."""
    label, pool, final = request.label, request.pool, request.final
    for rerun, delay in enumerate(job.m.rerun_delays_seconds, start=1):
        failed = [
            o for o in out.outcomes if o.error in TRANSIENT_ERRORS and not _known_bad(job, pool, o.seed)
        ]
        if not out.ran or not failed or _halted(job, final):
            return out
        job.emit(
            "mipro.evaluation.rerun",
            f"{label}: {len(failed)} rollouts failed ({failed[0].error}): run again in {delay:g} s",
            {"label": label, "seeds": [o.seed for o in failed], "round": rerun, "delay_seconds": delay},
            level="warning",
        )
        await workflow.sleep(timedelta(seconds=delay))
        if not await wait_out_outage(job) or _halted(job, final):
            return out
        again = await _run_once(
            job,
            f"{label}-rerun{rerun}",
            request.candidate,
            [o.seed for o in failed],
            pool,
            request.capture,
            final,
            sharing,
        )
        if not again.ran:
            return out
        for o in failed:  # the failed attempts spent and ran: counted, but not as the seed's outcome
            job.s.spend.add("rollout", o.usage)
            job.s.counters.record_rerun(o.error)
        out = _merged(out, again)
    if out.ran:
        _remember_bad_seeds(job, label, pool, out)
    return out


def _known_bad(job: Job, pool: PoolName, seed: int) -> bool:
    return f"{pool}:{seed}" in job.s.failing_seeds


def _remember_bad_seeds(job: Job, label: str, pool: PoolName, out: EvaluateOutput) -> None:
    bad = [o.seed for o in out.outcomes if o.error in TRANSIENT_ERRORS and not _known_bad(job, pool, o.seed)]
    if not bad or not job.m.rerun_delays_seconds:
        return
    job.s.failing_seeds.extend(f"{pool}:{seed}" for seed in bad)
    job.emit(
        "mipro.seed.failing",
        f"{label}: {pool} seeds {bad} still fail after every re-run while the task app answers: counted as "
        "errors, tried once from now on",
        {"label": label, "pool": pool, "seeds": bad},
        level="warning",
    )


def _halted(job: Job, final: bool) -> bool:
    """After a halting stop nothing new starts, except the final test evaluation (its budget is kept back)."""
    job.check_termination()
    return not final and job.s.stop_reason in HALTING_STOPS


def _merged(out: EvaluateOutput, again: EvaluateOutput) -> EvaluateOutput:
    by_seed = {o.seed: o for o in again.outcomes}
    return EvaluateOutput(
        outcomes=[by_seed.get(o.seed, o) for o in out.outcomes],
        lost_usage=out.lost_usage.plus(again.lost_usage),
    )


async def _run_once(
    job: Job,
    label: str,
    candidate: CompiledCandidate,
    seeds: list[int],
    pool: PoolName,
    capture: bool,
    final: bool,
    sharing: int,
) -> EvaluateOutput:
    await job.gate()
    concurrency = max(1, job.m.max_concurrent // sharing)
    prepared = _prepare(job, EvaluationRequest(label, candidate, seeds, pool, capture), final, concurrency)
    if isinstance(prepared, EvaluateOutput):
        return prepared
    if job.pinned_rollout_queue is not None:  # a batch of one, in the job's slots on its pinned worker
        [out] = await _run_batch(job, label, [prepared])
        return _checked(job, label, out)
    inp, allowance = prepared
    job.evaluations_in_flight += 1
    try:
        out = await workflow.execute_activity_method(
            TaskAppActivities.evaluate_candidate,
            inp,
            start_to_close_timeout=_timeout(job, len(inp.seeds), concurrency),
            # Heartbeats reach the server every 2 s; the slack absorbs a loaded server or worker.
            heartbeat_timeout=timedelta(seconds=15),
            retry_policy=RETRY,
            task_queue=job.inp.task_queues.rollouts,
            summary=f"{label}: {len(inp.seeds)} seeds",
        )
        return _checked(job, label, out)
    finally:
        job.evaluations_in_flight -= 1
        job.reserved = job.reserved.minus(allowance)


async def _run_batch(
    job: Job,
    label: str,
    prepared: list[tuple[EvaluateInput, Usage]],
    priority: int = 0,
    notify_draining: bool = False,
) -> list[EvaluateOutput]:
    """One `evaluate_candidates` activity; the allowances were reserved by `_prepare` and are released."""
    items = [item for item, _ in prepared]
    m = job.m
    inp = EvaluateBatchInput(
        job_id=job.inp.job_id,
        label=label,
        items=items,
        concurrency=m.max_concurrent,
        max_parallel=m.max_parallel_trials,
        priority=priority,
        notify_draining=notify_draining,
    )
    job.evaluations_in_flight += len(items)
    try:
        while True:
            try:
                return (await _batch_activity(job, inp)).outputs
            except ActivityError as err:
                if not _pinned_worker_lost(job, err):
                    raise
                inp = inp.model_copy(update={"resume": _last_progress(err) or inp.resume})
                await _repin(job, label)
    finally:
        job.evaluations_in_flight -= len(items)
        for _, allowance in prepared:
            job.reserved = job.reserved.minus(allowance)


async def _batch_activity(job: Job, inp: EvaluateBatchInput) -> EvaluateBatchOutput:
    """The batch on the job's rollout queue, or on the worker it is pinned to (which must take it within
    `pinned_start_timeout_seconds`: a worker that is gone never does)."""
    pinned = job.pinned_rollout_queue
    seeds = sum(len(i.seeds) for i in inp.items)
    pinned_start = timedelta(seconds=job.m.pinned_start_timeout_seconds)
    return await workflow.execute_activity_method(
        TaskAppActivities.evaluate_candidates,
        inp,
        start_to_close_timeout=_timeout(job, seeds, inp.concurrency),
        schedule_to_start_timeout=pinned_start if pinned else None,
        heartbeat_timeout=timedelta(seconds=15),
        retry_policy=RETRY,
        task_queue=pinned or job.inp.task_queues.rollouts,
        summary=f"{inp.label}: " + ", ".join(f"{i.label} ({len(i.seeds)})" for i in inp.items),
    )


def _pinned_worker_lost(job: Job, err: ActivityError) -> bool:
    """The worker the batch was pinned to is gone: its queue found no taker in time."""
    cause = err.cause
    return (
        job.pinned_rollout_queue is not None
        and isinstance(cause, TimeoutError)
        and cause.type == TimeoutType.SCHEDULE_TO_START
    )


def _last_progress(err: ActivityError) -> BatchProgress | None:
    """Where the lost attempts stopped: their last heartbeat (None: none was recorded)."""
    details = err.cause.last_heartbeat_details if isinstance(err.cause, TimeoutError) else ()
    return BatchProgress.model_validate(details[-1]) if details else None


async def _repin(job: Job, label: str) -> None:
    lost = job.pinned_rollout_queue
    await pin(job)
    job.emit(
        "mipro.worker.repinned",
        f"{label}: the worker on {lost} took nothing for {job.m.pinned_start_timeout_seconds:g} s; the batch "
        f"resumes on {job.pinned_rollout_queue}",
        {"label": label, "lost_queue": lost, "queue": job.pinned_rollout_queue},
        level="warning",
    )


def _prepare(
    job: Job, request: EvaluationRequest, final: bool, concurrency: int
) -> tuple[EvaluateInput, Usage] | EvaluateOutput:
    """The activity input of an evaluation, shrunk to what fits the budgets, and its allowance (reserved
    here, released by the caller when the evaluation is done); or the output of one that cannot run."""
    if _halted(job, final):
        return EvaluateOutput(outcomes=[], halted=True)
    fit = _fit(job, request.candidate, len(request.seeds), final)
    if fit.seeds == 0:
        job.stop(budget_name(job.cfg.termination, job.s.spend))
        return EvaluateOutput(outcomes=[], skipped_for_budget=True)
    allowance = fit.allowance or Usage()
    job.reserved = job.reserved.plus(allowance)
    inp = EvaluateInput(
        job_id=job.inp.job_id,
        label=request.label,
        target=job.target(request.pool),
        candidate=request.candidate,
        seeds=request.seeds[: fit.seeds],
        concurrency=concurrency,
        capture_examples=request.capture,
        max_cost_usd=fit.allowance.cost_usd if fit.allowance else None,
        max_tokens=fit.allowance.total_tokens if fit.allowance else None,
    )
    return inp, allowance


def _timeout(job: Job, seeds: int, concurrency: int) -> timedelta:
    m = job.m
    waves = -(-seeds // concurrency)
    return timedelta(seconds=60 + waves * m.rollout_timeout_seconds * (m.rollout_retries + 1))


def _checked(job: Job, label: str, out: EvaluateOutput) -> EvaluateOutput:
    _count_lost_attempts(job, label, out)
    if job.m.transform_strict:
        _fail_on_transform_errors(label, out)
    return out


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
    return candidate_estimate(job.s.rollout_estimate, extra, job.cfg.prompt_price())


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


def _fail_on_transform_errors(label: str, out: EvaluateOutput) -> None:
    """transform_strict: a candidate whose instruction cannot be placed in the app's calls ends the job."""
    failed = next((o for o in out.outcomes if o.error == "transform"), None)
    if failed is not None:
        raise ApplicationError(
            f"{label}: the instruction could not be placed in the app's LLM call ({failed.error_detail}); "
            "transform_strict is set, so the job stops (unset it to count such rollouts as errors instead)",
            type=FailureType.TRANSFORM,
            non_retryable=True,
        )


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
