"""Promotion: the leader (best shrunk paired lift, not yet validated) is evaluated on the validation seeds
and becomes the best candidate if it beats the incumbent, compared on the seeds both scored: on the
validation seeds alone (histories from before POOLED_EVIDENCE_PATCH), or on the validation and minibatch
seeds together (`mipro.evidence`: a posterior over the paired difference of means).

A validation in which no rollout scored has no score: it is reported and decides nothing (the leader stays
unvalidated and is tried again at the next promotion).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from mipro import evidence
    from mipro import search as decide
    from mipro.activity_models import EvaluateOutput
    from mipro.job_models import CandidateSummary, ValidationRecord
    from mipro.results import mean
    from mipro.types import SeedOutcome

from mipro.workflows.evaluation import EvaluationRequest, evaluate, evaluate_together
from mipro.workflows.job import Job

POOLED_EVIDENCE_PATCH = "promotion-pooled-evidence"


async def promote(job: Job) -> None:
    """Validate the leader now (alone), and decide."""
    promotion = promotion_request(job)
    if promotion is not None:
        r = promotion.request
        out = await evaluate(job, r.label, r.candidate, r.seeds, r.pool)
        await conclude_promotion(job, promotion, out)


async def promote_last(job: Job, due: bool, beside: list[EvaluationRequest]) -> list[EvaluateOutput]:
    """The search's last promotions (the one due, if any, and the last leader's) as one activity with
    `beside`, evaluations that do not depend on them (the baseline's test), sharing the rollout slots;
    decided in that order. Returns the outputs of `beside`."""
    promotions: list[Promotion] = []
    for _ in range(2 if due else 1):
        promotion = promotion_request(job, busy=[p.top.key for p in promotions])
        if promotion is not None:
            promotions.append(promotion)
    outs = await evaluate_together(job, "closing", [*(p.request for p in promotions), *beside])
    for promotion, out in zip(promotions, outs, strict=False):
        await conclude_promotion(job, promotion, out)
    return outs[len(promotions) :]


@dataclass(frozen=True)
class Promotion:
    """A leader on its way to validation, and how its validation will be decided."""

    top: CandidateSummary
    request: EvaluationRequest
    pooling: bool  # decided on validation and minibatch evidence together (POOLED_EVIDENCE_PATCH)


def promotion_request(job: Job, busy: Collection[str] = ()) -> Promotion | None:
    """The leader (not validated, not in `busy`) and its evaluation on the validation seeds; None: no
    candidate is promising."""
    top = decide.leader(job.summaries(), [*job.s.validation, *busy], job.m.batch_size)
    if top is None:
        return None
    # Asked right before the validation is scheduled, so its marker always sits next to that command.
    pooling = workflow.patched(POOLED_EVIDENCE_PATCH)
    request = EvaluationRequest(_label(top.key), job.compile(top.choice), job.m.val_seeds, "validation")
    return Promotion(top, request, pooling)


async def conclude_promotion(job: Job, promotion: Promotion, out: EvaluateOutput) -> None:
    """Record the leader's validation and make it the best candidate if it beats the incumbent there."""
    s, top, pooling = job.s, promotion.top, promotion.pooling
    job.account(out.outcomes)
    if not out.ran:
        return
    if not record_validation(job, top.key, out.outcomes):
        job.emit(
            "mipro.fulleval.failed",
            f"validation of {top.key}: no rollout scored, so it has no score and decides nothing",
            {"iteration": s.iteration, "candidate": top.key, "errors": [o.error for o in out.outcomes]},
            level="warning",
        )
        return
    incumbent = s.best_key or job.baseline.key
    await _complete_incumbent(job, incumbent, top.key)
    found = _pooled(job, top, incumbent) if pooling and not _legacy(job, incumbent) else None
    improved = found.promote if found is not None else _beats(job, top.key, incumbent)
    _report(job, top, improved, found)
    if improved:
        s.best_key = top.key


def record_validation(job: Job, key: str, outcomes: list[SeedOutcome]) -> bool:
    """Keep a candidate's validation scores per seed (and their mean). False: no rollout scored."""
    scores = {o.seed: o.score for o in outcomes if o.score is not None}
    if not scores:
        return False
    per_seed = job.s.validation_seeds.setdefault(key, {})
    per_seed.update(scores)
    job.s.validation[key] = mean(list(per_seed.values())) or 0.0
    return True


async def _complete_incumbent(job: Job, incumbent: str, challenger: str) -> None:
    """Score the incumbent on the validation seeds the challenger scored and it did not (its own validation
    lost them to failures), so the comparison is paired on the same seeds."""
    s = job.s
    if _legacy(job, incumbent):
        return
    have = s.validation_seeds.get(incumbent, {})
    missing = [
        seed for seed in job.m.val_seeds if seed in s.validation_seeds[challenger] and seed not in have
    ]
    if not missing:
        return
    choice = decide.choice_of(incumbent)
    out = await evaluate(job, _label(incumbent) + "-paired", job.compile(choice), missing, "validation")
    job.account(out.outcomes)
    record_validation(job, incumbent, out.outcomes)


def _beats(job: Job, challenger: str, incumbent: str) -> bool:
    """Whether the challenger's mean beats the incumbent's on the validation seeds both scored."""
    s = job.s
    if _legacy(job, incumbent):
        return s.validation[challenger] > s.validation[incumbent]
    mine, theirs = s.validation_seeds[challenger], s.validation_seeds.get(incumbent, {})
    shared = [seed for seed in mine if seed in theirs]
    if not shared:
        return False  # nothing to compare on: the incumbent stays
    return (mean([mine[x] for x in shared]) or 0.0) > (mean([theirs[x] for x in shared]) or 0.0)


def _pooled(job: Job, top: CandidateSummary, incumbent: str) -> evidence.Evidence:
    """The decision from the validation and minibatch scores of both, each paired on shared seeds."""
    s = job.s
    incumbent_hash = job.compile(decide.choice_of(incumbent)).content_hash
    return evidence.decide(
        s.validation_seeds[top.key],
        s.validation_seeds.get(incumbent, {}),
        s.online_cache.get(top.candidate_hash, {}),
        s.online_cache.get(incumbent_hash, {}),
    )


def _legacy(job: Job, key: str) -> bool:
    """State carried from a run that kept validation means only (no per-seed scores): compare the means."""
    return key in job.s.validation and key not in job.s.validation_seeds


def _label(key: str) -> str:
    return f"val-{key.replace('|', '_').replace(':', '-')}"


def _report(job: Job, top: CandidateSummary, improved: bool, found: evidence.Evidence | None) -> None:
    s = job.s
    score = s.validation[top.key]
    num_seeds = len(s.validation_seeds.get(top.key, {})) or len(job.m.val_seeds)
    why = {"evidence": found.model_dump()} if found is not None else {}
    message = f"validation of {top.key}: {score:.3f}"
    if found is not None:
        message += f"; P(better than the incumbent | validation and minibatch) = {found.p_better:.2f}"
    job.emit(
        "mipro.fulleval.complete",
        message,
        {"iteration": s.iteration, "candidate": top.key, "score": score, "num_seeds": num_seeds, **why},
    )
    s.validations.append(
        ValidationRecord(
            after_trials=len(s.trials),
            key=top.key,
            score=score,
            incumbent=improved,
            elapsed_seconds=job.elapsed(),
            spend_usd=s.spend.total.cost_usd,
        )
    )
    if improved:
        job.emit(
            "mipro.new_incumbent",
            f"new best {top.key}: validation {score:.3f}",
            {
                "iteration": s.iteration,
                "candidate": top.key,
                "best_score": score,
                "minibatch_score": top.minibatch_score,
                "cumulative_trials": len(s.trials),
                **why,
            },
        )
