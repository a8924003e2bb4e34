"""proxy_models end to end (issue 9): the trials' LLM calls reach the proxy model's server through the
interceptor, the validations and the test evaluation the real one's; the result compares their rankings."""

from __future__ import annotations

import json
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from mipro.serving import BackgroundServer
from mipro.simllm.app import create_app as create_simllm
from mipro.simllm.settings import SimLLMSettings
from mipro.starter import jobs
from mipro.worker import WorkerOptions, running_worker
from tests.conftest import SMALL_JOB, job_config

pytestmark = pytest.mark.integration


class CallCounter:
    """ASGI middleware counting chat completions by the model they ask for."""

    def __init__(self, app: Any) -> None:
        self.app, self.models = app, []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/chat/completions"):
            body = bytearray()

            async def recv() -> dict[str, Any]:
                message = await receive()
                body.extend(message.get("body", b""))
                return message

            await self.app(scope, recv, send)
            self.models.append(json.loads(body).get("model"))
            return
        await self.app(scope, receive, send)


async def test_the_trials_run_on_the_proxy_and_the_decisions_on_the_real_model(
    temporal_env: WorkflowEnvironment, task_app: BackgroundServer, task_queue: str
) -> None:
    real, proxy = CallCounter(create_simllm(SimLLMSettings())), CallCounter(create_simllm(SimLLMSettings()))
    with BackgroundServer(real) as real_llm, BackgroundServer(proxy) as proxy_llm:
        overrides = [
            *SMALL_JOB,
            'proxy_models.model="sim-proxy"',
            f'proxy_models.inference_url="{proxy_llm.url}/v1"',
            "pricing.sim-proxy={input_per_mtok=0.01, output_per_mtok=0.01}",
        ]
        config = job_config(task_app.url, real_llm.url, overrides)
        async with running_worker(temporal_env.client, WorkerOptions(task_queue=task_queue)):
            handle = await jobs.start_job(temporal_env.client, config, task_queue=task_queue)
            result = await handle.result()

    assert result.status == "succeeded" and result.proxy_model == "sim-proxy"
    assert set(proxy.models) == {"sim-proxy"} and len(proxy.models) >= result.total_trials
    policy_calls = [m for m in real.models if m == config.policy.model]
    m = config.mipro
    assert len(policy_calls) >= len(m.bootstrap_train_seeds) + len(m.val_seeds) + len(m.test_pool)
    assert result.proxy_candidates_compared >= 2
