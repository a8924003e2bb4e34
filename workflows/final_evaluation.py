"""The end of a job: the best candidate and the baseline on the held-out test seeds, and the result."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from mipro import search as decide
    from mipro.activity_models import EvaluateOutput
    from mipro.budget import ERROR_STOPS
    from mipro.compile import compile_stage_messages, locate_stage, render_ready_messages
    from mipro.job_models import BestPrompt, CandidateSummary, JobStatus, OptimizationResult, StagePayload
    from mipro.results import mean, spearman
    from mipro.types import ChatMessage, CompiledCandidate, StageSpec

from mipro.workflows.evaluation import EvaluationRequest, evaluate
from mipro.workflows.job import Job


async def finish(job: Job, baseline_test: EvaluateOutput | None = None) -> OptimizationResult:
    if job.s.stop_reason in ERROR_STOPS:
        return stopped_on_errors(job)
    await job.gate()  # a pause that arrived during the last promotion holds the final evaluation
    job.set_phase("final_eval")
    best_out, base_out = await _test_evaluations(job, baseline_test)
    best_test = mean([o.score for o in best_out.outcomes if o.score is not None])
    base_test = mean([o.score for o in base_out.outcomes if o.score is not None])
    job.set_phase("done")
    job.emit(
        "mipro.job.completed",
        f"done: test {base_test} -> {best_test}",
        {"best_score": best_test, "baseline_test_score": base_test, "stop_reason": job.s.stop_reason},
    )
    return result(job, "succeeded", test_scores=(base_test, best_test))


def baseline_test_request(job: Job) -> EvaluationRequest:
    return EvaluationRequest("test-baseline", job.compile(job.baseline), job.m.test_pool, "test", final=True)


async def _test_evaluations(
    job: Job, base_out: EvaluateOutput | None
) -> tuple[EvaluateOutput, EvaluateOutput]:
    """The best candidate's and the baseline's test outputs (the same when the best is the baseline);
    `base_out`: the baseline's, when it ran beside the last promotions."""
    best = decide.choice_of(job.s.best_key or job.baseline.key)
    test = job.m.test_pool
    if base_out is not None:
        if best.key == job.baseline.key:
            return base_out, base_out
        best_out = await evaluate(job, "test-best", job.compile(best), test, "test", final=True)
        job.account(best_out.outcomes)
        return best_out, base_out
    runs = [evaluate(job, "test-best", job.compile(best), test, "test", final=True, sharing=2)]
    if best.key != job.baseline.key:
        runs.append(
            evaluate(job, "test-baseline", job.compile(job.baseline), test, "test", final=True, sharing=2)
        )
    outs = await asyncio.gather(*runs)
    for out in outs:
        job.account(out.outcomes)
    return outs[0], outs[-1]


def _proxy_agreement(job: Job, summaries: list[CandidateSummary]) -> dict[str, Any]:
    """With proxy_models: how well the proxy's minibatch scores rank what the real model validated."""
    if job.cfg.proxy_models is None:
        return {}
    pairs = [
        (c.minibatch_score, c.validation_score)
        for c in summaries
        if c.minibatch_score is not None and c.validation_score is not None
    ]
    return {
        "proxy_model": job.cfg.proxy_models.model,
        "proxy_rank_agreement": spearman([a for a, _ in pairs], [b for _, b in pairs]),
        "proxy_candidates_compared": len(pairs),
    }


def stopped_on_errors(job: Job) -> OptimizationResult:
    """Rollouts kept failing while the task app answered its health check: the job ends with the best
    candidate validated so far and no test scores (a test evaluation against a failing app is noise)."""
    errors = ", ".join(f"{kind}: {n}" for kind, n in sorted(job.s.counters.errors_by_kind.items()))
    message = (
        f"stopped on errors ({job.s.stop_reason}): {job.s.counters.rollout_errors} of "
        f"{job.s.counters.rollouts} rollouts failed ({errors or 'no detail'}); no final test evaluation"
    )
    job.s.warnings.append(message)
    job.set_phase("done")
    job.emit(
        "mipro.job.stopped", message, {"stop_reason": job.s.stop_reason, "errors_by_kind": errors}, "error"
    )
    return result(job, "stopped_on_errors", test_scores=(None, None))


def cancelled(job: Job) -> OptimizationResult:
    job.s.stop_reason = "cancelled"
    job.emit("mipro.job.cancelled", "cancelled: returning the best candidate found so far", level="warning")
    return result(job, "cancelled", test_scores=(None, None))


USER_PLACEHOLDER = "<the task app's user message>"


