"""Budget fitting of one evaluation, the final reserve and the per-candidate estimate (`mipro.budget`)."""

from __future__ import annotations

import pytest

from mipro.budget import (
    SAFETY,
    Spend,
    candidate_estimate,
    extra_prompt_chars,
    final_reserve,
    fit_evaluation,
    proposal_allowance,
)
from mipro.config import Price, TerminationConfig
from mipro.types import ChatMessage, CompiledCandidate, FewShotExample, StagePrompt, Usage

PER_ROLLOUT = Usage(calls=1, prompt_tokens=1000, completion_tokens=10, cost_usd=0.001)
PRICE = Price(input_per_mtok=1.0, output_per_mtok=1.0)


def spend(usd: float) -> Spend:
    out = Spend()
    out.add("rollout", Usage(cost_usd=usd))
    return out


def test_no_budget_means_every_seed_and_no_allowance() -> None:
    fit = fit_evaluation(TerminationConfig(), Spend(), Usage(), PER_ROLLOUT, 40)
    assert fit.seeds == 40 and fit.allowance is None


def test_an_evaluation_shrinks_to_what_the_budget_left_allows() -> None:
    term = TerminationConfig(max_spend_usd=1.0)
    fit = fit_evaluation(term, spend(0.99), Usage(), PER_ROLLOUT, 40)
    assert fit.seeds == int(0.01 // (0.001 * SAFETY))
    assert fit.allowance is not None and 0 < fit.allowance.cost_usd <= 0.01 + 1e-12


def test_what_is_held_counts_as_spent() -> None:
    term = TerminationConfig(max_spend_usd=1.0)
    assert fit_evaluation(term, spend(0.5), Usage(cost_usd=0.5), PER_ROLLOUT, 40).seeds == 0
    assert fit_evaluation(term, spend(0.5), Usage(cost_usd=0.4), PER_ROLLOUT, 40).seeds > 0


def test_before_any_measurement_an_evaluation_may_take_half_of_what_is_free() -> None:
    fit = fit_evaluation(TerminationConfig(max_spend_usd=1.0), spend(0.2), Usage(), None, 40)
    assert fit.seeds == 40
    assert fit.allowance is not None and fit.allowance.cost_usd == pytest.approx(0.4)


def test_token_budgets_size_the_allowance_in_tokens() -> None:
    fit = fit_evaluation(TerminationConfig(max_token_limit=100_000), Spend(), Usage(), PER_ROLLOUT, 10)
    assert fit.seeds == 10
    assert fit.allowance is not None and 10 * 1010 < fit.allowance.prompt_tokens <= 100_000


def candidate(instruction: str, demos: int = 0) -> CompiledCandidate:
    demo = FewShotExample(
        seed=1, stage_id="main", input="q" * 300, answer=ChatMessage(role="assistant", content="a"), score=1.0
    )
    return CompiledCandidate(
        stages=[StagePrompt(stage_id="main", instruction=instruction, demos=[demo] * demos)]
    )


def test_a_long_instruction_is_estimated_longer_than_the_baseline() -> None:
    """The old estimate scaled by demo count only: a 6,000-character instruction was priced as the baseline,
    so its allowance ran out and the job stopped on max_spend_usd with most of the budget unspent."""
    base = candidate("Classify.")
    long = candidate("Classify. " + "Think about every label carefully. " * 170)
    extra = extra_prompt_chars(long, base)
    assert extra > 5000
    est = candidate_estimate(PER_ROLLOUT, extra, PRICE)
    assert est.prompt_tokens >= PER_ROLLOUT.prompt_tokens + extra / 4  # at least English's ~4 chars/token
    assert est.cost_usd > PER_ROLLOUT.cost_usd


def test_demos_add_their_text_and_a_shorter_prompt_costs_no_less_than_the_baseline() -> None:
    base = candidate("Classify the intent.")
    assert extra_prompt_chars(candidate("Classify the intent.", demos=4), base) > 4 * 300
    assert extra_prompt_chars(candidate("Go."), base) == 0
    assert candidate_estimate(PER_ROLLOUT, 0, PRICE) == PER_ROLLOUT


def test_the_final_reserve_covers_the_largest_candidate_and_the_baseline_on_every_test_seed() -> None:
    largest = Usage(calls=1, prompt_tokens=3000, completion_tokens=10, cost_usd=0.003)
    reserve = final_reserve(largest, PER_ROLLOUT, test_seeds=100)
    assert reserve.cost_usd == pytest.approx((0.003 + 0.001) * 100 * SAFETY)


def test_a_proposal_may_spend_what_neither_its_own_nor_the_total_budget_forbids() -> None:
    term = TerminationConfig(max_spend_usd=1.0, max_proposal_spend_usd=0.3)
    assert proposal_allowance(term, spend(0.5), Usage(cost_usd=0.4)) == pytest.approx(0.1)
    assert proposal_allowance(term, Spend(), Usage()) == pytest.approx(0.3)
    assert proposal_allowance(TerminationConfig(), Spend(), Usage()) is None
