"""Overlapped iterations (`mipro.overlap_iterations`): the next iteration's batch starts while the previous
one still runs, both on the one worker the job is pinned to, where they share `max_concurrent`; so the cap
holds with several workers serving the job, and a pinned worker that dies hands the job to another."""

from __future__ import annotations

import asyncio
import json
import signal
from dataclasses import dataclass, field
from datetime import datetime

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from mipro.activity_models import BatchProgress
from mipro.job_models import EventsQuery, OptimizationResult
from mipro.serving import BackgroundServer
from mipro.simllm.app import create_app as create_simllm
from mipro.simllm.settings import SimLLMSettings
from mipro.starter import jobs
from mipro.taskapps.banking77.app import create_app as create_banking77
from mipro.taskapps.banking77.data import Banking77Data
from mipro.worker import WorkerOptions, connect, running_worker
from mipro.workflows.mipro_workflow import MiproWorkflow
from tests.conftest import SMALL_JOB, TASK_APP_KEY, job_config
from tests.integration.test_durability import start_worker_process
from tests.integration.test_faults import progress_where, until

OVERLAP = [*SMALL_JOB, "mipro.overlap_iterations=true"]


class Progress(BatchProgress):
    def label_seeds(self) -> set[tuple[str, int]]:
        return {(item.label, o.seed) for item in self.items for o in item.finished}


@dataclass
class BatchRun:
    task_queue: str
    scheduled: datetime
    resume: Progress | None
    started: datetime | None = None
    closed: datetime | None = None
    labels: set[str] = field(default_factory=set)  # its evaluations' labels
    label: str = ""  # the batch's, e.g. "iteration-0002"


async def heartbeats(handle: WorkflowHandle) -> list[set[tuple[str, int]]]:
    """The (label, seed)s finished by each of the job's running batches, as their last heartbeats say
    (empty until one says some)."""
    description = await handle.describe()
    finished = []
    for pending in description.raw_description.pending_activities:
        payloads = pending.heartbeat_details.payloads
        if pending.activity_type.name == "evaluate_candidates" and payloads:
            finished.append(Progress.model_validate_json(payloads[-1].data).label_seeds())
    return finished if any(finished) else []


async def batch_runs(handle: WorkflowHandle) -> list[BatchRun]:
    """The job's `evaluate_candidates` activities from its history: queue, start and close times."""
    runs: dict[int, BatchRun] = {}
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_type.name == "evaluate_candidates":
                inp = json.loads(attrs.input.payloads[0].data)
                resume = inp.get("resume") and Progress(**inp["resume"])
                labels = {item["label"] for item in inp["items"]}
                at = event.event_time.ToDatetime()
                runs[event.event_id] = BatchRun(
                    attrs.task_queue.name, at, resume, labels=labels, label=inp["label"]
                )
        elif event.HasField("activity_task_started_event_attributes"):
            run = runs.get(event.activity_task_started_event_attributes.scheduled_event_id)
            if run is not None:
                run.started = event.event_time.ToDatetime()
        for closed in (
            "activity_task_completed_event_attributes",
            "activity_task_failed_event_attributes",
            "activity_task_timed_out_event_attributes",
        ):
            if event.HasField(closed):
                run = runs.get(getattr(event, closed).scheduled_event_id)
                if run is not None:
                    run.closed = event.event_time.ToDatetime()
    return list(runs.values())


async def draining_signals(handle: WorkflowHandle) -> dict[str, datetime]:
    """When each batch's `batch_draining` signal reached the workflow, by batch label."""
    signals = {}
    async for event in handle.fetch_history_events():
        if event.HasField("workflow_execution_signaled_event_attributes"):
            attrs = event.workflow_execution_signaled_event_attributes
            if attrs.signal_name == "batch_draining":
                label = json.loads(attrs.input.payloads[0].data)["label"]
                signals[label] = event.event_time.ToDatetime()
    return signals


def overlapping_pairs(runs: list[BatchRun]) -> int:
    """Batches that started before the one scheduled just before them had closed."""
    return sum(
        1
        for before, after in zip(runs, runs[1:], strict=False)
        if after.started and before.closed and after.started < before.closed
    )


