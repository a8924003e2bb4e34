"""Promotion: the leader (best shrunk paired lift, not yet validated) is evaluated on the validation seeds
and becomes the best candidate if it beats the incumbent there."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from mipro import search as decide
    from mipro.job_models import ValidationRecord
    from mipro.results import mean

from mipro.workflows.evaluation import evaluate
from mipro.workflows.job import Job


async def promote(job: Job) -> None:
    s = job.s
    top = decide.leader(job.summaries(), s.validation, job.m.batch_size)
    if top is None:
        return
    label = f"val-{top.key.replace('|', '_').replace(':', '-')}"
    out = await evaluate(job, label, job.compile(top.choice), job.m.val_seeds, "validation")
    job.account(out.outcomes)
    score = mean([o.score for o in out.outcomes if o.score is not None]) or 0.0
    s.validation[top.key] = score
    job.emit(
        "mipro.fulleval.complete",
        f"validation of {top.key}: {score:.3f}",
        {"iteration": s.iteration, "candidate": top.key, "score": score, "num_seeds": len(job.m.val_seeds)},
    )
    improved = score > s.validation.get(s.best_key or "", 0.0)
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
        s.best_key = top.key
        job.emit(
            "mipro.new_incumbent",
            f"new best {top.key}: validation {score:.3f}",
            {
                "iteration": s.iteration,
                "candidate": top.key,
                "best_score": score,
                "minibatch_score": top.minibatch_score,
                "cumulative_trials": len(s.trials),
            },
        )
