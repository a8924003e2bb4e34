"""Failing task apps and bad configs: errors are counted and reported, bad input is refused early."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from mipro.serving import BackgroundServer
from mipro.starter import jobs
from mipro.starter.cli import main as cli_main
from mipro.taskapps.banking77.app import create_app as create_banking77
from mipro.taskapps.banking77.data import Banking77Data
from mipro.worker import WorkerOptions, running_worker
from tests.conftest import REPO, SMALL_JOB, TASK_APP_KEY, job_config


async def test_task_app_500s_are_counted_as_errors_and_the_job_completes(
    temporal_env: WorkflowEnvironment,
    simllm: BackgroundServer,
    banking77_data: Banking77Data,
    task_queue: str,
) -> None:
    probe = job_config("http://unused", simllm.url, SMALL_JOB)
    failing = set(probe.mipro.online_pool[::7]) | set(probe.mipro.test_pool[:5])
    app = create_banking77(banking77_data, api_key=TASK_APP_KEY, fail_seeds=failing)
    with BackgroundServer(app) as server:
        overrides = [*SMALL_JOB, "mipro.rollout_retries=1", "mipro.rerun_delays_seconds=[0.2]"]
        config = job_config(server.url, simllm.url, overrides)
        client = temporal_env.client
        async with running_worker(client, WorkerOptions(task_queue=task_queue)):
            handle = await jobs.start_job(client, config, task_queue=task_queue)
            result = await jobs.result(client, handle.id)
        stats = app.state.stats

    assert result.status == "succeeded"
    assert result.rollout_errors > 0
    # Each failing seed was run again once (one re-run round) before it counted as an error; later
    # evaluations try it once. Evaluations side by side each re-run what they saw fail before any seed is
    # known to keep failing: an iteration's (its baseline block, its trials, a validation) or the final
    # test-best and test-baseline.
    side_by_side = config.mipro.num_evaluations_per_iteration + 2
    assert 0 < result.rerun_errors <= side_by_side * len(failing)
    assert result.errors_by_kind == {"http_5xx": result.rollout_errors + result.rerun_errors}
    attempts = result.rollout_errors + result.rerun_errors
    assert stats.failed >= 2 * attempts, "each failed rollout was retried once before giving up"
    for candidate in result.attempted_candidates:
        assert candidate.minibatch_score is None or 0.0 <= candidate.minibatch_score <= 1.0
    assert result.best_test_score is not None


async def test_unreachable_task_app_fails_the_job_fast(
    temporal_env: WorkflowEnvironment, simllm: BackgroundServer, task_queue: str
) -> None:
    config = job_config("http://127.0.0.1:9", simllm.url, SMALL_JOB)
    client = temporal_env.client
    async with running_worker(client, WorkerOptions(task_queue=task_queue)):
        handle = await jobs.start_job(client, config, task_queue=task_queue)
        with pytest.raises(WorkflowFailureError) as info:
            await jobs.result(client, handle.id)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "TaskAppHealthCheckFailed"
    assert "unreachable" in cause.message


def test_invalid_config_is_refused_before_any_workflow_starts(
    temporal_env: WorkflowEnvironment, tmp_path, capsys
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        (REPO / "configs" / "banking77.toml").read_text().replace("batch_size = 24", "batch_size = 0")
    )
    address = temporal_env.client.service_client.config.target_host
    with pytest.raises(SystemExit) as info:
        cli_main(["--address", address, "start", str(bad), "--job-id", "pl_never_started"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "prompt_learning.mipro.batch_size" in err


async def test_refused_config_left_no_workflow(temporal_env: WorkflowEnvironment) -> None:
    with pytest.raises(RPCError):
        await temporal_env.client.get_workflow_handle("pl_never_started").describe()


async def test_wrong_baseline_prompt_fails_with_transform_error(
    temporal_env: WorkflowEnvironment, simllm: BackgroundServer, task_app: BackgroundServer, task_queue: str
) -> None:
    config = job_config(
        task_app.url,
        simllm.url,
        [
            *SMALL_JOB,
            "initial_prompt.messages=["
            '{role="system", pattern="You are a poet."}, {role="user", pattern="{query}"}]',
        ],
    )
    client = temporal_env.client
    async with running_worker(client, WorkerOptions(task_queue=task_queue)):
        handle = await jobs.start_job(client, config, task_queue=task_queue)
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "TransformApplicationError"
    assert "You are a poet." in cause.message


async def test_budget_too_small_for_bootstrap_fails_with_budget_error(
    temporal_env: WorkflowEnvironment, simllm: BackgroundServer, task_app: BackgroundServer, task_queue: str
) -> None:
    config = job_config(task_app.url, simllm.url, [*SMALL_JOB, "termination.max_spend_usd=0.0000001"])
    client = temporal_env.client
    async with running_worker(client, WorkerOptions(task_queue=task_queue)):
        handle = await jobs.start_job(client, config, task_queue=task_queue)
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "BudgetExceededError"
