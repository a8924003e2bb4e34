"""A two-stage pipeline job on the real dev server, with the simulated LLM and real HTTP: the example
banking77 app routes each query to a domain (stage `router`) and classifies its intent within the domain
(stage `classifier`); both stages call the LLM through the interceptor, which maps each call to its stage
by the stage segment in its URL. The config declares the stages as `mipro.modules`.

Every stage's last call of a good rollout yields a demo (activities/task_app.py `_stage_examples`), so the
router's proposals are grounded in its own calls, as the classifier's in its own."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from mipro.config import JobConfig, load_config_file
from mipro.job_models import Event, EventsQuery, OptimizationResult
from mipro.serving import BackgroundServer
from mipro.simllm.app import create_app as create_simllm
from mipro.simllm.settings import SimLLMSettings
from mipro.starter import jobs
from mipro.starter.render import best_prompt_panels
from mipro.taskapps.banking77.data import Banking77Data
from mipro.taskapps.banking77_pipeline import CLASSIFIER, DOMAINS, ROUTER, create_app
from mipro.taskapps.banking77_pipeline.prompts import CLASSIFIER_SYSTEM, ROUTER_SYSTEM
from mipro.worker import WorkerOptions, running_worker
from mipro.workflows.mipro_workflow import MiproWorkflow
from tests.conftest import REPO, TASK_APP_KEY

# Small enough for CI on 2 cores (~90 s): 40 bootstrap, 4 x 3 trials of 16 seeds, 60 validation, 150 test.
SMALL = [
    "mipro.num_iterations=4",
    "mipro.num_evaluations_per_iteration=3",
    "mipro.batch_size=16",
    "mipro.max_parallel_trials=3",
]
RULE = re.compile(
    r"^- If the query mentions .*, the (?:intent|category|label) is [`'\"]?([\w?]+)", re.MULTILINE
)

Job = tuple[JobConfig, OptimizationResult, list[Event]]


@pytest.fixture(scope="module")
def pipeline_app(banking77_data: Banking77Data) -> Iterator[BackgroundServer]:
    with BackgroundServer(create_app(banking77_data, api_key=TASK_APP_KEY)) as server:
        yield server


class ModelLog:
    """An ASGI wrapper around the simulated LLM recording each chat request's model and last user turn."""

    def __init__(self, app: Any) -> None:
        self.app, self.calls = app, []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/chat/completions"):
            return await self.app(scope, receive, send)
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = json.loads(b"".join(chunks))
        users = [m.get("content") or "" for m in body["messages"] if m["role"] == "user"]
        self.calls.append((body.get("model"), users[-1] if users else ""))
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)


@pytest.fixture(scope="module")
def model_log() -> Iterator[tuple[ModelLog, BackgroundServer]]:
    log = ModelLog(create_simllm(SimLLMSettings()))
    with BackgroundServer(log) as server:
        yield log, server


@pytest_asyncio.fixture(scope="module")
async def pipeline_job(
    temporal_env: WorkflowEnvironment,
    model_log: tuple[ModelLog, BackgroundServer],
    pipeline_app: BackgroundServer,
) -> AsyncIterator[Job]:
    """One job on configs/banking77_pipeline.toml, shared by the tests below."""
    simllm = model_log[1]
    config = load_config_file(
        REPO / "configs" / "banking77_pipeline.toml",
        [
            f'task_app_url="{pipeline_app.url}"',
            f'policy.inference_url="{simllm.url}/v1"',
            f'mipro.meta.inference_url="{simllm.url}/v1"',
            *SMALL,
        ],
    )
    queue = f"tq-pipeline-{uuid.uuid4().hex[:6]}"
    async with running_worker(temporal_env.client, WorkerOptions(task_queue=queue)):
        handle = await jobs.start_job(temporal_env.client, config, task_queue=queue)
        result = await jobs.result(temporal_env.client, handle.id)
        events = await handle.query(MiproWorkflow.events, EventsQuery(limit=5000))
        yield config, result, events


def proposed(events: list[Event], stage_id: str) -> list[str]:
    return [
        e.data["instruction_text"]
        for e in events
        if e.type == "mipro.instruction.proposed" and e.data["stage_id"] == stage_id
    ]


