"""The batch evaluation activity (`evaluate_candidates`) against a real task app on 127.0.0.1: its items
share the rollout slots (a finished rollout's slot goes to the next item's seeds at once), never more than
`concurrency` are in flight, `max_parallel` bounds the items in flight, and a retried attempt resumes each
item from the last heartbeat."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from typing import Any

import pytest
from fastapi import FastAPI
from temporalio.testing import ActivityEnvironment

from mipro.activities.task_app import TaskAppActivities
from mipro.activity_models import BatchDraining, BatchProgress, EvaluateBatchInput, EvaluationProgress
from mipro.serving import BackgroundServer
from mipro.types import SeedOutcome
from tests.unit.test_task_app_activities import REWARD, activities, evaluate_input

__all__ = ["activities"]  # the fixture


class RecordingApp:
    """A task app recording when each rollout arrived and was answered, and the rollouts in flight.
    Rollouts of seeds in `quick` are answered at once; with `full` set, the others wait until `full`
    rollouts are in flight after every quick one was answered (5 s at most), so a test can see whether
    other items took over the slots the quick seeds freed."""

    def __init__(self, quick: set[int] | None = None, full: int | None = None, wait_s: float = 5) -> None:
        self.quick, self.full, self.wait_s = quick or set(), full, wait_s
        self.lock = threading.Lock()
        self.released = threading.Event()
        self.in_flight = self.peak = 0
        self.arrived: list[tuple[str, int]] = []  # (item label, seed), in arrival order
        self.times: dict[tuple[str, int], tuple[float, float]] = {}  # -> (arrival, answer)

    def _quick_ones_answered(self) -> bool:
        return all(any(seed == s for _, s in self.times) for seed in self.quick)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/rollout")
        def rollout(body: dict[str, Any]) -> Any:  # sync: each request on a thread of its own
            key = (body["run_id"].rsplit("-", 1)[-1], body["env"]["seed"])  # run_id ends with the label
            start = time.monotonic()
            with self.lock:
                self.in_flight += 1
                self.peak = max(self.peak, self.in_flight)
                self.arrived.append(key)
                if self.full is not None and self.in_flight >= self.full and self._quick_ones_answered():
                    self.released.set()
            if self.full is not None and key[1] not in self.quick:
                self.released.wait(self.wait_s)
            with self.lock:
                self.in_flight -= 1
                self.times[key] = (start, time.monotonic())
            return REWARD

        return app


def batch(url: str, items: dict[str, list[int]], concurrency: int, max_parallel: int) -> EvaluateBatchInput:
    inputs = [
        evaluate_input(url, seeds).model_copy(update={"label": label}) for label, seeds in items.items()
    ]
    return EvaluateBatchInput(
        job_id="pl_test",
        label="iteration-0000",
        items=inputs,
        concurrency=concurrency,
        max_parallel=max_parallel,
    )


async def test_a_finished_rollouts_slot_goes_to_the_next_items_seeds(activities: TaskAppActivities) -> None:
    # A's seeds 1-3 answer at once, the others wait: B's seeds fill the three slots A's answered seeds
    # handed over, so 4 rollouts are in flight again (with the slots split per item, 1 + 2 at most).
    app = RecordingApp(quick={1, 2, 3}, full=4)
    with BackgroundServer(app.app()) as server:
        inp = batch(server.url, {"A": [0, 1, 2, 3], "B": [10, 11, 12, 13, 14]}, concurrency=4, max_parallel=2)
        out = await ActivityEnvironment().run(activities.evaluate_candidates, inp)
    assert app.released.is_set(), "B's seeds did not take over the slots of A's answered seeds"
    assert app.peak <= 4, f"{app.peak} rollouts in flight over a concurrency of 4"
    assert [[o.seed for o in item.outcomes] for item in out.outputs] == [[0, 1, 2, 3], [10, 11, 12, 13, 14]]
    assert all(o.score == 1.0 for item in out.outputs for o in item.outcomes)


async def test_max_parallel_one_runs_the_items_one_after_the_other(activities: TaskAppActivities) -> None:
    app = RecordingApp()
    with BackgroundServer(app.app()) as server:
        inp = batch(server.url, {"A": [0, 1, 2], "B": [10, 11, 12]}, concurrency=4, max_parallel=1)
        await ActivityEnvironment().run(activities.evaluate_candidates, inp)
    last_answer_of_a = max(answer for (label, _), (_, answer) in app.times.items() if label == "A")
    first_arrival_of_b = min(arrival for (label, _), (arrival, _) in app.times.items() if label == "B")
    assert first_arrival_of_b >= last_answer_of_a


@pytest.mark.parametrize("finished_a", [True, False])
async def test_a_retried_attempt_resumes_each_item_from_the_heartbeat(
    activities: TaskAppActivities, finished_a: bool
) -> None:
    app = RecordingApp()
    with BackgroundServer(app.app()) as server:
        inp = batch(server.url, {"A": [0, 1], "B": [10, 11]}, concurrency=4, max_parallel=2)
        done_a = [SeedOutcome(seed=s, score=0.5) for s in ([0, 1] if finished_a else [1])]
        last = BatchProgress(
            items=[
                EvaluationProgress(label="A", total=2, finished=done_a),
                EvaluationProgress(label="B", total=2, finished=[SeedOutcome(seed=11, score=0.5)]),
            ]
        )
        env = ActivityEnvironment()
        env.info = dataclasses.replace(env.info, heartbeat_details=[last.model_dump(mode="json")])
        out = await env.run(activities.evaluate_candidates, inp)
    expected_runs = {("B", 10)} | (set() if finished_a else {("A", 0)})
    assert set(app.arrived) == expected_runs, "only the seeds the heartbeat did not record ran"
    scores = [[o.score for o in item.outcomes] for item in out.outputs]
    assert scores == [[0.5, 0.5] if finished_a else [1.0, 0.5], [1.0, 0.5]]


async def test_two_batches_of_one_job_share_its_slots_and_other_jobs_have_their_own(
    activities: TaskAppActivities,
) -> None:
    """Overlapping iterations run two batches of a job at once on the worker it is pinned to: together
    they keep to the job's `concurrency` (3); another job's batch is not held back by it."""
    env = ActivityEnvironment()
    shared = RecordingApp(full=4, wait_s=0.3)  # each rollout waits 0.3 s, unless 4 get in flight
    with BackgroundServer(shared.app()) as server:
        first = batch(server.url, {"A": [0, 1, 2, 3]}, concurrency=3, max_parallel=2)
        second = batch(server.url, {"B": [10, 11, 12]}, concurrency=3, max_parallel=2)
        outs = await asyncio.gather(*(env.run(activities.evaluate_candidates, b) for b in (first, second)))
    assert shared.peak == 3, f"{shared.peak} rollouts of the job in flight over its concurrency of 3"
    separate = RecordingApp(full=4)  # 4 in flight only if the other job's rollout runs beside the 3
    with BackgroundServer(separate.app()) as server:
        first = batch(server.url, {"A": [0, 1, 2, 3]}, concurrency=3, max_parallel=2)
        other_job = batch(server.url, {"C": [20]}, concurrency=3, max_parallel=2)
        other_job.job_id = "pl_other"
        outs += await asyncio.gather(
            env.run(activities.evaluate_candidates, first), env.run(activities.evaluate_candidates, other_job)
        )
    assert separate.released.is_set(), "another job's rollout waited for this job's slots"
    assert [len(o.outputs[0].outcomes) for o in outs] == [4, 3, 4, 1]
    assert activities.res._job_slots == {}, "a job's slots are dropped when its last batch ends"


async def test_a_batch_moved_to_another_worker_resumes_from_the_lost_attempts_heartbeat(
    activities: TaskAppActivities,
) -> None:
    """A batch re-scheduled on a new worker has no heartbeat of its own: it resumes from `resume`, the lost
    attempt's last heartbeat the workflow passed on."""
    app = RecordingApp()
    with BackgroundServer(app.app()) as server:
        last = BatchProgress(
            items=[EvaluationProgress(label="A", total=2, finished=[SeedOutcome(seed=1, score=0.5)])]
        )
        inp = batch(server.url, {"A": [0, 1]}, concurrency=4, max_parallel=1)
        out = await ActivityEnvironment().run(
            activities.evaluate_candidates, inp.model_copy(update={"resume": last})
        )
    assert app.arrived == [("A", 0)], "only the seed the lost attempt did not finish ran"
    assert [o.score for o in out.outputs[0].outcomes] == [1.0, 0.5]


