"""A job against a task app that needs its key, run by a worker whose environment lacks it or holds a wrong
one: the job fails at the health check as a TaskAppAuthError naming the env var (issue 14 point 4), the
health check is not retried, no rollout starts, and `mipro status` says so in one line. Real dev server,
worker, simulated LLM and the example banking77 app on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from fastapi import Request
from temporalio.testing import WorkflowEnvironment

from mipro.serving import BackgroundServer
from mipro.starter import jobs
from mipro.starter.cli import main as cli_main
from mipro.taskapps.banking77.app import create_app as create_banking77
from mipro.taskapps.banking77.data import Banking77Data
from mipro.worker import WorkerOptions, running_worker
from tests.conftest import SMALL_JOB, TASK_APP_KEY, job_config

KEY_ENV = "MIPRO_TEST_AUTH_KEY"


@pytest.mark.parametrize("worker_key", [None, "sk_env_not_the_apps_key"], ids=["unset", "wrong"])
async def test_a_refused_key_fails_the_job_as_an_auth_error(
    temporal_env: WorkflowEnvironment,
    simllm: BackgroundServer,
    banking77_data: Banking77Data,
    task_queue: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    worker_key: str | None,
) -> None:
    if worker_key is None:
        monkeypatch.delenv(KEY_ENV, raising=False)
    else:
        monkeypatch.setenv(KEY_ENV, worker_key)  # the in-process worker reads its environment by name
    app = create_banking77(banking77_data, api_key=TASK_APP_KEY)
    requests: Counter[str] = Counter()

    @app.middleware("http")
    async def count(request: Request, call_next):  # noqa: ANN001, ANN202
        requests[request.url.path] += 1
        return await call_next(request)

    client = temporal_env.client
    with BackgroundServer(app) as server:
        config = job_config(server.url, simllm.url, [*SMALL_JOB, f'task_app_api_key_env="{KEY_ENV}"'])
        async with running_worker(client, WorkerOptions(task_queue=task_queue)):
            handle = await jobs.start_job(client, config, task_queue=task_queue)
            failure = await jobs.failure(client, handle.id)
            with pytest.raises(SystemExit) as exited:
                address = client.service_client.config.target_host
                await asyncio.to_thread(cli_main, ["--address", address, "status", handle.id])
    assert failure is not None and failure.type == "TaskAppAuthError", failure
    fix = f"{KEY_ENV} is not set" if worker_key is None else f"the key in {KEY_ENV} was rejected"
    assert fix in failure.message and "/health" in failure.message, failure.message
    assert requests["/health"] == 1, f"the health check was retried: {dict(requests)}"
    assert requests["/rollout"] == 0 and app.state.stats.started == 0
    status = [line for line in capsys.readouterr().out.splitlines() if line.startswith("failed")]
    assert exited.value.code == 1 and len(status) == 1, status
    assert "TaskAppAuthError: " in status[0] and status[0].count("TaskAppAuthError") == 1, status
