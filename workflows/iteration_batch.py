"""One iteration's evaluations as one activity: launched (the TPE's choices, the baseline on the block's
new seeds, the due promotion's validation, all sharing the job's rollout slots), then landed (the baseline
cached, the trials recorded, the promotion decided). A synchronous search lands each iteration before it
launches the next; an overlapped one (`mipro.workflows.overlapped_search`) launches the next first."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from mipro.activity_models import BatchDraining, EvaluateOutput
    from mipro.results import lift_stats
    from mipro.search import Observation
    from mipro.types import CandidateChoice

from mipro.workflows.baseline_block import baseline_request
from mipro.workflows.evaluation import EvaluationRequest, evaluate_together
from mipro.workflows.job import Job
from mipro.workflows.promotion import Promotion, conclude_promotion, promotion_request
from mipro.workflows.suggestions import suggest
from mipro.workflows.trials import record_trial, trial_requests


@dataclass
class IterationBatch:
    """An iteration in flight: what it runs, and the task that runs it."""

    iteration: int
    seeds: list[int]
    trials: list[tuple[CandidateChoice, str]]  # each choice with its evaluation's label
    baseline: EvaluationRequest | None
    promotion: Promotion | None
    labels: list[str]  # the evaluations' labels, in the order of the results
    results: asyncio.Task[list[EvaluateOutput]]
    label: str = ""  # the batch activity's, e.g. "iteration-0003"

    def busy(self) -> list[CandidateChoice]:
        """The candidates it is evaluating: the next iteration neither suggests nor validates them."""
        choices = [choice for choice, _ in self.trials]
        return choices + ([self.promotion.top.choice] if self.promotion else [])


async def launch(
    job: Job,
    seeds: list[int],
    pending: IterationBatch | None = None,
    partial: list[Observation] | None = None,
    notify_draining: bool = False,
) -> IterationBatch | None:
    """Start the iteration on `seeds` (beside `pending`, the iteration still in flight, if any, whose
    `partial` evidence the TPE learns from). `notify_draining`: its activity signals when it drains. None:
    the search space has nothing left to suggest."""
    s = job.s
    in_flight = pending.busy() if pending else []
    busy = [c.key for c in in_flight]
    promotion = promotion_request(job, busy=busy) if s.promotion_due else None
    if promotion:
        busy.insert(0, promotion.top.key)
    started = len(pending.trials) if pending else 0
    choices = await suggest(job, busy=busy, local=True, pending=in_flight, started=started, partial=partial)
    if not choices:
        return None  # the due promotion runs alone after the search
    s.promotion_due = False
    requests, trials = trial_requests(job, choices, seeds, started=started)
    baseline = baseline_request(job, seeds)
    if baseline:
        requests.insert(0, baseline)
    if promotion:
        requests.append(promotion.request)
    label = f"iteration-{s.iteration:04d}"
    evaluations = evaluate_together(job, label, requests, s.iteration, notify_draining)
    labels = [r.label for r in requests]
    results = asyncio.create_task(evaluations)
    return IterationBatch(s.iteration, seeds, trials, baseline, promotion, labels, results, label)


def partial_evidence(job: Job, batch: IterationBatch, notice: BatchDraining) -> list[Observation]:
    """What the batch's trials have shown so far: each new candidate's paired lift over the baseline on the
    block's seeds both have scores for (the baseline's own scores on the block may be in the batch too)."""
    base = {**job.s.online_cache.get(job.baseline_hash(), {})}
    if batch.baseline:
        base.update(notice.scores.get(batch.baseline.label, {}))
    known = {c.key for c in job.summaries()}
    observations = []
    for choice, label in batch.trials:
        if choice.key in known:
            continue  # a re-run leader: the TPE knows it already
        cached = job.s.online_cache.get(job.compile(choice).content_hash, {})
        cache = {**cached, **notice.scores.get(label, {})}
        lift, n = lift_stats(cache, base, batch.seeds)
        if lift is not None:
            observations.append((choice.as_params(), lift, n))
    return observations


async def land(job: Job, batch: IterationBatch) -> None:
    """Wait for the iteration's results and take them in: the baseline's scores, each trial's record, the
    promotion's decision."""
    outs = dict(zip(batch.labels, await batch.results, strict=True))
    if batch.baseline:
        out = outs[batch.baseline.label]
        job.account(out.outcomes)
        job.cache(batch.baseline.candidate.content_hash, out.outcomes)
    for choice, label in batch.trials:
        out = outs[label] if label in outs else EvaluateOutput(outcomes=[])  # nothing new to run
        if out.ran:
            record_trial(job, choice, batch.seeds, out, iteration=batch.iteration)
    if batch.promotion:
        await conclude_promotion(job, batch.promotion, outs[batch.promotion.request.label])
