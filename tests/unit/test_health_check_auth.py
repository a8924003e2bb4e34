"""A task app that refuses the task-app key fails the health check as a TaskAppAuthError naming the env var
to set and whether it was unset or rejected (issue 14 point 4), against real apps on 127.0.0.1: the example
banking77 app (synth's 400 `unauthorised`), a copy of synth-ai's SDK refusal (whose body lists the first 15
characters of the keys: never echoed), synth's auth-tolerant Modal /health (200 `authorized: false`), and a
401. The activity runs in Temporal's ActivityEnvironment with the worker environment given explicitly."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from mipro.activities.resources import WorkerResources
from mipro.activities.task_app import TaskAppActivities
from mipro.activity_models import HealthCheckInput
from mipro.interceptor.registry import Registry
from mipro.serving import BackgroundServer
from mipro.taskapps.banking77.app import create_app as create_banking77
from mipro.taskapps.banking77.data import load_fallback

APP_KEY = "sk_env_the_apps_own_key_0123456789"
WRONG_KEY = "sk_env_someone_elses_key_9876543210"


def presented(request: Request) -> list[str]:
    keys = [request.headers.get("x-api-key", "")]
    keys += request.headers.get("x-api-keys", "").split(",")
    auth = request.headers.get("authorization", "")
    keys.append(auth[7:] if auth.lower().startswith("bearer ") else "")
    return [k.strip() for k in keys if k.strip()]


def synth_sdk_app() -> FastAPI:
    """synth-ai's create_task_app refusal (synth_ai/task/auth.py): 400, code `unauthorised`, and the first
    15 characters of the allowed and presented keys in the body."""
    app = FastAPI()

    @app.get("/health")
    async def health(request: Request) -> Any:
        got = presented(request)
        if APP_KEY in got:
            return {"healthy": True, "auth": {"required": True, "expected_prefix": APP_KEY[:6] + "..."}}
        error = {
            "code": "unauthorised",
            "message": "API key missing or invalid",
            "allowed_first15": [APP_KEY[:15]],
            "got_first15": [k[:15] for k in got],
        }
        return JSONResponse({"detail": {"error": error}}, status_code=400)

    return app


def synth_modal_app() -> FastAPI:
    """synth-ai banking77's Modal entrypoint: /health answers 200 without a valid key, `authorized: false`
    with half the key as `expected_api_key_prefix`; the other routes refuse with 400 `unauthorised`."""
    app = FastAPI()

    @app.get("/health")
    async def health(request: Request) -> Any:
        if APP_KEY in presented(request):
            return {"status": "healthy", "authorized": True}
        prefix = APP_KEY[: len(APP_KEY) // 2]
        return {"status": "healthy", "authorized": False, "expected_api_key_prefix": prefix}

    return app


def bearer_app() -> FastAPI:
    app = FastAPI()

    @app.get("/health")
    async def health(request: Request) -> Any:
        if request.headers.get("authorization") == f"Bearer {APP_KEY}":
            return {"healthy": True}
        return JSONResponse({"error": {"code": "unauthorized", "message": "bad key"}}, status_code=401)

    return app


def keyless_synth_app() -> FastAPI:
    """A synth app started without ENVIRONMENT_API_KEY: 503 missing_environment_api_key (its problem)."""
    app = FastAPI()

    @app.get("/health")
    async def health() -> Any:
        error = {"code": "missing_environment_api_key", "message": "ENVIRONMENT_API_KEY is not configured"}
        return JSONResponse({"detail": {"error": error}}, status_code=503)

    return app


async def check(url: str, environ: Mapping[str, str], key_env: str | None = "ENVIRONMENT_API_KEY") -> Any:
    async with httpx.AsyncClient() as http:
        resources = WorkerResources(
            registry=Registry(),
            interceptor_url="http://127.0.0.1:9",
            http=http,
            rollout_slots=asyncio.Semaphore(1),
            environ=environ,
        )
        inp = HealthCheckInput(task_app_url=url, task_app_api_key_env=key_env)
        return await ActivityEnvironment().run(TaskAppActivities(resources).check_task_app, inp)


async def refused(url: str, environ: Mapping[str, str], key_env: str | None = "ENVIRONMENT_API_KEY") -> str:
    with pytest.raises(ApplicationError) as info:
        await check(url, environ, key_env)
    error = info.value
    assert error.type == "TaskAppAuthError", f"{error.type}: {error.message}"
    assert error.non_retryable
    for secret in (APP_KEY, WRONG_KEY):  # not even the 15-character prefixes synth's body carries
        assert secret[:15] not in error.message and secret[: len(secret) // 2] not in error.message
    return error.message


@pytest.mark.parametrize(
    "make_app", [synth_sdk_app, synth_modal_app, bearer_app], ids=["sdk", "modal", "401"]
)
async def test_a_refused_key_is_an_auth_error_naming_the_env_var(make_app: Any) -> None:
    with BackgroundServer(make_app()) as app:
        unset = await refused(app.url, {})
        rejected = await refused(app.url, {"ENVIRONMENT_API_KEY": WRONG_KEY})
        custom = await refused(
            app.url, {"ENVIRONMENT_API_KEY": APP_KEY, "ACME_TASK_KEY": WRONG_KEY}, "ACME_TASK_KEY"
        )
        info = await check(app.url, {"ENVIRONMENT_API_KEY": APP_KEY})
    assert info.healthy
    assert "on /health" in unset and app.url in unset
    assert "ENVIRONMENT_API_KEY is not set in the worker's environment" in unset, unset
    assert "the key in ENVIRONMENT_API_KEY was rejected" in rejected, rejected
    assert "the key in ACME_TASK_KEY was rejected" in custom and "set ACME_TASK_KEY" in custom, custom


async def test_the_example_app_refuses_a_missing_or_wrong_key_as_auth() -> None:
    """Our example banking77 app (mipro/taskapps/service.py) answers 400 `unauthorised` on /health, as
    synth's do; a config that names no key env var is told to name one."""
    with BackgroundServer(create_banking77(load_fallback(), api_key=APP_KEY)) as app:
        unset = await refused(app.url, {})
        rejected = await refused(app.url, {"ENVIRONMENT_API_KEY": WRONG_KEY})
        unnamed = await refused(app.url, {"ENVIRONMENT_API_KEY": APP_KEY}, key_env=None)
        assert (await check(app.url, {"ENVIRONMENT_API_KEY": APP_KEY})).healthy
    assert "400 unauthorised: API key missing or invalid" in unset, unset
    assert "ENVIRONMENT_API_KEY is not set" in unset and "was rejected" in rejected
    assert 'task_app_api_key_env = "ENVIRONMENT_API_KEY"' in unnamed, unnamed