@pytest.mark.parametrize("notify", [True, False])
async def test_a_batch_signals_once_when_its_rollouts_left_fit_in_one_wave(
    activities: TaskAppActivities, notify: bool
) -> None:
    """With `notify_draining`, the batch tells the job once, when the rollouts still to start fit in one
    wave of its slots (2 of 8 here), with each item's scores so far: 6 started, 2 of them in flight."""
    notices: list[tuple[BatchDraining, int]] = []
    app = RecordingApp()

    async def record(notice: BatchDraining) -> None:
        notices.append((notice, len(app.arrived)))

    activities.notify_draining = record  # type: ignore[method-assign]
    with BackgroundServer(app.app()) as server:
        inp = batch(server.url, {"A": [0, 1, 2, 3], "B": [10, 11, 12, 13]}, concurrency=2, max_parallel=2)
        inp.notify_draining = notify
        out = await ActivityEnvironment().run(activities.evaluate_candidates, inp)
    assert all(len(item.outcomes) == 4 for item in out.outputs)
    if not notify:
        assert notices == []
        return
    [(notice, arrived)] = notices
    assert notice.label == "iteration-0000" and set(notice.scores) == {"A", "B"}
    assert arrived <= 6, "sent when the sixth rollout got its slot"
    assert sum(len(scores) for scores in notice.scores.values()) == 4, "6 started, 2 in flight"
    assert all(score == 1.0 for scores in notice.scores.values() for score in scores.values())
