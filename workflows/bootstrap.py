"""The first phases: the task app's health check, then bootstrap (the baseline on the bootstrap seeds, whose
good answers become the demo pool, and on the validation seeds)."""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from mipro.activity_models import EvaluateOutput, TaskAppInfo
    from mipro.demos import build_demo_sets
    from mipro.errors import FailureType
    from mipro.proposer.examples import answer_text
    from mipro.proposer.query import query_part
    from mipro.results import mean
    from mipro.types import SeedOutcome, Usage

from mipro.workflows.baseline_prompt import gather_baseline
from mipro.workflows.evaluation import evaluate
from mipro.workflows.job import Job
from mipro.workflows.promotion import record_validation
from mipro.workflows.task_app_health import check_task_app

DATA_SOURCE_MEMO_PATCH = "data-source-memo"  # runs recorded before the memo carried the app's data source
REFERENCE_CORPUS_PATCH = "reference-corpus"  # runs recorded before reference_pool had an effect
MAX_REFERENCE_INPUTS = 100  # reference inputs kept per stage (a proposal shows a window: proposer_effort)
MAX_REFERENCE_CHARS = 300  # each input's query part, cut as a proposal shows it: <= 30 kB of state a stage
MAX_FAILED_EXAMPLES = 8  # low-scoring baseline rollouts kept for the proposer (shown: proposer_effort)


async def health_check(job: Job) -> None:
    job.set_phase("health_check")
    info = await check_task_app(job)
    if job.cfg.gathers_baseline:
        await gather_baseline(job)
    job.s.task_description = job.m.task_description or _describe(info, job.stages[0].baseline_instruction)
    job.s.task_app_data_source = info.data_source
    job.s.simulated_llm = info.simulated_llm
    if info.data_source and workflow.patched(DATA_SOURCE_MEMO_PATCH):  # `mipro list` shows it
        workflow.upsert_memo({"task_app_data_source": info.data_source})
    job.set_phase("bootstrap")


def _describe(info: TaskAppInfo, fallback: str) -> str:
    task = (info.task_info or {}).get("taskset") or (info.task_info or {}).get("task") or {}
    if isinstance(task, dict):
        text = task.get("description") or task.get("name")
        if isinstance(text, str) and text:
            return text
    return fallback


async def bootstrap(job: Job) -> None:
    m, s = job.m, job.s
    baseline = job.compile(job.baseline)
    # The reference corpus: the baseline on reference_pool (the bootstrap pool's env config), inputs captured.
    reference = bool(m.reference_pool) and workflow.patched(REFERENCE_CORPUS_PATCH)
    sharing = 3 if reference else 2
    boot, val, *ref = await asyncio.gather(
        evaluate(
            job, "bootstrap", baseline, m.bootstrap_train_seeds, "bootstrap", capture=True, sharing=sharing
        ),
        evaluate(job, "baseline-val", baseline, m.val_seeds, "validation", sharing=sharing),
        *(
            [evaluate(job, "reference", baseline, m.reference_pool, "bootstrap", capture=True, sharing=3)]
            if reference
            else []
        ),
    )
    _fail_unless_bootstrapped(boot)
    job.account(boot.outcomes)
    job.account(val.outcomes)
    if ref:
        job.account(ref[0].outcomes)
        _keep_reference_corpus(job, ref[0].outcomes)
    s.rollout_estimate = _per_rollout(boot.outcomes + val.outcomes)
    s.baseline_bootstrap_score = mean([o.score for o in boot.outcomes if o.score is not None])
    key = job.baseline.key
    record_validation(job, key, val.outcomes)
    s.best_key = key
    good = _build_demo_pools(job, boot.outcomes)
    job.emit(
        "mipro.bootstrap.progress",
        f"bootstrap: baseline {s.baseline_bootstrap_score}, {good} demos",
        {
            "baseline_score": s.baseline_bootstrap_score,
            "baseline_validation_score": s.validation.get(key),
            "demos": good,
            "demo_sets": [len(d) for d in s.demo_sets],
        },
    )
    if not good:
        _warn_no_demos(job, boot)
    job.set_phase("proposal")


