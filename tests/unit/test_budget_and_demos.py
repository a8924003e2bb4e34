"""Cost accounting, termination conditions and demo-set construction."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mipro.budget import Counters, Spend, price_usd, termination_reason
from mipro.config import Price, TerminationConfig
from mipro.demos import build_demo_sets
from mipro.types import ChatMessage, FewShotExample, Usage


def test_price_per_million_tokens() -> None:
    pricing = {"m": Price(input_per_mtok=2.0, output_per_mtok=8.0)}
    assert price_usd(pricing, "m", 1_000_000, 500_000) == pytest.approx(6.0)
    assert price_usd(pricing, "unknown", 10, 10) == 0.0


def test_spend_by_category() -> None:
    spend = Spend()
    spend.add("rollout", Usage(calls=2, prompt_tokens=10, completion_tokens=2, cost_usd=0.5))
    spend.add("proposal", Usage(calls=1, prompt_tokens=5, completion_tokens=5, cost_usd=0.25))
    assert spend.total.cost_usd == pytest.approx(0.75)
    assert spend.total.total_tokens == 22 and spend.total.calls == 3


@pytest.mark.parametrize(
    ("term", "spend_usd", "trials", "errors", "elapsed", "expected"),
    [
        (TerminationConfig(max_spend_usd=1.0), 1.0, 0, 0, 0, "max_spend_usd"),
        (TerminationConfig(max_spend_usd=1.0), 0.99, 0, 0, 0, None),
        (TerminationConfig(max_trials_allowed=5), 0, 5, 0, 0, "max_trials_allowed"),
        (TerminationConfig(max_duration_minutes=1), 0, 0, 0, 61, "max_duration_minutes"),
        (TerminationConfig(max_consecutive_errors=3), 0, 0, 3, 0, "max_consecutive_errors"),
        (TerminationConfig(), 100.0, 1000, 100, 1e6, None),
    ],
)
def test_termination_reasons(term, spend_usd, trials, errors, elapsed, expected) -> None:
    spend = Spend()
    spend.add("rollout", Usage(cost_usd=spend_usd))
    counters = Counters(trials=trials)
    for _ in range(errors):
        counters.record(False, "http_5xx")
    assert termination_reason(term, spend, counters, elapsed) == expected


def test_trials_in_flight_count_against_the_trial_cap() -> None:
    term = TerminationConfig(max_trials_allowed=10)
    assert termination_reason(term, Spend(), Counters(trials=8), 0, planned_trials=1) is None
    assert termination_reason(term, Spend(), Counters(trials=8), 0, planned_trials=2) == "max_trials_allowed"


def test_error_rate_needs_enough_rollouts() -> None:
    term = TerminationConfig(max_error_rate=0.5)
    counters = Counters()
    for ok in [False] * 5:
        counters.record(ok, "timeout")
    assert termination_reason(term, Spend(), counters, 0) is None
    for ok in [True] * 5 + [False] * 10:
        counters.record(ok, "timeout")
    assert termination_reason(term, Spend(), counters, 0) == "max_error_rate"
    assert counters.errors_by_kind == {"timeout": 15}


def pool(n: int) -> list[FewShotExample]:
    return [
        FewShotExample(
            seed=i, stage_id="s", input=f"q{i}", score=1.0, answer=ChatMessage(role="assistant", content="a")
        )
        for i in range(n)
    ]


def test_demo_sets_layout() -> None:
    sets = build_demo_sets(pool(10), max_size=4, max_sets=6, seed=1)
    assert sets[0] == [] and sets[1] == [0, 1, 2, 3]
    assert len(sets) == 6
    assert all(1 <= len(s) <= 4 for s in sets[1:])
    assert build_demo_sets(pool(10), 4, 6, seed=1) == sets


def test_no_demos_means_only_the_empty_set() -> None:
    assert build_demo_sets([], 4, 8, seed=0) == [[]]
    assert build_demo_sets(pool(5), 0, 8, seed=0) == [[]]


@given(st.integers(0, 12), st.integers(0, 6), st.integers(1, 10), st.integers(0, 1000))
def test_demo_sets_are_distinct_and_bounded(n: int, size: int, max_sets: int, seed: int) -> None:
    sets = build_demo_sets(pool(n), size, max_sets, seed)
    assert sets[0] == [] and len(sets) <= max_sets
    assert len({tuple(s) for s in sets}) == len(sets)
    assert all(len(s) <= size and all(0 <= i < n for i in s) for s in sets)
