"""The task-app activities against real task apps on 127.0.0.1 (run in Temporal's ActivityEnvironment):
retries honour the task app's Retry-After, and seeds outside its advertised ranges fail the health check,
named, before any rollout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from mipro.activities.resources import WorkerResources
from mipro.activities.task_app import TaskAppActivities
from mipro.activity_models import EvaluateInput, HealthCheckInput, RolloutTarget
from mipro.config import PolicyConfig
from mipro.interceptor.registry import Registry
from mipro.retry_after import MAX_RETRY_AFTER_SECONDS, retry_after_seconds
from mipro.serving import BackgroundServer
from mipro.taskapps.banking77.app import create_app as create_banking77
from mipro.taskapps.banking77.data import load_fallback
from mipro.taskapps.clinc150 import create_app as create_clinc150
from mipro.taskapps.clinc150 import load_clinc150
from mipro.taskapps.clinc150.data import SHARED_DIR
from mipro.types import CompiledCandidate, StagePrompt, StageSpec

REWARD = {"metrics": {"outcome_score": 1.0, "mean_return": 1.0}}


class ThrottlingApp:
    """A task app whose first /rollout request per seed is refused with `status` (and a Retry-After when
    `retry_after` is set); the next one succeeds. It records when each request arrived."""

    def __init__(self, status: int, retry_after: str | None) -> None:
        self.status, self.retry_after = status, retry_after
        self.arrivals: dict[int, list[float]] = {}

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/rollout")
        async def rollout(request: Request) -> Any:
            seed = (await request.json())["env"]["seed"]
            arrivals = self.arrivals.setdefault(seed, [])
            arrivals.append(time.monotonic())
            if len(arrivals) == 1:
                headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
                return JSONResponse({"error": "slow down"}, status_code=self.status, headers=headers)
            return REWARD

        return app


@pytest_asyncio.fixture
async def activities() -> AsyncIterator[TaskAppActivities]:
    async with httpx.AsyncClient() as http:
        resources = WorkerResources(
            registry=Registry(),
            interceptor_url="http://127.0.0.1:9",  # the throttling app never calls an LLM
            http=http,
            rollout_slots=asyncio.Semaphore(8),
            environ={},
        )
        yield TaskAppActivities(resources)


def evaluate_input(url: str, seeds: list[int]) -> EvaluateInput:
    stage = StageSpec(baseline_instruction="Classify.")
    target = RolloutTarget(
        task_app_url=url,
        task_app_api_key_env=None,
        env_name="throttled",
        env_config={},
        policy=PolicyConfig(model="m", inference_url="http://127.0.0.1:9/v1"),
        policy_price=None,
        stages=[stage],
        prompt_template={},
        rollout_timeout_seconds=10,
        rollout_retries=2,
    )
    candidate = CompiledCandidate(stages=[StagePrompt(stage_id="default", instruction="Classify.")])
    return EvaluateInput(
        job_id="pl_test", label="trial-0000", target=target, candidate=candidate, seeds=seeds, concurrency=4
    )


@pytest.mark.parametrize(("status", "kind"), [(429, "rate_limited"), (503, "http_5xx")])
async def test_retries_wait_for_the_task_apps_retry_after(
    activities: TaskAppActivities, status: int, kind: str
) -> None:
    throttling = ThrottlingApp(status, retry_after="1.5")  # the default first backoff is 0.25 s
    with BackgroundServer(throttling.app()) as server:
        out = await ActivityEnvironment().run(
            activities.evaluate_candidate, evaluate_input(server.url, [1, 2])
        )
    assert [(o.score, o.attempts, o.error) for o in out.outcomes] == [(1.0, 2, None), (1.0, 2, None)]
    for first, second in throttling.arrivals.values():
        assert second - first >= 1.5, f"retried {second - first:.2f}s after a Retry-After of 1.5 s ({kind})"


async def test_a_429_without_retry_after_is_retried_with_backoff(activities: TaskAppActivities) -> None:
    throttling = ThrottlingApp(429, retry_after=None)
    with BackgroundServer(throttling.app()) as server:
        out = await ActivityEnvironment().run(activities.evaluate_candidate, evaluate_input(server.url, [5]))
    assert (out.outcomes[0].score, out.outcomes[0].attempts) == (1.0, 2)
    first, second = throttling.arrivals[5]
    assert second - first >= 0.25


def test_retry_after_values() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("2") == 2.0 and retry_after_seconds(" 0.5 ") == 0.5
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=7), usegmt=True), now=now) == 7.0
    assert retry_after_seconds(format_datetime(now - timedelta(seconds=7), usegmt=True), now=now) == 0.0
    assert retry_after_seconds("3600") == MAX_RETRY_AFTER_SECONDS
    for unreadable in (None, "", "soon", "-1", "nan", "inf"):
        assert retry_after_seconds(unreadable) is None, unreadable


POOLS = {"bootstrap_train_seeds": [0, 1, 2], "online_pool": [3, 4], "val_seeds": [5], "test_pool": [6, 7]}


async def test_seeds_outside_the_advertised_range_fail_the_health_check(
    activities: TaskAppActivities,
) -> None:
    data = load_clinc150(SHARED_DIR)
    pools = {**POOLS, "online_pool": [3, 15000, 15001], "test_pool": [6, -2]}
    with BackgroundServer(create_clinc150(data)) as server:
        ok = HealthCheckInput(task_app_url=server.url, seed_pools=POOLS, split="train")
        info = await ActivityEnvironment().run(activities.check_task_app, ok)
        assert info.healthy and info.task_info is not None
        val_split = HealthCheckInput(
            task_app_url=server.url, seed_pools={"val_seeds": [2999, 3000]}, split="val"
        )
        with pytest.raises(ApplicationError) as refused_val:
            await ActivityEnvironment().run(activities.check_task_app, val_split)
        bad = HealthCheckInput(task_app_url=server.url, seed_pools=pools, split="train")
        with pytest.raises(ApplicationError) as refused:
            await ActivityEnvironment().run(activities.check_task_app, bad)
    error = refused.value
    assert error.type == "TaskAppHealthCheckFailed" and error.non_retryable
    assert "online_pool: 15000, 15001" in error.message and "test_pool: -2" in error.message, error.message
    assert "0-14999" in error.message and "bootstrap_train_seeds" not in error.message
    assert "val_seeds: 3000" in refused_val.value.message and "0-2999" in refused_val.value.message


async def test_an_app_that_advertises_no_range_takes_any_seed(activities: TaskAppActivities) -> None:
    with BackgroundServer(create_banking77(load_fallback())) as server:  # seed % len(split), like synth's
        check = HealthCheckInput(task_app_url=server.url, seed_pools={"test_pool": [10**6]}, split="train")
        info = await ActivityEnvironment().run(activities.check_task_app, check)
    assert info.healthy


async def test_each_pool_is_checked_against_its_own_splits_range(activities: TaskAppActivities) -> None:
    """Per-pool env config: the test pool on split "test" (4,500 rows) is checked against 0-4499, the
    online pool on the job's split "train" against 0-14999, the validation pool on "val" against 0-2999."""
    data = load_clinc150(SHARED_DIR)
    pools = {"online_pool": [0, 12000], "val_seeds": [2999], "test_pool": [4499, 4500, 12000]}
    splits: dict[str, str | None] = {"val_seeds": "val", "test_pool": "test"}
    with BackgroundServer(create_clinc150(data)) as server:
        ok = HealthCheckInput(
            task_app_url=server.url,
            seed_pools={**pools, "test_pool": [0, 4499]},
            split="train",
            pool_splits=splits,
        )
        assert (await ActivityEnvironment().run(activities.check_task_app, ok)).healthy
        bad = HealthCheckInput(task_app_url=server.url, seed_pools=pools, split="train", pool_splits=splits)
        with pytest.raises(ApplicationError) as refused:
            await ActivityEnvironment().run(activities.check_task_app, bad)
        # a pool named with None has no split in its env config: the app's default (train) applies
        default = HealthCheckInput(
            task_app_url=server.url,
            seed_pools={"test_pool": [12000]},
            split="val",
            pool_splits={"test_pool": None},
        )
        assert (await ActivityEnvironment().run(activities.check_task_app, default)).healthy
    error = refused.value
    assert error.type == "TaskAppHealthCheckFailed" and error.non_retryable
    assert "test_pool: 4500, 12000 (split test: 0-4499)" in error.message, error.message
    assert "online_pool" not in error.message and "val_seeds" not in error.message


