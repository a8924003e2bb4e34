"""One pause gate in front of everything that spends: a pause that arrives while the health check or the
bootstrap is in flight holds the bootstrap and the proposal, not only the search.

The task app is held at one route (a real HTTP server that blocks that route until the test releases it),
so the pause is known to be recorded while that step is in flight; what the workflow does next is then
read from its own progress query, which sees the state of a whole workflow activation at once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from temporalio.testing import WorkflowEnvironment

from mipro.serving import BackgroundServer
from mipro.starter import jobs
from mipro.taskapps.banking77.app import create_app as create_banking77
from mipro.taskapps.banking77.data import Banking77Data
from mipro.worker import WorkerOptions, running_worker
from mipro.workflows.mipro_workflow import MiproWorkflow
from tests.conftest import SMALL_JOB, TASK_APP_KEY, job_config
from tests.integration.test_job_control import poll_progress

pytestmark = pytest.mark.integration
TINY = [*SMALL_JOB, "mipro.num_iterations=2", "mipro.num_evaluations_per_iteration=2"]


class Hold:
    """ASGI wrapper: requests to `path` wait until `release` is set; `held` says one is waiting."""

    def __init__(self, app: Any, path: str) -> None:
        self.app, self.path = app, path
        self.held, self.release = threading.Event(), threading.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == self.path and not self.release.is_set():
            self.held.set()
            await anyio.to_thread.run_sync(self.release.wait)
        await self.app(scope, receive, send)


@pytest.fixture
def held_app(banking77_data: Banking77Data, request: pytest.FixtureRequest) -> Iterator[tuple[Hold, str]]:
    hold = Hold(create_banking77(banking77_data, api_key=TASK_APP_KEY), request.param)
    with BackgroundServer(hold) as server:
        yield hold, server.url
        hold.release.set()


@pytest.mark.parametrize(
    ("held_app", "next_phase"), [("/health", "bootstrap"), ("/rollout", "proposal")], indirect=["held_app"]
)
async def test_a_pause_holds_the_next_phase_until_resumed(
    temporal_env: WorkflowEnvironment,
    simllm: BackgroundServer,
    held_app: tuple[Hold, str],
    next_phase: str,
    task_queue: str,
) -> None:
    hold, url = held_app
    client = temporal_env.client
    async with running_worker(client, WorkerOptions(task_queue=task_queue)):
        handle = await jobs.start_job(client, job_config(url, simllm.url, TINY), task_queue=task_queue)
        assert await asyncio.to_thread(hold.held.wait, 60), "the job never reached the held route"
        paused = await handle.execute_update(MiproWorkflow.pause)  # recorded while that step is in flight
        assert paused.paused
        hold.release.set()
        p = await poll_progress(client, handle.id, lambda p: p.phase == next_phase, next_phase)
        assert p.paused and p.evaluations_in_flight == 0 and p.proposals_in_flight == 0, p
        if next_phase == "bootstrap":
            assert p.rollouts_done == 0
        await handle.execute_update(MiproWorkflow.resume)
        result = await handle.result()
    assert result.status == "succeeded" and result.total_trials == 4
