"""The adaptive online pool (`mipro.adaptive_pool.level`) end to end, on the real dev server: with fake
activities whose task knows which seeds discriminate (fast, and the effect is exact), and on the real
stack with the simulated LLM and the banking77 task app. Each test compares against level NONE, so with
the feature off (the pool cut in fixed blocks) they fail."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from mipro.config import JobConfig
from mipro.job_models import EventsQuery, OptimizationResult
from mipro.serving import BackgroundServer
from mipro.starter import jobs
from mipro.worker import WorkerOptions, running_worker
from mipro.workflows.mipro_workflow import MiproWorkflow
from tests.conftest import SMALL_JOB, job_config
from tests.integration.test_workflow_mocked import GOOD, FakeActivities, serving

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # minutes: CI skips it (pytest -m slow)


def discriminating(seed: int) -> bool:
    return seed % 3 == 2


def score_of(instruction: str, demos: int, seed: int) -> float:
    """The fake task: two seeds in three tell nothing (every prompt right on seed % 3 == 0, every prompt
    wrong on seed % 3 == 1); the third is right when the prompt's quality (2 for the GOOD instruction, plus
    1 per two demos) is above the seed's difficulty (0-3). The baseline (quality 0) is right on none."""
    if not discriminating(seed):
        return float(seed % 3 == 0)
    quality = (2 if GOOD in instruction else 0) + min(2, demos // 2)
    return float(quality > (seed // 3) % 4)


def fakes_of_this_task() -> FakeActivities:
    return FakeActivities(score=lambda stage, seed: score_of(stage.instruction, len(stage.demos), seed))


@pytest_asyncio.fixture
async def fake_worker(temporal_env: WorkflowEnvironment) -> AsyncIterator[tuple[str, FakeActivities]]:
    fakes = fakes_of_this_task()
    async with serving(temporal_env, fakes) as task_queue:
        yield task_queue, fakes


def fake_config(level: str) -> JobConfig:
    # URLs nobody calls: every activity is a fake. 6 iterations of 3 trials on blocks of 12.
    return job_config(
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
        [
            "mipro.num_iterations=6",
            "mipro.num_evaluations_per_iteration=3",
            "mipro.batch_size=12",
            "mipro.max_parallel_trials=3",
            f'mipro.adaptive_pool.level="{level}"',
        ],
    )


def trial_seeds(fakes: FakeActivities) -> list[int]:
    """Every seed a trial evaluated (a rollout each)."""
    return [s for e in fakes.evaluations if e.label.startswith("trial-") for s in e.seeds]


async def run(env: WorkflowEnvironment, task_queue: str, config: JobConfig) -> OptimizationResult:
    handle = await jobs.start_job(env.client, config, task_queue=task_queue)
    return await handle.result()


async def test_the_pool_concentrates_on_discriminating_seeds_and_saves_rollouts_for_the_same_trials(
    temporal_env: WorkflowEnvironment, fake_worker: tuple[str, FakeActivities]
) -> None:
    task_queue, fakes = fake_worker
    fixed = await run(temporal_env, task_queue, fake_config("NONE"))
    fixed_seeds, fakes.evaluations = trial_seeds(fakes), []
    adaptive = await run(temporal_env, task_queue, fake_config("HIGH"))
    adaptive_seeds, adaptive_evals = trial_seeds(fakes), list(fakes.evaluations)

    assert fixed.status == adaptive.status == "succeeded"
    assert adaptive.total_trials == fixed.total_trials == 18, "the same trials"
    assert len(adaptive_seeds) < 0.75 * len(fixed_seeds), "fewer trial rollouts"
    assert adaptive.total_rollouts < fixed.total_rollouts
    # After the first iteration the trials' seeds are mostly ones that separate candidates
    later = [s for t in adaptive.trials if t.iteration > 0 for s in t.seeds]
    share = sum(map(discriminating, later)) / len(later)
    fixed_later = [s for t in fixed.trials if t.iteration > 0 for s in t.seeds]
    assert share > 0.7 and share > sum(map(discriminating, fixed_later)) / len(fixed_later) + 0.2
    # ... and the search still finds the prompt the task rewards, with the same test score
    assert GOOD in adaptive.best.instructions[0] and GOOD in fixed.best.instructions[0]
    assert adaptive.best_test_score == fixed.best_test_score
    # Still paired: every trial's seeds were scored for the baseline too, all trials of an iteration alike
    for t in adaptive.trials:
        assert t.n == len(t.seeds) and t.paired_lift is not None
        assert {tuple(u.seeds) for u in adaptive.trials if u.iteration == t.iteration} == {tuple(t.seeds)}
    assert adaptive.trials[0].seeds == fixed.trials[0].seeds, "iteration 0: the fixed pool's first block"
    sizes = [len(next(t for t in adaptive.trials if t.iteration == i).seeds) for i in range(6)]
    assert sizes[0] == 12 and min(sizes) < 12, sizes
    assert any(b > a for a, b in zip(sizes, sizes[1:], strict=False)), f"grows after a tie: {sizes}"
    events = await jobs.handle(temporal_env.client, adaptive.job_id).query(
        MiproWorkflow.events, EventsQuery(limit=5000)
    )
    pool_events = [e for e in events if e.type == "mipro.adaptive_pool"]
    assert [e.data["iteration"] for e in pool_events] == list(range(6))
    assert all(e.data["level"] == "HIGH" for e in pool_events)
    # Deterministic from mipro.seed: the same config chooses the same seeds
    fakes.evaluations = []
    again = await run(temporal_env, task_queue, fake_config("HIGH"))
    assert [t.seeds for t in again.trials] == [t.seeds for t in adaptive.trials]
    assert [e.seeds for e in fakes.evaluations] == [e.seeds for e in adaptive_evals]


async def test_on_the_simulated_llm_the_pool_saves_trial_rollouts(
    temporal_env: WorkflowEnvironment, simllm: BackgroundServer, task_app: BackgroundServer, task_queue: str
) -> None:
    """The real stack: banking77 task app, simulated LLM, the worker with its interceptor."""
    results = {}
    async with running_worker(temporal_env.client, WorkerOptions(task_queue=task_queue)):
        for level in ("NONE", "MODERATE"):
            config = job_config(
                task_app.url, simllm.url, [*SMALL_JOB, f"mipro.adaptive_pool.level={level!r}"]
            )
            handle = await jobs.start_job(temporal_env.client, config, task_queue=task_queue)
            results[level] = await handle.result()
    fixed, adaptive = results["NONE"], results["MODERATE"]
    assert fixed.status == adaptive.status == "succeeded"
    assert adaptive.total_trials == fixed.total_trials
    used = {level: sum(len(t.seeds) for t in r.trials) for level, r in results.items()}
    assert used["MODERATE"] < used["NONE"], used
    assert adaptive.total_rollouts < fixed.total_rollouts
    assert all(t.n == len(t.seeds) for t in adaptive.trials), "paired with the baseline on every seed"
    assert {len(t.seeds) for t in fixed.trials} == {16}
    assert min(len(t.seeds) for t in adaptive.trials) < 16
