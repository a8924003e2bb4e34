"""Replay committed histories of real jobs: a change that breaks determinism (or the command sequence of
running jobs) fails here. Re-record with scripts/record_histories.py only for intended changes.
la_deferred_run_0.json is not recorded by it: it is the history of a run of test_api_load's 50-client SSE
test in which a local activity's result reached the workflow a task late (kept for the created_at test)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    Replayer,
    UnsandboxedWorkflowRunner,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from mipro.job_models import Event
from mipro.workflows.mipro_workflow import MiproWorkflow

HISTORIES = sorted((Path(__file__).resolve().parents[1] / "histories").glob("*.json"))


def test_histories_cover_updates_and_continue_as_new() -> None:
    assert len(HISTORIES) >= 3
    text = "".join(p.read_text() for p in HISTORIES)
    assert "WORKFLOW_EXECUTION_CONTINUED_AS_NEW" in text or "ContinuedAsNew" in text
    assert "pause" in text and "resume" in text


@pytest.mark.parametrize("path", HISTORIES, ids=[p.name for p in HISTORIES])
async def test_history_replays_deterministically(path: Path) -> None:
    history = WorkflowHistory.from_json("pl_recorded_job_01", path.read_text())
    replayer = Replayer(workflows=[MiproWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)


class _KeepEvents(Interceptor):
    """Keeps the events a replayed run made (the replayer answers no queries), not those it was carried."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        keep = self

        class Inbound(WorkflowInboundInterceptor):
            async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
                carried = input.args[0].state
                first = carried.next_seq if carried else 1
                try:
                    return await super().execute_workflow(input)
                finally:  # also when the run continues as new
                    keep.events = [e for e in workflow.instance().job.s.events if e.seq >= first]

        return Inbound


@pytest.mark.parametrize("path", HISTORIES, ids=[p.name for p in HISTORIES])
async def test_every_event_is_stamped_with_the_start_of_a_workflow_task(path: Path) -> None:
    """An event's created_at is the workflow time of a workflow task's start, which the worker reads from
    the same history event live and on replay, so a streamed event and the same event read after a replay
    (a finished job, a restarted worker) are equal. A local activity's completion moves workflow.now() to
    the completion time its marker records on replay, but live, when its result reaches the workflow in
    the next task (la_deferred_run_0: the marker in one task, the trials it chose started in the next), to
    that task's start: the trials announced after the TPE's local activity read 44.526914 live and
    44.490133 on replay before events took their time from before the local activity."""
    history = WorkflowHistory.from_json("pl_recorded_job_01", path.read_text())
    keep = _KeepEvents()
    replayer = Replayer(
        workflows=[MiproWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=UnsandboxedWorkflowRunner(),
        interceptors=[keep],
    )
    await replayer.replay_workflow(history)
    starts = {
        datetime.fromtimestamp(e.event_time.ToNanoseconds() / 1e9, UTC)  # as workflow.now() reads it
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
    }
    assert keep.events
    assert [(e.seq, e.type, e.created_at) for e in keep.events if e.created_at not in starts] == []
