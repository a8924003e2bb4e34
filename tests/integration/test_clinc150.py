"""Jobs on the CLINC150 example task app (plain-text `Intent: <label>` answers, no tools) with the simulated
LLM, on the real dev server with real HTTP: a lift over the baseline; a job whose baseline scores 0 says so
as a warning and still proposes instructions; seeds outside the app's advertised range are refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from mipro.config import JobConfig, load_config_file
from mipro.job_models import Event, EventsQuery, OptimizationResult
from mipro.serving import BackgroundServer
from mipro.starter import jobs, render
from mipro.taskapps.clinc150 import Clinc150Data, create_app, load_clinc150
from mipro.taskapps.clinc150.data import SHARED_DIR
from mipro.worker import WorkerOptions, running_worker
from mipro.workflows.mipro_workflow import MiproWorkflow
from tests.conftest import REPO, TASK_APP_KEY

# Small enough for CI on 2 cores: 24 bootstrap, 3 x 3 trials of 16 seeds, 40 validation, 80 test seeds.
SMALL = [
    "mipro.num_iterations=3",
    "mipro.num_evaluations_per_iteration=3",
    "mipro.batch_size=16",
    "mipro.max_parallel_trials=3",
    f"mipro.bootstrap_train_seeds={list(range(0, 24))}",
    f"mipro.online_pool={list(range(40, 136))}",
    f"mipro.val_seeds={list(range(136, 176))}",
    f"mipro.test_pool={list(range(196, 276))}",
]


@pytest.fixture(scope="module")
def clinc150_data() -> Clinc150Data:
    return load_clinc150(SHARED_DIR)


@pytest.fixture(scope="module")
def clinc150_app(clinc150_data: Clinc150Data) -> Iterator[BackgroundServer]:
    with BackgroundServer(create_app(clinc150_data, api_key=TASK_APP_KEY)) as server:
        yield server


async def run_job(client: Client, config: JobConfig, queue: str) -> tuple[OptimizationResult, list[Event]]:
    """Run a job on a worker of its own; its result and events (queried while the worker serves)."""
    async with running_worker(client, WorkerOptions(task_queue=queue)):
        handle = await jobs.start_job(client, config, task_queue=queue)
        result = await jobs.result(client, handle.id)
        return result, await handle.query(MiproWorkflow.events, EventsQuery(limit=5000))


def clinc150_config(task_app_url: str, llm_url: str, overrides: list[str]) -> JobConfig:
    return load_config_file(
        REPO / "configs" / "clinc150.toml",
        [
            f'task_app_url="{task_app_url}"',
            f'policy.inference_url="{llm_url}/v1"',
            f'mipro.meta.inference_url="{llm_url}/v1"',
            *overrides,
        ],
    )


async def test_clinc150_job_beats_the_baseline_on_held_out_seeds(
    temporal_env: WorkflowEnvironment,
    simllm: BackgroundServer,
    clinc150_app: BackgroundServer,
    task_queue: str,
) -> None:
    config = clinc150_config(clinc150_app.url, simllm.url, SMALL)
    result, _ = await run_job(temporal_env.client, config, task_queue)

    assert result.status == "succeeded" and result.simulated_llm and result.warnings == []
    assert result.rollout_errors == 0
    assert result.baseline_test_score is not None and result.best_test_score is not None
    assert 0.1 < result.baseline_test_score < 0.6, "the weak model reads CLINC150's labels and query"
    assert result.best_test_score > result.baseline_test_score, result.model_dump_json(indent=1)[:2000]
    assert result.best.choice.key != "0:0"
    demos = [m for m in result.best.messages if m.role == "assistant"]
    assert demos and all((m.content or "").startswith("Intent: ") for m in demos), "plain-text demos"


async def test_a_baseline_scoring_zero_is_a_warning_and_proposals_still_come(
    temporal_env: WorkflowEnvironment,
    simllm: BackgroundServer,
    clinc150_data: Clinc150Data,
    task_queue: str,
) -> None:
    """The prompt no longer states the answer format the scorer needs: every baseline answer scores 0."""
    app = create_app(clinc150_data, api_key=TASK_APP_KEY, state_answer_format=False)
    with BackgroundServer(app) as server:
        overrides = [*SMALL[:4], "mipro.num_iterations=2", *SMALL[4:]]
        config = clinc150_config(server.url, simllm.url, overrides)
        result, events = await run_job(temporal_env.client, config, task_queue)

    assert result.status == "succeeded"
    assert result.baseline_validation_score == 0.0 and result.baseline_test_score == 0.0
    [warning] = result.warnings
    assert warning.startswith("no rollout reached few_shot_score_threshold (0.8)")
    assert "check the answer format" in warning and "'" in warning, "it shows answers the model gave"
    warned = [e for e in events if e.type == "mipro.bootstrap.warning"]
    assert [(e.level, e.message) for e in warned] == [("warning", warning)]
    assert warned[0].data["baseline_score"] == 0.0 and warned[0].data["answers"]
    proposed = [e.data["instruction_text"] for e in events if e.type == "mipro.instruction.proposed"]
    assert len(proposed) == config.mipro.max_instructions, "the baseline and 5 proposals"
    assert all("`Intent: <label>`" in text for text in proposed[1:]), "grounded in the task description"
    assert result.best_test_score is not None and result.best_test_score > 0.0, "a proposal fixed the format"

    with render.console.capture() as shown:
        render.print_result(result, "http://ui")
    assert "warning: no rollout reached few_shot_score_threshold" in " ".join(shown.get().split())


async def test_bootstrap_rollouts_that_all_fail_are_a_warning_naming_the_errors(
    temporal_env: WorkflowEnvironment, simllm: BackgroundServer, clinc150_data: Clinc150Data, task_queue: str
) -> None:
    app = create_app(clinc150_data, api_key=TASK_APP_KEY, fail_seeds=set(range(24)))  # the bootstrap seeds
    with BackgroundServer(app) as server:
        overrides = [
            *SMALL,
            "mipro.num_iterations=1",
            "mipro.rollout_retries=0",
            "mipro.rerun_delays_seconds=[]",
        ]
        result, events = await run_job(
            temporal_env.client, clinc150_config(server.url, simllm.url, overrides), task_queue
        )
    assert result.status == "succeeded" and result.errors_by_kind == {"http_5xx": 24}
    [warning] = result.warnings
    assert "every bootstrap rollout failed (http_5xx: 24)" in warning, warning
    assert [e.level for e in events if e.type == "mipro.bootstrap.warning"] == ["warning"]


async def test_seeds_outside_the_advertised_range_are_refused_before_any_rollout(
    temporal_env: WorkflowEnvironment, simllm: BackgroundServer, clinc150_data: Clinc150Data, task_queue: str
) -> None:
    app = create_app(clinc150_data, api_key=TASK_APP_KEY)
    with BackgroundServer(app) as server:
        config = clinc150_config(server.url, simllm.url, [*SMALL, "mipro.test_pool=[196, 15000, 15007]"])
        with pytest.raises(WorkflowFailureError) as info:
            await run_job(temporal_env.client, config, task_queue)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "TaskAppHealthCheckFailed"
    assert "test_pool: 15000, 15007" in cause.message and "0-14999" in cause.message, cause.message
    assert app.state.stats.started == 0, "no rollout ran"