def _template(job: Job) -> list[ChatMessage]:
    """The messages `best.messages` is rendered from: initial_prompt's, else the first stage's baseline
    instruction (none before a gathered baseline is in); a user turn stands in where it has none (the
    gathered prompt keeps no user turn: it carries one seed's data)."""
    prompt = job.cfg.initial_prompt
    if prompt is not None:
        template = [ChatMessage(role=m.role, content=m.pattern) for m in prompt.ordered()]
    else:
        template = (
            [ChatMessage(role="system", content=job.stages[0].baseline_instruction)] if job.stages else []
        )
    if template and not any(m.role == "user" for m in template):
        template.append(ChatMessage(role="user", content=USER_PLACEHOLDER))
    return template


def _stage_template(job: Job, stage: StageSpec) -> list[ChatMessage]:
    """The messages a stage's best prompt is rendered from: its own `baseline_messages`, else
    initial_prompt's when they hold its baseline, else its baseline instruction in a message of its role;
    a user turn stands in where there is none."""
    initial = _template(job) if job.cfg.initial_prompt is not None else []
    if stage.baseline_messages:
        template = [ChatMessage(role=m.role, content=m.content) for m in stage.baseline_messages]
    elif locate_stage(initial, [stage]) is not None:
        template = initial
    else:
        template = [ChatMessage(role=stage.role, content=stage.baseline_instruction)]
    if not any(m.role == "user" for m in template):
        template.append(ChatMessage(role="user", content=USER_PLACEHOLDER))
    return template


def _stage_messages(job: Job, candidate: CompiledCandidate) -> dict[str, list[ChatMessage]]:
    """Each stage's ready-to-use messages (none before a gathered baseline is in)."""
    return {
        stage.stage_id: compile_stage_messages(_stage_template(job, stage), stage, candidate)
        for stage in job.stages
        if stage.baseline_instruction
    }


def best_prompt(job: Job, test_score: float | None = None) -> BestPrompt:
    s = job.s
    choice = decide.choice_of(s.best_key or job.baseline.key)
    template = _template(job)
    candidate = job.compile(choice)
    summary = next((c for c in job.summaries() if c.key == choice.key), None)
    demo_indices = [list(s.demo_sets[i][d]) if s.demo_sets else [] for i, d in enumerate(choice.demo_set)]
    payloads = {
        stage.stage_id: StagePayload(
            module_id=stage.module_id,
            instruction_indices=[choice.instruction[i]],
            demo_indices=demo_indices[i],
        )
        for i, stage in enumerate(job.stages)
    }
    instructions = [p.instruction for p in candidate.stages]
    return BestPrompt(
        choice=choice,
        instructions=instructions,
        messages=render_ready_messages(template, job.stages, candidate) if template else [],
        stage_messages=_stage_messages(job, candidate),
        instruction_lines=[line for text in instructions for line in text.splitlines() if line.strip()],
        demo_indices=demo_indices,
        stage_payloads=payloads,
        minibatch_score=summary.minibatch_score if summary else None,
        validation_score=s.validation.get(choice.key),
        test_score=test_score,
    )


def result(job: Job, status: JobStatus, test_scores: tuple[float | None, float | None]) -> OptimizationResult:
    s = job.s
    job.upsert_search_attributes(status)
    base_test, best_test = test_scores
    lift = best_test - base_test if best_test is not None and base_test is not None else None
    best = best_prompt(job, best_test)
    summaries = job.summaries()
    baseline_validation = s.validation.get(job.baseline.key)
    budget = job.cfg.termination.max_spend_usd
    return OptimizationResult(
        job_id=job.inp.job_id,
        status=status,
        stop_reason=s.stop_reason,
        best=best,
        best_minibatch_score=best.minibatch_score,
        optimized_candidates=[
            c
            for c in summaries
            if c.validation_score is not None
            and baseline_validation is not None
            and c.validation_score > baseline_validation
        ],
        instruction_lines=best.instruction_lines,
        stage_payloads=best.stage_payloads,
        final_balance_usd=None if budget is None else max(0.0, budget - s.spend.total.cost_usd),
        balance_type=None if budget is None else "budget_remaining",
        baseline_test_score=base_test,
        best_test_score=best_test,
        lift=lift,
        baseline_validation_score=s.validation.get(job.baseline.key),
        best_validation_score=s.validation.get(s.best_key or ""),
        total_trials=len(s.trials),
        total_rollouts=s.counters.rollouts,
        rollout_errors=s.counters.rollout_errors,
        rerun_errors=s.counters.rerun_errors,
        errors_by_kind=s.counters.errors_by_kind,
        trials=s.trials,
        instructions=s.instructions,
        validations=s.validations,
        attempted_candidates=summaries,
        costs=s.spend,
        elapsed_seconds=job.elapsed(),
        # The policy's /v1/models answer at the health check decides, else the configured provider.
        simulated_llm=s.simulated_llm
        if s.simulated_llm is not None
        else job.cfg.policy.provider == "simulated",
        task_app_data_source=s.task_app_data_source,
        **_proxy_agreement(job, summaries),
        warnings=list(s.warnings),
    )