async def test_the_health_check_reports_the_apps_data_source(activities: TaskAppActivities) -> None:
    """From /health's data_source (the example apps), else /task_info: synth's banking77 names its Hugging
    Face dataset (`hf_dataset`) in the taskset and has no data_source in /health."""
    synth_like = FastAPI()

    @synth_like.get("/health")
    async def health() -> dict[str, Any]:
        return {"healthy": True, "auth": {"required": False}}

    @synth_like.get("/task_info")
    async def task_info() -> dict[str, Any]:
        return {"taskset": {"id": "banking77", "splits": ["train", "test"], "hf_dataset": "banking77"}}

    with (
        BackgroundServer(create_banking77(load_fallback())) as fallback,
        BackgroundServer(synth_like) as synth,
    ):
        ours = await ActivityEnvironment().run(
            activities.check_task_app, HealthCheckInput(task_app_url=fallback.url)
        )
        theirs = await ActivityEnvironment().run(
            activities.check_task_app, HealthCheckInput(task_app_url=synth.url)
        )
    assert ours.data_source is not None and ours.data_source.startswith("fallback: "), ours.data_source
    assert theirs.data_source == "hf_dataset: banking77"


def models_app(models: list[dict[str, Any]], status: int = 200) -> FastAPI:
    """An OpenAI-compatible /v1/models answering `models` (a real provider's shape), no simulation header."""
    app = FastAPI()

    @app.get("/v1/models")
    async def listing() -> Any:
        return JSONResponse({"object": "list", "data": models}, status_code=status)

    return app


