"""What a worker process serves, and on which task queues (`mipro worker --serve ... --*-task-queue`)."""

from __future__ import annotations

import argparse
import asyncio

import httpx
import pytest

from mipro.activities.proposals import ProposalActivities
from mipro.activities.resources import WorkerResources
from mipro.activities.search import suggest_candidates
from mipro.activities.task_app import TaskAppActivities
from mipro.interceptor.registry import Registry
from mipro.worker import WorkerOptions, activities_by_queue, own_rollout_queue, roles

ROLLOUT_ACTIVITIES = [
    "check_task_app",
    "evaluate_candidate",
    "evaluate_candidates",
    "gather_baseline_messages",
    "pin_rollout_worker",
]


def names(plan: dict[str, list]) -> dict[str, list[str]]:
    return {queue: sorted(fn.__name__ for fn in fns) for queue, fns in plan.items()}


def plan_for(opts: WorkerOptions, own_queue: str | None = None) -> dict[str, list[str]]:
    resources = WorkerResources(
        registry=Registry(),
        interceptor_url="http://x",
        http=httpx.AsyncClient(),
        rollout_slots=asyncio.Semaphore(1),
        own_rollout_queue=own_queue,
    )
    return names(activities_by_queue(opts, TaskAppActivities(resources), ProposalActivities(resources)))


def test_one_worker_serves_everything_on_its_queue_by_default() -> None:
    assert plan_for(WorkerOptions(task_queue="q")) == {
        "q": sorted(
            [
                "suggest_candidates",
                "check_task_app",
                "evaluate_candidate",
                "evaluate_candidates",
                "gather_baseline_messages",
                "pin_rollout_worker",
                "propose_instructions",
            ]
        )
    }


def test_split_queues_put_each_kind_of_activity_on_its_own_queue() -> None:
    opts = WorkerOptions(task_queue="q", rollout_task_queue="r", proposal_task_queue="p")
    assert plan_for(opts) == {
        "q": [suggest_candidates.__name__],
        "r": ROLLOUT_ACTIVITIES,
        "p": ["propose_instructions"],
    }
    rollouts_only = WorkerOptions(task_queue="q", rollout_task_queue="r", serve=("rollouts",))
    assert plan_for(rollouts_only) == {"r": ROLLOUT_ACTIVITIES}


def test_serve_takes_a_subset_of_the_roles() -> None:
    assert roles("rollouts, proposals") == ("rollouts", "proposals")
    for bad in ("", "rollout", "workflows,gpu"):
        with pytest.raises(argparse.ArgumentTypeError):
            roles(bad)


def test_a_rollout_worker_also_serves_the_batches_pinned_to_it_on_a_queue_of_its_own() -> None:
    opts = WorkerOptions(task_queue="q", rollout_task_queue="r", serve=("rollouts",))
    own = own_rollout_queue(opts)
    assert own is not None and own.startswith("r@") and own != own_rollout_queue(opts), "unique per worker"
    assert plan_for(opts, own) == {"r": ROLLOUT_ACTIVITIES, own: ["evaluate_candidates"]}
    assert own_rollout_queue(WorkerOptions(serve=("workflows", "proposals"))) is None
