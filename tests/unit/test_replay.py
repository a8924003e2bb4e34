"""Replay committed histories of real jobs: a change that breaks determinism (or the command sequence of
running jobs) fails here. Re-record with scripts/record_histories.py only for intended changes."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

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