async def test_a_pipeline_job_beats_its_baseline_and_lists_each_stages_prompt(
    pipeline_job: Job, banking77_data: Banking77Data
) -> None:
    config, result, events = pipeline_job
    assert result.status == "succeeded" and result.simulated_llm and result.warnings == []
    assert result.rollout_errors == 0, result.errors_by_kind
    assert result.baseline_test_score is not None and result.best_test_score is not None
    assert result.best_test_score > result.baseline_test_score, result.model_dump_json(indent=1)[:3000]

    # the result lists each stage's prompt: its instruction, and its payload keyed by stage id
    router, _ = result.best.instructions
    assert set(result.stage_payloads) == {ROUTER, CLASSIFIER}
    assert [len(stage) for stage in result.instructions] == [config.mipro.max_instructions] * 2
    assert result.instructions[0][0] == ROUTER_SYSTEM and result.instructions[1][0] == CLASSIFIER_SYSTEM

    # both stages are improved: the best prompt changes each (its instruction or its demo set, now that
    # every stage's last call yields a demo), and the classifier's proposals are grounded in its own demos
    best = result.best.choice
    assert all(best.instruction[i] != 0 or best.demo_set[i] != 0 for i in range(2)), best.key
    rules = [set(RULE.findall(text)) for text in proposed(events, CLASSIFIER)]
    assert any(rules) and all(r <= set(banking77_data.labels) for r in rules)

    # both stages were searched: instructions proposed for each, and trials with other router instructions
    assert len(proposed(events, ROUTER)) == len(proposed(events, CLASSIFIER)) == config.mipro.max_instructions
    assert any(t.choice.instruction[0] != 0 for t in result.trials)
    assert any(t.choice.instruction[1] != 0 for t in result.trials)
    assert router in result.instructions[0]


async def test_the_best_prompt_has_each_stages_messages_ready_to_use(pipeline_job: Job) -> None:
    config, result, _ = pipeline_job
    best = result.best
    assert list(best.stage_messages) == [ROUTER, CLASSIFIER]
    assert best.stage_messages[ROUTER] == best.messages, "the router's messages are initial_prompt's"
    [classifier_stage] = [s for m in config.mipro.modules for s in m.stages if s.stage_id == CLASSIFIER]
    [own_user] = [m.content for m in classifier_stage.baseline_messages or [] if m.role == "user"]
    for stage_id, instruction in zip(best.stage_messages, best.instructions, strict=True):
        messages = best.stage_messages[stage_id]
        system = next(m.content or "" for m in messages if m.role == "system")
        assert instruction in system, (stage_id, system[:200])
    classifier_users = [m.content for m in best.stage_messages[CLASSIFIER] if m.role == "user"]
    assert classifier_users[-1] == own_user, "the classifier's from its own baseline_messages"
    assert own_user not in [m.content for m in best.stage_messages[ROUTER]]
    demos = [len([m for m in best.stage_messages[s] if m.role == "assistant"]) for s in (ROUTER, CLASSIFIER)]
    assert demos == [len(d) for d in best.demo_indices], "each stage's chosen demos, as turns"
    titles = [title for title, _ in best_prompt_panels(result)]
    assert [t.rsplit(" ", 1)[-1] for t in titles] == [ROUTER, CLASSIFIER], "the CLI shows a panel per stage"


async def test_the_router_is_improved_from_its_own_calls(pipeline_job: Job) -> None:
    _, result, events = pipeline_job
    grounded = [text for text in proposed(events, ROUTER) if set(RULE.findall(text)) & set(DOMAINS)]
    assert grounded, "router proposals with rules naming its domains, from the router's own demos"
    assert result.best.choice.instruction[0] != 0 or result.best.choice.demo_set[0] != 0, "the router changed"


async def test_stage_payloads_name_each_stages_module(pipeline_job: Job) -> None:
    _, result, _ = pipeline_job
    assert {s: p.module_id for s, p in result.stage_payloads.items()} == {
        ROUTER: ROUTER,
        CLASSIFIER: CLASSIFIER,
    }


async def test_the_router_stages_calls_go_to_its_own_model(
    pipeline_job: Job, model_log: tuple[ModelLog, BackgroundServer]
) -> None:
    """configs/banking77_pipeline.toml gives the router stage a policy of its own (model sim-router): the
    interceptor sends the router's calls to it and the classifier's to the job's policy model."""
    config, result, _ = pipeline_job
    log, _ = model_log
    router = [user for model, user in log.calls if model == "sim-router"]
    classifier = [user for model, user in log.calls if model == config.policy.model]
    assert router and classifier
    assert all("Available Categories" in user and "Routed to" not in user for user in router)
    assert all("Routed to" in user for user in classifier)
    assert result.rollout_errors == 0
