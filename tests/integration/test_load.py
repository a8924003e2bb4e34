"""20 jobs at once on one in-process worker: all complete, and each gives exactly the result it gives alone.

Small jobs (small seed pools, 2 iterations x 2 trials) with 4 different `mipro.seed` values, 5 copies of
each. Each distinct config is first run alone, one after the other; then the 20 jobs are started while no
worker is polling their queue, so all 20 are pending when the worker starts and really run at the same
time. Every concurrent result must equal its config's alone result (identical configs, identical results).
"""

from __future__ import annotations

import asyncio
import json

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from mipro.config import JobConfig
from mipro.job_models import OptimizationResult
from mipro.serving import BackgroundServer
from mipro.starter import jobs
from mipro.worker import WorkerOptions, running_worker
from mipro.workflows.mipro_workflow import MiproWorkflow
from tests.conftest import job_config
from tests.integration.test_durability import comparable

SEEDS = [3, 11, 29, 41]
COPIES = 5
JOBS_TIMEOUT_S = 900  # a hang guard only; nothing is asserted about duration

# Prefixes of the example config's pools (so still disjoint from the test pool), sized for a quick job.
BASE = job_config("http://unused", "http://unused").mipro
TINY_JOB = [
    f"mipro.bootstrap_train_seeds={BASE.bootstrap_train_seeds[:12]}",
    f"mipro.online_pool={BASE.online_pool[:16]}",
    f"mipro.val_seeds={BASE.val_seeds[:12]}",
    f"mipro.test_pool={BASE.test_pool[:16]}",
    "mipro.num_iterations=2",
    "mipro.num_evaluations_per_iteration=2",
    "mipro.batch_size=8",
    "mipro.max_parallel_trials=2",
    "mipro.max_instructions=3",
    "mipro.max_demo_sets=4",
]


def tiny_config(task_app_url: str, llm_url: str, seed: int) -> JobConfig:
    return job_config(task_app_url, llm_url, [*TINY_JOB, f"mipro.seed={seed}"])


async def results_of(
    client: Client, handles: list[WorkflowHandle[MiproWorkflow, OptimizationResult]]
) -> list[OptimizationResult]:
    async with asyncio.timeout(JOBS_TIMEOUT_S):
        return list(await asyncio.gather(*(jobs.result(client, h.id) for h in handles)))


def assert_clean(result: OptimizationResult) -> None:
    assert result.status == "succeeded", result.model_dump_json()[:1500]
    assert result.rollout_errors == 0 and not result.errors_by_kind, result.errors_by_kind
    assert result.total_trials == 2 * 2
    assert result.best_test_score is not None and result.baseline_test_score is not None


@pytest.mark.slow  # minutes: CI skips it (pytest -m slow)
async def test_twenty_concurrent_jobs_on_one_worker_give_their_alone_results(
    temporal_env: WorkflowEnvironment, simllm: BackgroundServer, task_app: BackgroundServer, task_queue: str
) -> None:
    client = temporal_env.client

    alone: dict[int, OptimizationResult] = {}
    async with running_worker(client, WorkerOptions(task_queue=f"{task_queue}-alone")):
        for seed in SEEDS:
            config = tiny_config(task_app.url, simllm.url, seed)
            handle = await jobs.start_job(client, config, task_queue=f"{task_queue}-alone")
            (alone[seed],) = await results_of(client, [handle])
    for result in alone.values():
        assert_clean(result)
    distinct = {json.dumps(comparable(r), sort_keys=True) for r in alone.values()}
    assert len(distinct) > 1, "different seeds should give different searches"

    seeds = [seed for seed in SEEDS for _ in range(COPIES)]
    handles = [
        await jobs.start_job(client, tiny_config(task_app.url, simllm.url, seed), task_queue=task_queue)
        for seed in seeds
    ]
    assert len({h.id for h in handles}) == len(seeds) == 20
    async with running_worker(client, WorkerOptions(task_queue=task_queue)):
        results = await results_of(client, handles)

    for result in results:
        assert_clean(result)
    mismatched = [
        (handle.id, seed)
        for handle, seed, result in zip(handles, seeds, results, strict=True)
        if comparable(result) != comparable(alone[seed])
    ]
    assert not mismatched, f"concurrent results differ from the same config run alone: {mismatched}"
