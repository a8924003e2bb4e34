"""Budgets hold across a worker killed mid-evaluation: the retried attempt resumes from the heartbeat (no
finished seed runs again), its allowance is what the lost attempt left, and the lost attempt's spend on
unfinished seeds is counted. The spend is checked where it happens: at the LLM server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from typing import Any

from temporalio.testing import WorkflowEnvironment

from mipro.budget import price_usd
from mipro.job_models import EventsQuery
from mipro.serving import BackgroundServer
from mipro.simllm.app import create_app as create_simllm
from mipro.simllm.settings import SimLLMSettings
from mipro.starter import jobs
from mipro.taskapps.banking77.app import create_app as create_banking77
from mipro.taskapps.banking77.data import Banking77Data
from mipro.worker import WorkerOptions, running_worker
from mipro.workflows.mipro_workflow import MiproWorkflow
from tests.conftest import SMALL_JOB, TASK_APP_KEY, job_config
from tests.integration.test_durability import start_worker_process


class Metered:
    """ASGI wrapper that records each chat completion's model and usage."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.usage: list[tuple[str, int, int]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        request = json.loads(b"".join(chunks) or b"{}")
        sent: list[bytes] = []

        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                sent.append(message.get("body", b""))
            await send(message)

        await self.app(scope, replay, capture)
        if scope["path"].endswith("/chat/completions"):
            with_usage = json.loads(b"".join(sent) or b"{}").get("usage") or {}
            self.usage.append(
                (request["model"], with_usage.get("prompt_tokens", 0), with_usage.get("completion_tokens", 0))
            )


async def pending_evaluation(env: WorkflowEnvironment, job_id: str) -> tuple[str, list[int]]:
    """(label, seeds finished) of an evaluation in flight, from the last heartbeat the server holds."""
    desc = await env.client.get_workflow_handle(job_id).describe()
    assert not jobs.is_closed(desc.status), f"the job ended ({desc.status}) before the kill point"
    for pending in desc.raw_description.pending_activities:
        if pending.activity_type.name == "evaluate_candidate" and pending.heartbeat_details.payloads:
            details = json.loads(pending.heartbeat_details.payloads[0].data)
            return details["label"], [o["seed"] for o in details["finished"]]
    return "", []


async def test_a_worker_killed_mid_evaluation_overspends_nothing_and_reruns_no_finished_seed(
    temporal_env: WorkflowEnvironment, banking77_data: Banking77Data, task_queue: str
) -> None:
    llm = Metered(create_simllm(SimLLMSettings(latency_ms=400)))  # bootstrap > 2 s heartbeat
    app = create_banking77(banking77_data, api_key=TASK_APP_KEY)
    with BackgroundServer(llm) as llm_server, BackgroundServer(app) as app_server:
        cap = 0.04  # about half of what this job spends unbounded
        config = job_config(
            app_server.url,
            llm_server.url,
            [*SMALL_JOB, "mipro.max_concurrent=8", f"termination.max_spend_usd={cap}"],
        )
        address = temporal_env.client.service_client.config.target_host
        doomed = await start_worker_process(address, task_queue)
        try:
            handle = await jobs.start_job(temporal_env.client, config, task_queue=task_queue)
            label, finished = "", []
            while not (label == "bootstrap" and len(finished) >= 2):  # its seeds run in no other evaluation
                label, finished = await pending_evaluation(temporal_env, handle.id)
                await asyncio.sleep(0.02)
            os.kill(doomed.pid, signal.SIGKILL)
            doomed.wait()
            async with running_worker(temporal_env.client, WorkerOptions(task_queue=task_queue)):
                result = await handle.result()
                events = await handle.query(MiproWorkflow.events, EventsQuery(limit=5000))
        finally:
            if doomed.poll() is None:
                doomed.kill()

    real = sum(price_usd(config.pricing, model, p, c) for model, p, c in llm.usage)
    assert real <= cap, f"the LLM served ${real:.5f} against a cap of ${cap}"
    assert result.costs.total.cost_usd <= cap
    assert result.stop_reason == "max_spend_usd"
    resumed = [e for e in events if e.type == "mipro.evaluation.resumed"]
    labels = [e.data["label"] for e in resumed]  # the evaluations in flight at the kill (bootstrap, ...)
    assert label in labels and len(labels) == len(set(labels)), "each lost attempt's spend counted once"
    assert all(e.data["lost_usd"] > 0 for e in resumed)
    attempts = app.state.stats.attempts_by_seed
    # Seeds done after the last heartbeat that reached the server (at most ~2 s of work) may run again;
    # none that the heartbeat recorded may.
    rerun = [seed for seed in finished if attempts.get(seed, 0) > 1]
    assert rerun == [], f"seeds the heartbeat recorded as finished ran again: {rerun}"
    assert result.errors_by_kind == {}, "no rollout failed, so only the lost attempt's seeds ran twice"
