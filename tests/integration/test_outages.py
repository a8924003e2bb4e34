"""A real task app stopped, restarted and misbehaving mid-job (issue 14): an outage is waited out and changes
nothing; a job whose rollouts keep failing while the app answers stops as `stopped_on_errors` and starts
nothing after the stop; failed rollouts are never scored."""

from __future__ import annotations

import pytest
from temporalio.testing import WorkflowEnvironment

from mipro.job_models import EventsQuery, OptimizationResult
from mipro.serving import BackgroundServer
from mipro.starter import jobs
from mipro.taskapps.banking77.app import create_app as create_banking77
from mipro.taskapps.banking77.data import Banking77Data
from mipro.worker import WorkerOptions, running_worker
from mipro.workflows.mipro_workflow import MiproWorkflow
from tests.conftest import SMALL_JOB, TASK_APP_KEY, job_config
from tests.integration.test_faults import progress_where, until

pytestmark = pytest.mark.integration

FAST_RERUNS = ["mipro.rerun_delays_seconds=[0.5, 1, 2]", "mipro.outage_poll_max_seconds=1"]


def decisions(result: OptimizationResult) -> dict:
    """What the search decided and measured: equal for two runs of one config, whatever happened between."""
    return {
        "best": result.best.model_dump(),
        "test": (result.baseline_test_score, result.best_test_score),
        "trials": [(t.choice.key, t.seeds, t.minibatch_score, t.paired_lift, t.n) for t in result.trials],
        "validations": [(v.key, v.score, v.incumbent) for v in result.validations],
    }


@pytest.mark.slow  # minutes: CI skips it (pytest -m slow)
async def test_a_task_app_restarted_mid_job_is_waited_for_and_changes_nothing(
    temporal_env: WorkflowEnvironment,
    simllm: BackgroundServer,
    banking77_data: Banking77Data,
    task_queue: str,
    reference_result: OptimizationResult,
) -> None:
    client = temporal_env.client
    app = create_banking77(banking77_data, api_key=TASK_APP_KEY)
    server = BackgroundServer(app).start()
    port = server.port
    try:
        config = job_config(server.url, simllm.url, [*SMALL_JOB, *FAST_RERUNS])
        async with running_worker(client, WorkerOptions(task_queue=task_queue)):
            handle = await jobs.start_job(client, config, task_queue=task_queue)
            await until(progress_where(client, handle.id, lambda p: p.trials_done >= 3), "3 trials")
            server.stop()  # the app goes away mid-search
            waiting = await until(
                progress_where(client, handle.id, lambda p: p.waiting_for_task_app),
                "the job to wait for the app",
            )
            server = BackgroundServer(app, port=port).start()  # ... and comes back on its port
            result = await handle.result()
            events = await handle.query(MiproWorkflow.events, EventsQuery(limit=5000))
    finally:
        server.stop()

    assert waiting.phase == "search" and waiting.stop_reason is None
    assert result.status == "succeeded" and result.rollout_errors == 0
    assert decisions(result) == decisions(reference_result)
    types = [e.type for e in events]
    assert types.index("mipro.task_app.unavailable") < types.index("mipro.task_app.available")
    assert "mipro.termination" not in types


async def test_rollouts_failing_while_the_app_answers_stop_the_job_on_errors_with_nothing_after(
    temporal_env: WorkflowEnvironment,
    simllm: BackgroundServer,
    banking77_data: Banking77Data,
    task_queue: str,
) -> None:
    client = temporal_env.client
    probe = job_config("http://unused", simllm.url, SMALL_JOB)
    m = probe.mipro
    online = set(m.online_pool) - set(m.bootstrap_train_seeds) - set(m.val_seeds) - set(m.test_pool)
    app = create_banking77(banking77_data, api_key=TASK_APP_KEY, fail_seeds=online)  # /health stays fine
    with BackgroundServer(app) as server:
        overrides = [
            *SMALL_JOB,
            *FAST_RERUNS,
            "termination.max_consecutive_errors=20",
            "mipro.rollout_retries=0",
        ]
        config = job_config(server.url, simllm.url, overrides)
        async with running_worker(client, WorkerOptions(task_queue=task_queue)):
            handle = await jobs.start_job(client, config, task_queue=task_queue)
            result = await handle.result()
            events = await handle.query(MiproWorkflow.events, EventsQuery(limit=5000))
        requested = set(app.state.stats.attempts_by_seed)

    assert result.status == "stopped_on_errors" and result.stop_reason == "max_consecutive_errors"
    assert result.best_test_score is None and result.baseline_test_score is None
    assert not requested & set(m.test_pool), "no final test evaluation after an error stop"
    assert all(t.minibatch_score is None and t.n == 0 for t in result.trials), "a failed rollout is no score"
    assert result.validations == []
    stop = next(e.seq for e in events if e.type == "mipro.termination")
    started_after = [
        e for e in events if e.seq > stop and e.type in ("mipro.trial.started", "mipro.fulleval.complete")
    ]
    assert started_after == []
