"""The pre-run estimate brackets what a real job does, and `--dry-run` starts nothing."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.testing import WorkflowEnvironment

from mipro.estimate import estimate_job
from mipro.job_models import OptimizationResult
from mipro.serving import BackgroundServer
from starter.cli import main as cli_main
from tests.conftest import REPO, SMALL_JOB, job_config


def test_estimate_brackets_the_reference_job(
    simllm: BackgroundServer, task_app: BackgroundServer, reference_result: OptimizationResult
) -> None:
    config = job_config(task_app.url, simllm.url, SMALL_JOB)
    estimate = estimate_job(config)
    assert estimate.rollouts.low <= reference_result.total_rollouts <= estimate.rollouts.high
    assert estimate.meta_calls.low <= reference_result.costs.proposal.calls <= estimate.meta_calls.high
    baseline_tokens = (
        1300  # the rendered banking77 prompt with its 77 intents, as the simulated LLM counts it
    )
    rendered = estimate_job(config, prompt_tokens=baseline_tokens)
    assert rendered.cost_usd.low <= reference_result.costs.total.cost_usd <= rendered.cost_usd.high


async def test_dry_run_starts_nothing(
    temporal_env: WorkflowEnvironment, capsys: pytest.CaptureFixture[str]
) -> None:
    address = temporal_env.client.service_client.config.target_host
    with pytest.raises(SystemExit) as info:
        await asyncio.to_thread(
            cli_main,
            [
                "--address",
                address,
                "start",
                str(REPO / "configs" / "banking77.toml"),
                "--dry-run",
                "--job-id",
                "pl_dry_run_only",
            ],
        )
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "rollouts" in out and "cost (USD)" in out
    with pytest.raises(Exception, match="not found"):
        await temporal_env.client.get_workflow_handle("pl_dry_run_only").describe()
