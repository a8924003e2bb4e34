"""A full job on banking77 seeds with the simulated LLM, on the real dev server with real HTTP."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from mipro.serving import BackgroundServer
from starter import jobs
from tests.conftest import SMALL_JOB, job_config
from worker import WorkerOptions, running_worker


async def test_full_job_beats_baseline_on_held_out_seeds(
    temporal_env: WorkflowEnvironment, simllm: BackgroundServer, task_app: BackgroundServer, task_queue: str
) -> None:
    config = job_config(task_app.url, simllm.url, SMALL_JOB)
    client = temporal_env.client
    async with running_worker(client, WorkerOptions(task_queue=task_queue)):
        handle = await jobs.start_job(client, config, task_queue=task_queue)
        result = await jobs.result(client, handle.id)

    assert result.status == "succeeded"
    assert result.simulated_llm
    assert result.baseline_test_score is not None and result.best_test_score is not None
    assert result.best_test_score > result.baseline_test_score, result.model_dump_json(indent=1)[:2000]
    assert result.lift == result.best_test_score - result.baseline_test_score
    planned = 4 * 3
    assert result.total_trials == planned
    assert len(result.attempted_candidates) >= planned  # every trial is a distinct candidate (+ the baseline)
    assert result.rollout_errors == 0
    assert result.costs.rollout.calls == result.total_rollouts
    assert result.costs.rollout.cost_usd > 0 and result.costs.proposal.cost_usd > 0
    assert result.best.choice.key != "0:0"
    system = next(m for m in result.best.messages if m.role == "system")
    assert system.content == result.best.instructions[0] or result.best.instructions[0] in (
        system.content or ""
    )
    assert any("{query}" in (m.content or "") for m in result.best.messages), "placeholders kept for reuse"