async def test_an_app_without_its_own_key_is_a_health_check_failure() -> None:
    """synth's 503 missing_environment_api_key is the app's misconfiguration, not our key: a health-check
    failure that says how to start the app."""
    with BackgroundServer(keyless_synth_app()) as app, pytest.raises(ApplicationError) as info:
        await check(app.url, {"ENVIRONMENT_API_KEY": APP_KEY})
    assert info.value.type == "TaskAppHealthCheckFailed"
    assert "missing_environment_api_key" in info.value.message
    assert "start it with ENVIRONMENT_API_KEY set" in info.value.message


async def test_a_refused_rollout_names_the_env_var_and_echoes_no_key() -> None:
    """A key refused on /rollout (say, rotated mid-job) fails the evaluation the same way."""
    from tests.unit.test_task_app_activities import evaluate_input

    app = FastAPI()

    @app.post("/rollout")
    async def rollout() -> Any:
        error = {
            "code": "unauthorised",
            "message": "API key missing or invalid",
            "allowed_first15": [APP_KEY[:15]],
        }
        return JSONResponse({"detail": {"error": error}}, status_code=400)

    with BackgroundServer(app) as server:
        inp = evaluate_input(server.url, [1])
        inp.target.task_app_api_key_env = "ENVIRONMENT_API_KEY"
        async with httpx.AsyncClient() as http:
            resources = WorkerResources(
                registry=Registry(),
                interceptor_url="http://127.0.0.1:9",
                http=http,
                rollout_slots=asyncio.Semaphore(1),
                environ={"ENVIRONMENT_API_KEY": WRONG_KEY},
            )
            with pytest.raises(ApplicationError) as info:
                await ActivityEnvironment().run(TaskAppActivities(resources).evaluate_candidate, inp)
    assert info.value.type == "TaskAppAuthError" and info.value.non_retryable
    assert "on /rollout (400 unauthorised: API key missing or invalid)" in info.value.message
    assert "the key in ENVIRONMENT_API_KEY was rejected" in info.value.message
    assert APP_KEY[:15] not in info.value.message and WRONG_KEY[:15] not in info.value.message
