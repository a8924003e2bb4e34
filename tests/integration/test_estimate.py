"""The pre-run estimate brackets what real jobs do, and `--dry-run` starts nothing.

The estimate measures the rendered prompt with one baseline rollout (starter.probe) against the real task
app and simulated LLM, then must bracket the job's rollouts, meta-model calls, tokens and cost: on the
shipped config (the session's reference job) and on a config with large demo sets and long instructions.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from mipro.config import JobConfig
from mipro.estimate import JobEstimate, estimate_job, pattern_measurement
from mipro.job_models import OptimizationResult
from mipro.serving import BackgroundServer
from mipro.starter import jobs
from mipro.starter.cli import main as cli_main
from mipro.starter.probe import measure_baseline_prompt
from mipro.worker import WorkerOptions, running_worker
from tests.conftest import REPO, SMALL_JOB, job_config

RULES = (
    "Read the customer's message carefully and decide what the customer wants the bank to do. Card "
    "problems (arrival, activation, a declined payment, a lost or stolen card) have their own intents; so "
    "do top-ups, transfers, exchange rates, cash withdrawals, fees and identity verification. When a "
    "message mentions several topics, pick the intent of the action the customer asks for, not the "
    "background they give. A pending payment is not a declined one; a refund request is not a dispute. "
)
LONG_INSTRUCTIONS = [
    "You classify banking customer queries into exactly one intent. " + RULES * 6,
    "You are a meticulous banking support triage assistant. " + RULES * 9 + "Answer with the tool call only.",
]


def demos_and_long_instructions(task_app_url: str, llm_url: str) -> JobConfig:
    """Demo sets of up to 8, two instructions of 3-4.5 k characters, and a later proposal round (with its
    history), on small pools. No USD budget: the workflow's per-rollout estimate scales the baseline by
    demos only, so the budget guard refuses a long-instruction candidate and stops the job early (a
    workflow issue, reported); here the job must run its planned trials."""
    m = job_config("http://unused", "http://unused").mipro
    config = job_config(
        task_app_url,
        llm_url,
        [
            f"mipro.bootstrap_train_seeds={m.bootstrap_train_seeds[:24]}",
            f"mipro.online_pool={m.online_pool[:32]}",
            f"mipro.val_seeds={m.val_seeds[:16]}",
            f"mipro.test_pool={m.test_pool[:16]}",
            "mipro.batch_size=8",
            "mipro.num_iterations=4",
            "mipro.num_evaluations_per_iteration=3",
            "mipro.max_demo_set_size=8",
            "mipro.max_demo_sets=6",
            "mipro.few_shot_score_threshold=0.5",
            "mipro.max_instructions=5",
            "mipro.generate_at_iterations=[2]",
            f"mipro.instruction_candidates={json.dumps(LONG_INSTRUCTIONS)}",
        ],
    )
    return config.model_copy(
        update={"termination": config.termination.model_copy(update={"max_spend_usd": None})}
    )


def assert_brackets(estimate: JobEstimate, result: OptimizationResult) -> None:
    real = {
        "rollouts": result.total_rollouts,
        "policy calls": result.costs.rollout.calls,
        "meta calls": result.costs.proposal.calls,
        "tokens": result.costs.total.total_tokens,
        "cost": result.costs.total.cost_usd,
    }
    ranges = {
        "rollouts": estimate.rollouts,
        "policy calls": estimate.policy_calls,
        "meta calls": estimate.meta_calls,
        "tokens": estimate.tokens,
        "cost": estimate.cost_usd,
    }
    outside = {
        k: (ranges[k].low, v, ranges[k].high)
        for k, v in real.items()
        if not ranges[k].low <= v <= ranges[k].high
    }
    assert not outside, f"(low, real, high) outside the estimate: {outside}"


async def test_estimate_brackets_the_shipped_config(
    simllm: BackgroundServer, task_app: BackgroundServer, reference_result: OptimizationResult
) -> None:
    config = job_config(task_app.url, simllm.url, SMALL_JOB)
    measured = await measure_baseline_prompt(config)
    patterns = pattern_measurement(config)
    # The rendered prompt carries the 77 intents the patterns only name as {available_intents}.
    assert measured.measured and measured.calls == 1 and measured.prompt_tokens > 5 * patterns.prompt_tokens
    assert measured.data_source and measured.data_source.startswith("dir:")
    assert_brackets(estimate_job(config, measured), reference_result)


async def test_estimate_brackets_a_job_with_demos_and_long_instructions(
    temporal_env: WorkflowEnvironment, simllm: BackgroundServer, task_app: BackgroundServer, task_queue: str
) -> None:
    config = demos_and_long_instructions(task_app.url, simllm.url)
    estimate = estimate_job(config, await measure_baseline_prompt(config))
    async with running_worker(temporal_env.client, WorkerOptions(task_queue=task_queue)):
        handle = await jobs.start_job(temporal_env.client, config, task_queue=task_queue)
        result = await handle.result()
    long_ids = {i for i, text in enumerate(result.instructions[0]) if len(text) > 2500}
    tried = result.attempted_candidates
    assert result.stop_reason is None and result.total_trials == 12
    assert any(c.choice.instruction[0] in long_ids for c in tried), "a long instruction was evaluated"
    assert max(sum(c.demo_counts) for c in tried) >= 5, "a large demo set was evaluated"
    assert_brackets(estimate, result)


async def test_dry_run_measures_one_baseline_rollout_and_starts_nothing(
    temporal_env: WorkflowEnvironment,
    simllm: BackgroundServer,
    task_app: BackgroundServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    address = temporal_env.client.service_client.config.target_host
    served = httpx.get(f"{task_app.url}/stats").json()["started"]
    with pytest.raises(SystemExit) as info:
        await asyncio.to_thread(
            cli_main,
            [
                "--address",
                address,
                "start",
                str(REPO / "configs" / "banking77.toml"),
                "--set",
                f'task_app_url="{task_app.url}"',
                "--set",
                f'policy.inference_url="{simllm.url}/v1"',
                "--dry-run",
                "--job-id",
                "pl_dry_run_only",
            ],
        )
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "rollouts" in out and "cost (USD)" in out
    assert f"prompt sizes from one baseline rollout of seed 4140 at {task_app.url}" in out
    assert "task app data: dir:" in out and "warning" not in out
    assert httpx.get(f"{task_app.url}/stats").json()["started"] == served + 1, "exactly one rollout"
    with pytest.raises(Exception, match="not found"):
        await temporal_env.client.get_workflow_handle("pl_dry_run_only").describe()
