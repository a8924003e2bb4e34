"""Pricing, cost accounting by category, and termination conditions: pure functions for the workflow."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from mipro.config import Price, TerminationConfig
from mipro.types import Usage

Category = Literal["rollout", "proposal"]


def price_usd(pricing: dict[str, Price], model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """USD cost of one call; models without a price cost 0 (config validation refuses USD budgets then)."""
    price = pricing.get(model)
    if price is None:
        return 0.0
    return (prompt_tokens * price.input_per_mtok + completion_tokens * price.output_per_mtok) / 1_000_000


class Spend(BaseModel):
    """Usage per category. `rollout` is the policy model behind rollouts; `proposal` the meta-model."""

    rollout: Usage = Field(default_factory=Usage)
    proposal: Usage = Field(default_factory=Usage)

    def add(self, category: Category, usage: Usage) -> None:
        setattr(self, category, getattr(self, category).plus(usage))

    @property
    def total(self) -> Usage:
        return self.rollout.plus(self.proposal)


class Counters(BaseModel):
    trials: int = 0
    rollouts: int = 0
    rollout_errors: int = 0
    consecutive_errors: int = 0
    errors_by_kind: dict[str, int] = Field(default_factory=dict)

    def record(self, ok: bool, kind: str | None) -> None:
        self.rollouts += 1
        if ok:
            self.consecutive_errors = 0
            return
        self.rollout_errors += 1
        self.consecutive_errors += 1
        if kind:
            self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + 1


def termination_reason(
    term: TerminationConfig, spend: Spend, counters: Counters, elapsed_seconds: float, planned_trials: int = 0
) -> str | None:
    """The first termination condition that holds, as a short machine-readable reason, else None.

    `planned_trials` counts trials already started but not yet recorded, so a trial cap is never overshot.
    """
    checks: list[tuple[bool, str]] = [
        (term.max_spend_usd is not None and spend.total.cost_usd >= term.max_spend_usd, "max_spend_usd"),
        (
            term.max_rollout_spend_usd is not None and spend.rollout.cost_usd >= term.max_rollout_spend_usd,
            "max_rollout_spend_usd",
        ),
        (
            term.max_proposal_spend_usd is not None
            and spend.proposal.cost_usd >= term.max_proposal_spend_usd,
            "max_proposal_spend_usd",
        ),
        (
            term.max_token_limit is not None and spend.total.total_tokens >= term.max_token_limit,
            "max_token_limit",
        ),
        (
            term.max_duration_minutes is not None and elapsed_seconds >= term.max_duration_minutes * 60,
            "max_duration_minutes",
        ),
        (
            term.max_trials_allowed is not None
            and counters.trials + planned_trials >= term.max_trials_allowed,
            "max_trials_allowed",
        ),
        (
            term.max_consecutive_errors is not None
            and counters.consecutive_errors >= term.max_consecutive_errors,
            "max_consecutive_errors",
        ),
        (
            term.max_error_rate is not None
            and counters.rollouts >= 20
            and counters.rollout_errors / counters.rollouts > term.max_error_rate,
            "max_error_rate",
        ),
    ]
    return next((reason for hit, reason in checks if hit), None)