async def test_two_workers_overlapping_iterations_keep_the_jobs_rollout_cap(
    temporal_env: WorkflowEnvironment,
    simllm: BackgroundServer,
    banking77_data: Banking77Data,
    task_queue: str,
) -> None:
    """Two workers serve the job; its iterations overlap, on one worker's own queue, and the task app never
    serves more than the job's `max_concurrent` rollouts at once."""
    cap = 6
    app = create_banking77(banking77_data, api_key=TASK_APP_KEY)
    with (
        BackgroundServer(app) as counted_app,
        BackgroundServer(create_simllm(SimLLMSettings(latency_ms=100))) as slow_llm,
    ):
        overrides = [*OVERLAP, f'policy.inference_url="{slow_llm.url}/v1"', f"mipro.max_concurrent={cap}"]
        config = job_config(counted_app.url, simllm.url, overrides)
        client: Client = temporal_env.client
        # A second client: the SDK allows one worker per queue and client.
        other = await connect(client.service_client.config.target_host, client.namespace)
        options = WorkerOptions(task_queue=task_queue)
        async with running_worker(client, options), running_worker(other, options):
            handle = await jobs.start_job(client, config, task_queue=task_queue)
            result: OptimizationResult = await handle.result()
            events = await handle.query(MiproWorkflow.events, EventsQuery(since_seq=-1, limit=1000))
        stats = app.state.stats
        runs = await batch_runs(handle)
        signals = await draining_signals(handle)

    assert result.status == "succeeded" and result.stop_reason is None
    assert result.total_trials == 12 and [t.trial for t in result.trials] == list(range(12))
    assert sorted({t.iteration for t in result.trials}) == [0, 1, 2, 3]
    assert all(t.n > 0 for t in result.trials), "every trial is paired with the baseline on its block"
    queues = {run.task_queue for run in runs}
    assert len(queues) == 1 and f"{task_queue}@" in queues.pop(), "all batches on one worker's own queue"
    assert overlapping_pairs(runs) >= 2, "iterations overlapped"
    assert stats.max_in_flight <= cap, "the job's cap held over its overlapping batches"
    assert stats.in_flight == 0 and stats.completed == result.total_rollouts
    # Iterations 2 and 3 started as the one before drained, whose partial results their TPE saw
    # (iteration 1 starts after iteration 0 has landed).
    overlapped = [e.data for e in events if e.type == "mipro.iteration.overlapped"]
    assert [(d["iteration"], d["beside"]) for d in overlapped] == [(2, 1), (3, 2)]
    by_label = {run.label: run for run in runs}
    for wave in overlapped:
        before, after = (
            by_label[f"iteration-{wave['beside']:04d}"],
            by_label[f"iteration-{wave['iteration']:04d}"],
        )
        seen = wave["seen_seeds"]
        assert len(seen) == 3 and sum(seen) > 0 and max(seen) <= 16, "the TPE saw its trials' scores so far"
        assert len(wave["finished"]) == sum(1 for n in seen if n == 16), wave
        assert before.started and before.closed
        assert before.started < signals[before.label] <= after.scheduled < before.closed, (
            "launched as it drained"
        )


async def test_a_pinned_worker_that_dies_hands_the_job_to_another(
    temporal_env: WorkflowEnvironment,
    simllm: BackgroundServer,
    task_app: BackgroundServer,
    task_queue: str,
) -> None:
    """SIGKILL the worker the job's batches are pinned to, mid-search: the batch it was running resumes on
    the other worker (re-pinned), from the lost attempt's heartbeat, and the job ends normally."""
    client: Client = temporal_env.client
    address = client.service_client.config.target_host
    with BackgroundServer(create_simllm(SimLLMSettings(latency_ms=40))) as slow_llm:
        overrides = [
            *OVERLAP,
            f'policy.inference_url="{slow_llm.url}/v1"',
            "mipro.max_concurrent=4",
            "mipro.pinned_start_timeout_seconds=3",
        ]
        config = job_config(task_app.url, simllm.url, overrides)
        first = await start_worker_process(address, task_queue)
        second = None
        try:
            handle = await jobs.start_job(client, config, task_queue=task_queue)
            landed = progress_where(client, handle.id, lambda p: p.trials_done >= 3)
            await until(landed, "an iteration landed")
            second = await start_worker_process(address, task_queue)
            await until(lambda: heartbeats(handle), "a batch's heartbeat with finished seeds")
            first.send_signal(signal.SIGKILL)
            await asyncio.to_thread(first.wait, 30)
            result: OptimizationResult = await handle.result()
            runs = await batch_runs(handle)
            events = await handle.query(MiproWorkflow.events, EventsQuery(limit=5000))
        finally:
            for proc in (first, second):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait()

    assert result.status == "succeeded" and result.stop_reason is None
    assert [t.trial for t in result.trials] == list(range(12)), "each trial recorded once, in order"
    repinned = [e for e in events if e.type == "mipro.worker.repinned"]
    assert repinned, "the job moved to the surviving worker"
    queues = [run.task_queue for run in runs]
    assert len(set(queues)) == 2, "its batches ran on the dead worker's queue, then on the survivor's"
    assert queues[-1] == repinned[-1].data["queue"]
    resumed = [run for run in runs if run.resume is not None]
    assert any(run.resume.label_seeds() for run in resumed), "a moved batch resumed from a heartbeat"
    for run in resumed:  # each from its own lost attempt's heartbeat
        assert {label for label, _ in run.resume.label_seeds()} <= run.labels