async def test_the_simulated_llm_is_recognised_by_its_models_answer(activities: TaskAppActivities) -> None:
    """The real simulated LLM says so (its header, owned_by "simulated"); a provider listing its own models
    is not it; no answer, a 404 or an unreadable list leave it unknown (None) and never fail the check."""
    from mipro.simllm.app import create_app as create_simllm
    from mipro.simllm.settings import SimLLMSettings

    gpt = [{"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "openai"}]
    sim_ids = [{"id": "simulated/sim-small", "object": "model", "owned_by": "someone"}]
    with (
        BackgroundServer(create_banking77(load_fallback())) as app,
        BackgroundServer(create_simllm(SimLLMSettings())) as sim,
        BackgroundServer(models_app(gpt)) as provider,
        BackgroundServer(models_app(sim_ids)) as sim_named,
        BackgroundServer(models_app(gpt, status=404)) as missing,
    ):

        async def probe(llm: str | None) -> bool | None:
            check = HealthCheckInput(task_app_url=app.url, policy_inference_url=llm)
            info = await ActivityEnvironment().run(activities.check_task_app, check)
            assert info.healthy
            return info.simulated_llm

        assert await probe(f"{sim.url}/v1") is True
        assert await probe(f"{sim.url}/v1/chat/completions") is True
        assert await probe(f"{sim_named.url}/v1") is True  # named simulated/..., no header
        assert await probe(f"{provider.url}/v1/") is False
        assert await probe(f"{missing.url}/v1") is None
        assert await probe("http://127.0.0.1:9/v1") is None  # nothing listens on the discard port
        assert await probe(None) is None
