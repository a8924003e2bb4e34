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
