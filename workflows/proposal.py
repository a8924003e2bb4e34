"""Instruction proposal: the meta-model writes instructions per stage, grounded in the task, the demos and
(when re-proposing mid-search, `generate_at_iterations`) the scores so far."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from mipro.activities.proposals import ProposalActivities
    from mipro.activity_models import ProposeInput, ProposeOutput
    from mipro.budget import proposal_allowance
    from mipro.proposer.profile import ProposerSettings
    from mipro.results import instruction_scores

from mipro.workflows.baseline_block import ensure_baseline_on, first_block
from mipro.workflows.job import RETRY, Job

# Runs recorded before it ran the baseline's first block after the proposal round, not beside it.
BASELINE_DURING_PROPOSAL_PATCH = "baseline-block-during-proposal"

MAX_PROPOSER_EXAMPLES = (
    30  # demos sent to the proposer (each proposal shows a window of them: proposer_effort)
)


async def propose(job: Job) -> None:
    """The first round, while the baseline runs on the first iteration's block: the meta-model's calls
    leave the rollout slots idle otherwise, and the baseline's scores there do not depend on them."""
    for stage in job.stages:  # each stage starts from its baseline and the configured candidates
        job.s.instructions.append([stage.baseline_instruction, *job.m.instruction_candidates])
    block = first_block(job) if workflow.patched(BASELINE_DURING_PROPOSAL_PATCH) else []
    if block:
        # The baseline goes first: its evaluation reserves its budget allowance before the round asks
        # for what is left (`proposal_allowance` subtracts what is reserved), so the two cannot overspend.
        await asyncio.gather(ensure_baseline_on(job, block), _first_round(job))
    else:
        await _first_round(job)
    job.set_phase("search")


async def _first_round(job: Job) -> None:
    for i in range(len(job.stages)):
        await _propose_for_stage(job, i, max(0, job.m.max_instructions - len(job.s.instructions[i])))


async def regenerate(job: Job) -> None:
    """Propose again mid-search (`generate_at_iterations`), grounded in the scores so far."""
    job.s.regenerated.append(job.s.iteration)
    for i in range(len(job.stages)):
        await _propose_for_stage(job, i, max(1, (job.m.max_instructions - 1) // 2), with_history=True)


async def _propose_for_stage(job: Job, i: int, wanted: int, with_history: bool = False) -> None:
    wanted = min(wanted, job.m.max_instruction_sets - len(job.s.instructions[i]))
    if wanted <= 0:
        return  # the stage holds max_instruction_sets instructions already
    history = instruction_scores(job.s, i) if with_history else []
    await job.gate()
    job.proposals_in_flight += 1
    try:
        out = await _propose_activity(job, i, wanted, history)
    finally:
        job.proposals_in_flight -= 1
    job.s.spend.add("proposal", out.usage)
    first_new = len(job.s.instructions[i]) if with_history else 0
    job.s.instructions[i].extend(out.instructions)
    stage_id = job.stages[i].stage_id
    for j in range(first_new, len(job.s.instructions[i])):
        job.emit(
            "mipro.instruction.proposed",
            f"instruction {j} for {stage_id}",
            {
                "iteration": job.s.iteration,
                "stage_id": stage_id,
                "instruction_id": j,
                "instruction_text": job.s.instructions[i][j],
            },
        )


async def _propose_activity(job: Job, i: int, wanted: int, history: list[tuple[str, float]]) -> ProposeOutput:
    s, m, term = job.s, job.m, job.cfg.termination
    stage = job.stages[i]
    return await workflow.execute_activity_method(
        ProposalActivities.propose_instructions,
        ProposeInput(
            job_id=job.inp.job_id,
            meta=m.meta,
            meta_price=job.cfg.price_of(m.meta.model),
            stage=stage,
            task_description=s.task_description,
            demos=s.demo_pool[i][:MAX_PROPOSER_EXAMPLES],
            existing=list(s.instructions[i]),
            n=wanted,
            duplicate_retry_limit=m.duplicate_retry_limit,
            seed=m.seed * 101 + i + 7919 * len(s.regenerated),
            history=history,
            failed_examples=s.failed_examples[i] if i < len(s.failed_examples) else [],
            max_cost_usd=proposal_allowance(term, s.spend, job.reserved),
            max_tokens=None
            if term.max_token_limit is None
            else term.max_token_limit - s.spend.total.total_tokens,
            proposer=ProposerSettings(
                mode=m.proposer_mode,
                effort=m.proposer_effort,
                output_tokens=m.proposer_output_tokens,
                instructions_per_batch=m.instructions_per_batch,
                spec=m.spec,
                spec_max_tokens=m.spec_max_tokens,
                metaprompt=m.metaprompt,
            ),
            reference_inputs=s.reference_inputs[i] if i < len(s.reference_inputs) else [],
        ),
        start_to_close_timeout=timedelta(minutes=30),
        heartbeat_timeout=timedelta(seconds=10),  # heartbeats are sent every second
        retry_policy=RETRY,
        task_queue=job.inp.task_queues.proposals,
        summary=f"propose {wanted} instructions for stage {stage.stage_id}",
    )
