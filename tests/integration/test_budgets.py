"""Budgets and termination conditions: the job stops on time, keeps the best found, and never overspends."""

from __future__ import annotations

import pytest
from temporalio.testing import WorkflowEnvironment

from mipro.job_models import OptimizationResult
from mipro.serving import BackgroundServer
from mipro.starter import jobs
from mipro.worker import WorkerOptions, running_worker
from tests.conftest import SMALL_JOB, job_config


async def run_job(
    env: WorkflowEnvironment,
    simllm: BackgroundServer,
    task_app: BackgroundServer,
    task_queue: str,
    overrides: list[str],
) -> OptimizationResult:
    config = job_config(task_app.url, simllm.url, [*SMALL_JOB, *overrides])
    async with running_worker(env.client, WorkerOptions(task_queue=task_queue)):
        handle = await jobs.start_job(env.client, config, task_queue=task_queue)
        return await handle.result()


@pytest.mark.parametrize(
    ("budget", "fraction", "spent"),
    [
        ("max_spend_usd", 0.5, lambda r: r.costs.total.cost_usd),
        ("max_rollout_spend_usd", 0.5, lambda r: r.costs.rollout.cost_usd),
        ("max_token_limit", 0.5, lambda r: r.costs.total.total_tokens),
    ],
)
async def test_budget_stops_the_job_without_overspending(
    temporal_env: WorkflowEnvironment,
    simllm: BackgroundServer,
    task_app: BackgroundServer,
    task_queue: str,
    reference_result: OptimizationResult,
    budget: str,
    fraction: float,
    spent,  # noqa: ANN001
) -> None:
    full = spent(reference_result)
    limit = full * fraction if budget != "max_token_limit" else int(full * fraction)
    result = await run_job(temporal_env, simllm, task_app, task_queue, [f"termination.{budget}={limit}"])

    assert result.status == "succeeded"
    assert result.stop_reason == budget
    assert spent(result) <= limit, f"overspent: {spent(result)} > {limit}"
    assert result.total_trials < reference_result.total_trials
    assert result.best_test_score is not None, "enough was kept back for the final test evaluation"
    assert result.best_validation_score is not None


async def test_proposal_budget_limits_meta_model_spend(
    temporal_env: WorkflowEnvironment,
    simllm: BackgroundServer,
    task_app: BackgroundServer,
    task_queue: str,
    reference_result: OptimizationResult,
) -> None:
    limit = reference_result.costs.proposal.cost_usd * 0.5
    result = await run_job(
        temporal_env, simllm, task_app, task_queue, [f"termination.max_proposal_spend_usd={limit}"]
    )
    assert result.costs.proposal.cost_usd <= limit
    assert 1 <= len(result.instructions[0]) < len(reference_result.instructions[0])
    assert result.status == "succeeded"


async def test_trial_cap_is_exact(
    temporal_env: WorkflowEnvironment, simllm: BackgroundServer, task_app: BackgroundServer, task_queue: str
) -> None:
    result = await run_job(temporal_env, simllm, task_app, task_queue, ["termination.max_trials_allowed=5"])
    assert result.total_trials == 5 and result.stop_reason == "max_trials_allowed"
    assert result.best_test_score is not None
