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
    from mipro.job_models import CandidateSummary
    from mipro.results import candidate_summaries
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
    view: DrainingView | None = None,
    notify_draining: bool = False,
) -> IterationBatch | None:
    """Start the iteration on `seeds` (beside `pending`, the iteration still in flight, if any, as `view`
    shows it when it drains). `notify_draining`: its activity signals when it drains. None: the search
    space has nothing left to suggest."""
    s = job.s
    in_flight = pending.busy() if pending else []
    busy = [c.key for c in in_flight]
    promotion = promotion_request(job, busy=busy) if s.promotion_due else None
    if promotion:
        busy.insert(0, promotion.top.key)
    if view is not None:
        busy = [key for key in busy if key not in view.finished]
    started = len(pending.trials) if pending else 0
    summaries = view.summaries if view else None
    choices = await suggest(
        job, busy=busy, local=True, pending=in_flight, started=started, summaries=summaries
    )
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


@dataclass(frozen=True)
class DrainingView:
    """The job's candidates as they will stand once a draining batch lands, as far as its scores so far
    tell: its trials' candidates on the seeds they have finished (`summaries`), and `finished`, the keys
    of those whose seeds are all done (no longer busy: the next iteration may re-run one as the leader)."""

    summaries: list[CandidateSummary]
    finished: set[str]
    seen_seeds: dict[str, int]  # each of its trials' seeds with a score so far, by candidate key


def draining_view(job: Job, batch: IterationBatch, notice: BatchDraining) -> DrainingView:
    """The draining batch's scores so far (its baseline's on the block too) merged into the job's."""
    cache = {content_hash: dict(scores) for content_hash, scores in job.s.online_cache.items()}
    if batch.baseline:
        cache.setdefault(job.baseline_hash(), {}).update(notice.scores.get(batch.baseline.label, {}))
    tried = [(t.choice, t.candidate_hash) for t in job.s.trials]
    finished, seen = set(), {}
    for choice, label in batch.trials:
        content_hash = job.compile(choice).content_hash
        scores = cache.setdefault(content_hash, {})
        scores.update(notice.scores.get(label, {}))
        seen[choice.key] = sum(1 for seed in batch.seeds if seed in scores)
        if seen[choice.key] == len(batch.seeds):
            finished.add(choice.key)
        tried.append((choice, content_hash))
    summaries = candidate_summaries(job.s, job.baseline_hash(), job.baseline.key, tried, cache)
    return DrainingView(summaries, finished, seen)


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
