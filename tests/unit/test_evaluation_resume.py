"""An evaluation attempt resumes from its predecessor's heartbeat: finished seeds kept, spend carried."""

from __future__ import annotations

from mipro.activities.task_app import remaining_allowance, resume_point
from mipro.activity_models import EvaluateInput, EvaluationProgress
from mipro.types import SeedOutcome, Usage


def _input(max_cost: float | None, max_tokens: int | None) -> EvaluateInput:
    return EvaluateInput.model_construct(
        job_id="pl_x", label="trial-0001", seeds=[1, 2, 3], max_cost_usd=max_cost, max_tokens=max_tokens
    )


def test_a_lost_attempts_unfinished_spend_is_carried_and_its_finished_seeds_kept() -> None:
    done = SeedOutcome(seed=1, score=1.0, usage=Usage(calls=1, prompt_tokens=100, cost_usd=0.01))
    beat = EvaluationProgress(
        label="trial-0001", total=3, done=1, finished=[done], lost=Usage(cost_usd=0.002),
        attempt_committed=Usage(calls=3, prompt_tokens=300, cost_usd=0.03), attempt_finished=done.usage,
    )  # fmt: skip
    nxt = resume_point(_input(0.1, None), [beat.model_dump(mode="json")])
    assert [o.seed for o in nxt.finished] == [1]
    assert abs(nxt.lost.cost_usd - 0.022) < 1e-12 and nxt.lost.prompt_tokens == 200
    assert abs(nxt.spent().cost_usd - 0.032) < 1e-12
    allowance = remaining_allowance(_input(0.1, None), nxt.spent())
    assert isinstance(allowance, Usage) and abs(allowance.cost_usd - 0.068) < 1e-12


def test_a_first_attempt_starts_clean_and_an_exhausted_allowance_is_not_unlimited() -> None:
    fresh = resume_point(_input(0.1, 500), [])
    assert fresh.finished == [] and fresh.spent() == Usage()
    assert remaining_allowance(_input(None, None), Usage(cost_usd=5)) is None
    assert remaining_allowance(_input(0.0, 0), Usage()) is None  # 0 means no cap, as the interceptor reads it
    assert remaining_allowance(_input(0.1, None), Usage(cost_usd=0.1)) == "exhausted"
    assert (
        remaining_allowance(_input(None, 500), Usage(prompt_tokens=400, completion_tokens=100)) == "exhausted"
    )
