"""Promotion on validation and minibatch evidence together, on the fake activities of test_workflow_mocked:
the better prompt is one row behind the baseline on a small validation sample and well ahead on every
minibatch, so validation alone keeps the baseline and the pooled evidence promotes it."""

from __future__ import annotations

import pytest
from temporalio.testing import WorkflowEnvironment

from mipro.job_models import EventsQuery
from mipro.starter import jobs
from mipro.workflows.mipro_workflow import MiproWorkflow
from tests.integration import test_workflow_mocked as mocked
from tests.integration.test_workflow_mocked import (  # noqa: F401 (fake_worker is a fixture)
    GOOD,
    FakeActivities,
    fake_config,
    fake_worker,
    run_job,
)

pytestmark = pytest.mark.integration


async def test_a_small_unlucky_validation_does_not_keep_the_baseline(
    temporal_env: WorkflowEnvironment,
    fake_worker: tuple[str, FakeActivities],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    task_queue, _ = fake_worker
    val = fake_config().mipro.val_seeds[:17]
    unlucky = next(s for s in val if s % 2 == 0)  # a validation row the baseline gets right

    def score_of(instruction: str, seed: int) -> float:
        plain = 1.0 if seed % 2 == 0 else 0.0  # any other instruction: right on half the seeds
        if GOOD not in instruction:
            return plain
        if seed in val:
            return 0.0 if seed == unlucky else plain  # on validation: one row behind the baseline
        return 0.0 if seed % 4 == 0 else 1.0  # elsewhere (minibatches, test): right on 3 seeds of 4

    monkeypatch.setattr(mocked, "score_of", score_of)
    config = fake_config("mipro.val_seeds=[" + ", ".join(map(str, val)) + "]")
    result = await run_job(temporal_env, task_queue, config)

    assert result.status == "succeeded"
    assert GOOD in result.best.instructions[0], "the pooled evidence promotes the better prompt"
    assert result.best_test_score == pytest.approx(0.75, abs=0.1)
    assert result.baseline_test_score == pytest.approx(0.5, abs=0.1)
    baseline_val = result.baseline_validation_score
    assert result.best_validation_score is not None and baseline_val is not None
    assert result.best_validation_score < baseline_val, "validation alone would have kept the baseline"

    events = await jobs.handle(temporal_env.client, result.job_id).query(
        MiproWorkflow.events, EventsQuery(limit=5000)
    )
    [promoted] = [e for e in events if e.type == "mipro.new_incumbent"]
    evidence = promoted.data["evidence"]
    assert evidence["promote"] is True and evidence["p_better"] > evidence["threshold"]
    assert evidence["validation"]["n"] == 17
    assert evidence["validation"]["mean_diff"] == pytest.approx(-1 / 17)
    assert evidence["minibatch"]["n"] >= config.mipro.batch_size and evidence["minibatch"]["mean_diff"] > 0
    checked = [e for e in events if e.type == "mipro.fulleval.complete"]
    assert checked and all("evidence" in e.data for e in checked), "every decision says why"
