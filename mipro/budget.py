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
        if kind == "budget":  # refused by the budget guard: not a rollout, not a task-app error
            self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + 1
            return
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


SAFETY = 1.25  # estimates of future calls are inflated by this factor before they are compared to budgets


def remaining_budget(
    term: TerminationConfig, spend: Spend, reserved: Usage
) -> tuple[float | None, float | None]:
    """USD and tokens still free for rollouts (None: no such budget), after what is reserved in flight."""
    usd_limits = []
    if term.max_spend_usd is not None:
        usd_limits.append(term.max_spend_usd - spend.total.cost_usd)
    if term.max_rollout_spend_usd is not None:
        usd_limits.append(term.max_rollout_spend_usd - spend.rollout.cost_usd)
    usd = min(usd_limits) - reserved.cost_usd if usd_limits else None
    tokens = None
    if term.max_token_limit is not None:
        tokens = term.max_token_limit - spend.total.total_tokens - reserved.total_tokens
    return usd, tokens


def rollouts_that_fit(per_rollout: Usage, usd: float | None, tokens: float | None) -> int | None:
    """How many rollouts of the estimated size fit in the remaining budget (None: unlimited)."""
    limits = []
    if usd is not None:
        limits.append(
            int(max(usd, 0.0) // (per_rollout.cost_usd * SAFETY)) if per_rollout.cost_usd > 0 else None
        )
    if tokens is not None and per_rollout.total_tokens > 0:
        limits.append(int(max(tokens, 0) // (per_rollout.total_tokens * SAFETY)))
    finite = [n for n in limits if n is not None]
    return min(finite) if finite else None


def budget_name(term: TerminationConfig, spend: Spend) -> str:
    """The budget that binds (the one with the smallest share left), for the stop reason."""
    left: list[tuple[float, str]] = []
    if term.max_spend_usd is not None:
        left.append((1 - spend.total.cost_usd / term.max_spend_usd, "max_spend_usd"))
    if term.max_rollout_spend_usd is not None:
        left.append((1 - spend.rollout.cost_usd / term.max_rollout_spend_usd, "max_rollout_spend_usd"))
    if term.max_token_limit is not None:
        left.append((1 - spend.total.total_tokens / term.max_token_limit, "max_token_limit"))
    return min(left)[1] if left else "budget"


def scaled(per_rollout: Usage, factor: float) -> Usage:
    return Usage(
        calls=per_rollout.calls,
        prompt_tokens=int(per_rollout.prompt_tokens * factor),
        completion_tokens=per_rollout.completion_tokens,
        cost_usd=per_rollout.cost_usd * factor,
    )
