"""Continue-as-new keeps every run's history bounded; the event log, costs and trial history survive it."""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from mipro.job_models import EventsQuery, OptimizationResult
from mipro.serving import BackgroundServer
from mipro.starter import jobs
from mipro.worker import WorkerOptions, running_worker
from mipro.workflows.mipro_workflow import MiproWorkflow
from tests.conftest import SMALL_JOB, job_config
from tests.integration.test_durability import comparable


async def test_continue_as_new_every_iteration_changes_nothing_but_the_run_count(
    temporal_env: WorkflowEnvironment,
    simllm: BackgroundServer,
    task_app: BackgroundServer,
    task_queue: str,
    reference_result: OptimizationResult,
) -> None:
    client = temporal_env.client
    config = job_config(task_app.url, simllm.url, [*SMALL_JOB, "mipro.continue_as_new_every_trials=3"])
    async with running_worker(client, WorkerOptions(task_queue=task_queue)):
        handle = await jobs.start_job(client, config, task_queue=task_queue)
        result = await handle.result()
        events = await handle.query(MiproWorkflow.events, EventsQuery(limit=5000))

    runs = [wf async for wf in client.list_workflows(f"WorkflowId = '{handle.id}'")]
    assert len(runs) == 4, "4 iterations of 3 trials: a new run after each of the first three"
    sizes = []
    for run in runs:
        history = await client.get_workflow_handle(handle.id, run_id=run.run_id).fetch_history()
        sizes.append(len(history.events))
        last = history.events[-1].event_type
        assert last in (
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
        )
    assert max(sizes) < 200, f"runs stay small: {sizes}"

    assert comparable(result) == comparable(reference_result), "same trials, scores, costs and best"
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), "the event log is carried across runs without gaps"
    assert [e.type for e in events].count("mipro.continue_as_new") == 3
    assert [e.data["trial"] for e in events if e.type == "mipro.trial.complete"] == list(range(12))
