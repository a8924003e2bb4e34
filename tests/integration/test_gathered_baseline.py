"""A job without `initial_prompt` takes its baseline from the task app (the reference's "gather baseline
messages"): one rollout whose LLM calls pass the interceptor unchanged, on the real stack (banking77 task
app, simulated LLM, dev server); the app's system message becomes the baseline instruction and the job
runs as if the config had said it."""

from __future__ import annotations

import tomllib

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from mipro.config import parse_config
from mipro.job_models import EventsQuery
from mipro.serving import BackgroundServer
from mipro.starter import jobs
from mipro.taskapps.banking77.prompts import SYSTEM_PATTERN
from mipro.types import ChatMessage
from mipro.worker import WorkerOptions, running_worker
from mipro.workflows.baseline_prompt import baseline_system_messages
from mipro.workflows.mipro_workflow import MiproWorkflow
from tests.conftest import REPO, SMALL_JOB, job_config

pytestmark = pytest.mark.integration


def config_without_initial_prompt(app_url: str, llm_url: str):  # noqa: ANN201 - a JobConfig
    body = tomllib.loads((REPO / "configs" / "banking77.toml").read_text())["prompt_learning"]
    del body["initial_prompt"]
    shaped = job_config(app_url, llm_url, SMALL_JOB).model_dump(mode="json", exclude={"initial_prompt"})
    return parse_config({"prompt_learning": {**body, **shaped, "initial_prompt": None}})


async def test_without_an_initial_prompt_the_baseline_is_the_apps_system_message(
    temporal_env: WorkflowEnvironment, simllm: BackgroundServer, task_app: BackgroundServer, task_queue: str
) -> None:
    config = config_without_initial_prompt(task_app.url, simllm.url)
    assert config.initial_prompt is None and config.gathers_baseline
    async with running_worker(temporal_env.client, WorkerOptions(task_queue=task_queue)):
        handle = await jobs.start_job(temporal_env.client, config, task_queue=task_queue)
        result = await handle.result()
        events = await handle.query(MiproWorkflow.events, EventsQuery(limit=5000))

    assert result.status == "succeeded" and result.rollout_errors == 0
    assert result.instructions[0][0] == SYSTEM_PATTERN, "the app's own system message is the baseline"
    [gathered] = [e for e in events if e.type == "mipro.baseline.gathered"]
    assert gathered.data["baseline_instruction"] == SYSTEM_PATTERN
    assert gathered.data["seed"] == config.mipro.bootstrap_train_seeds[0]
    assert result.best_test_score is not None and result.baseline_test_score is not None
    assert result.total_trials > 0 and result.costs.total.calls > 0
    system = [m for m in result.best.messages if m.role == "system"]
    assert system and system[0].content in result.instructions[0], "best.messages from the gathered prompt"
    assert list(result.best.stage_messages.values()) == [result.best.messages]


def test_a_first_call_without_a_system_message_names_the_fix() -> None:
    user_only = [[ChatMessage(role="user", content="where is my card")]]
    for calls in ([], user_only):
        with pytest.raises(ApplicationError, match="set initial_prompt") as failure:
            baseline_system_messages(calls, 7)
        assert failure.value.non_retryable and "seed 7" in str(failure.value)
    assert baseline_system_messages([[ChatMessage(role="system", content="Be exact.")]], 7) == ["Be exact."]
