"""Atomic transforms on the real stack (issue 9 item 4): FOLLOW keeps the app's instruction and adds the
candidate's after it; matching honours transform_case_sensitive; a PYTHON transform is refused.
(transform_strict: tests/integration/test_workflow_mocked.py.)"""

from __future__ import annotations

import pytest
from temporalio.testing import WorkflowEnvironment

from mipro.errors import MIPROConfigurationError
from mipro.serving import BackgroundServer
from mipro.starter import jobs
from mipro.worker import WorkerOptions, running_worker
from tests.conftest import SMALL_JOB, job_config

pytestmark = pytest.mark.integration
SHORT = ["mipro.num_iterations=2", "mipro.num_evaluations_per_iteration=2"]


def stage_override(instruction: str, mode: str) -> str:
    return f'mipro.stages=[{{stage_id="main", baseline_instruction="""{instruction}""", mode="{mode}"}}]'


async def test_follow_with_case_insensitive_matching_keeps_the_apps_instruction(
    temporal_env: WorkflowEnvironment, simllm: BackgroundServer, task_app: BackgroundServer, task_queue: str
) -> None:
    probe = job_config(task_app.url, simllm.url, SMALL_JOB)
    system = probe.stages()[0].baseline_instruction
    first_sentence = system.split(".")[0]
    shouted = first_sentence.upper()  # the app sends it in its own case
    overrides = [
        *SMALL_JOB,
        *SHORT,
        "mipro.transform_case_sensitive=false",
        stage_override(shouted, "FOLLOW"),
    ]
    config = job_config(task_app.url, simllm.url, overrides)
    async with running_worker(temporal_env.client, WorkerOptions(task_queue=task_queue)):
        handle = await jobs.start_job(temporal_env.client, config, task_queue=task_queue)
        result = await handle.result()

    assert result.status == "succeeded" and result.errors_by_kind.get("transform", 0) == 0
    assert result.best.choice.key != "0:0", "a proposed instruction won, so FOLLOW placed it"
    system_message = next(m.content for m in result.best.messages if m.role == "system")
    head = system_message.index(first_sentence)  # the app's own text, in its own case, kept
    assert system_message.index(result.best.instructions[0], head) > head, "the candidate follows it"

    with pytest.raises(MIPROConfigurationError) as refused:  # case-sensitive (the default): not found
        job_config(task_app.url, simllm.url, [*SMALL_JOB, *SHORT, stage_override(shouted, "follow")])
    assert "baseline_instruction is not found" in str(refused.value)


def test_a_python_transform_is_refused_before_anything_starts(simllm: BackgroundServer) -> None:
    with pytest.raises(MIPROConfigurationError) as refused:
        job_config("http://127.0.0.1:9", simllm.url, [*SMALL_JOB, stage_override("x", "PYTHON")])
    assert "PYTHON transforms are refused" in str(refused.value)