def _per_rollout(measured: list[SeedOutcome]) -> Usage | None:
    """The baseline's mean usage per rollout: what the budget guard scales candidates' estimates from."""
    if not measured:
        return None
    total = Usage()
    for outcome in measured:
        total = total.plus(outcome.usage)
    return Usage(
        calls=max(1, total.calls // len(measured)),
        prompt_tokens=total.prompt_tokens // len(measured),
        completion_tokens=total.completion_tokens // len(measured),
        cost_usd=total.cost_usd / len(measured),
    )


def _build_demo_pools(job: Job, outcomes: list[SeedOutcome]) -> int:
    """Per stage, the demo pool (rollouts scoring at least few_shot_score_threshold), the demo sets drawn
    from it, and (for a stage with no demo) a few failed answers for the proposer. Returns the demo count."""
    threshold = job.m.few_shot_score_threshold
    good = [e for o in outcomes if (o.score or 0.0) >= threshold for e in o.stage_examples]
    failed = [e for o in outcomes if o.score is not None and o.score < threshold for e in o.stage_examples]
    for i, stage in enumerate(job.stages):
        pool = [e for e in good if e.stage_id == stage.stage_id]
        job.s.demo_pool.append(pool)
        job.s.failed_examples.append(
            [] if pool else [e for e in failed if e.stage_id == stage.stage_id][:MAX_FAILED_EXAMPLES]
        )
        size = job.m.max_demo_set_size if stage.max_demo_slots is None else stage.max_demo_slots
        job.s.demo_sets.append(build_demo_sets(pool, size, job.m.max_demo_sets, seed=job.m.seed * 31 + i))
    return len(good)


def _keep_reference_corpus(job: Job, outcomes: list[SeedOutcome]) -> None:
    """Per stage, the query parts of the inputs the reference rollouts captured (distinct, bounded): the
    corpus the meta-model is shown beside the demos. Their scores and answers are not used."""
    inputs = [e for o in outcomes for e in o.stage_examples]
    for stage in job.stages:
        texts = [query_part(e.input)[:MAX_REFERENCE_CHARS] for e in inputs if e.stage_id == stage.stage_id]
        job.s.reference_inputs.append(
            list(dict.fromkeys(t for t in texts if t.strip()))[:MAX_REFERENCE_INPUTS]
        )
    kept = [len(texts) for texts in job.s.reference_inputs]
    job.emit(
        "mipro.reference.captured",
        f"reference corpus: {sum(kept)} inputs from {len(job.m.reference_pool)} reference seeds",
        {"seeds": len(job.m.reference_pool), "inputs": kept, "errors": sum(1 for o in outcomes if o.error)},
        level="info" if sum(kept) else "warning",
    )


def _warn_no_demos(job: Job, boot: EvaluateOutput) -> None:
    """Say, in a warning event and in the result, that no baseline rollout was good enough for a demo."""
    threshold = job.m.few_shot_score_threshold
    scores = [o.score for o in boot.outcomes if o.score is not None]
    errors: dict[str, int] = {}
    for o in boot.outcomes:
        if o.error:
            errors[o.error] = errors.get(o.error, 0) + 1
    answers = list(
        dict.fromkeys(answer_text(o.example.answer)[:80] for o in boot.outcomes if o.example is not None)
    )[:3]
    if not scores:
        message = (
            f"no rollout reached few_shot_score_threshold ({threshold}): every bootstrap rollout failed "
            f"({', '.join(f'{k}: {n}' for k, n in sorted(errors.items())) or 'no rollouts'}), so no demo "
            "was bootstrapped: check the task app and the policy model"
        )
    else:
        lower = " or lower few_shot_score_threshold" if max(scores) > 0 else ""
        shown = ", ".join(repr(a) for a in answers) or "none captured"
        message = (
            f"no rollout reached few_shot_score_threshold ({threshold}): the baseline scored "
            f"{mean(scores):.3f} on {len(scores)} bootstrap seeds (best {max(scores):.3f}), so no demo "
            "was bootstrapped: check the answer format the task app parses against what the model "
            f"answers (e.g. {shown}){lower}. Instructions are proposed from the task description and the "
            "failed answers."
        )
    job.s.warnings.append(message)
    job.emit(
        "mipro.bootstrap.warning",
        message,
        {
            "baseline_score": job.s.baseline_bootstrap_score,
            "few_shot_score_threshold": threshold,
            "best_score": max(scores) if scores else None,
            "answers": answers,
            "errors_by_kind": errors,
        },
        level="warning",
    )


def _fail_unless_bootstrapped(boot: EvaluateOutput) -> None:
    """Errors that no amount of searching can fix end the job here, with a failure that says so."""
    if boot.skipped_for_budget or (boot.outcomes and all(o.error == "budget" for o in boot.outcomes)):
        raise ApplicationError(
            "the budget does not cover the bootstrap: raise the budget or use fewer bootstrap seeds",
            type=FailureType.BUDGET,
            non_retryable=True,
        )
    if boot.outcomes and all(o.error == "transform" for o in boot.outcomes):
        raise ApplicationError(
            "the baseline instruction was not found in the task app's LLM calls "
            f"({boot.outcomes[0].error_detail}). Copy the system message the task app sends into "
            "initial_prompt (or set mipro.stages)",
            type=FailureType.TRANSFORM,
            non_retryable=True,
        )
