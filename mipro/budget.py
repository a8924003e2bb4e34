"""Pricing, cost accounting by category, and termination conditions: pure functions for the workflow."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, computed_field

from mipro.config import Price, TerminationConfig
from mipro.types import CompiledCandidate, FewShotExample, Usage

Category = Literal["rollout", "proposal", "judge"]


def price_usd(pricing: dict[str, Price], model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """USD cost of one call; models without a price cost 0 (config validation refuses USD budgets then)."""
    price = pricing.get(model)
    if price is None:
        return 0.0
    return (prompt_tokens * price.input_per_mtok + completion_tokens * price.output_per_mtok) / 1_000_000


class Spend(BaseModel):
    """Usage per category. `rollout` is the policy model behind rollouts; `proposal` the meta-model;
    `judge` the LLM judge scoring rollouts. `total` (what max_spend_usd and max_token_limit cap) is all
    three; max_rollout_spend_usd caps `rollout` alone."""

    rollout: Usage = Field(default_factory=Usage)
    proposal: Usage = Field(default_factory=Usage)
    judge: Usage = Field(default_factory=Usage)

    def add(self, category: Category, usage: Usage) -> None:
        setattr(self, category, getattr(self, category).plus(usage))

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total(self) -> Usage:
        return self.rollout.plus(self.proposal).plus(self.judge)


class Counters(BaseModel):
    trials: int = 0
    rollouts: int = 0
    rollout_errors: int = 0
    consecutive_errors: int = 0
    errors_by_kind: dict[str, int] = Field(default_factory=dict)
    # Failed attempts whose seed was run again (an app blip, an outage): counted as rollouts and by kind,
    # but not as errors, so a blip cannot trip max_consecutive_errors; a seed that keeps failing does.
    rerun_errors: int = 0

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

    def record_rerun(self, kind: str | None) -> None:
        self.rollouts += 1
        self.rerun_errors += 1
        if kind:
            self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + 1


ERROR_STOPS = frozenset({"max_consecutive_errors", "max_error_rate"})
BUDGET_STOPS = frozenset(
    {"max_spend_usd", "max_rollout_spend_usd", "max_proposal_spend_usd", "max_token_limit", "budget"}
)
# After these nothing new starts: no trial, no promotion. The final test evaluation still runs (from the
# budget kept back for it) unless the job stopped on errors.
HALTING_STOPS = ERROR_STOPS | BUDGET_STOPS | {"max_duration_minutes", "cancelled"}


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


# Characters per token assumed for prompt text the baseline did not send (a longer instruction, demos): fewer
# than English's ~4, so the estimate errs high.
CHARS_PER_TOKEN = 3.0


def demo_chars(demo: FewShotExample) -> int:
    """What a demo adds to a prompt: its input turn and its answer (as JSON, tool calls included)."""
    return len(demo.input) + len(demo.answer.model_dump_json(exclude_none=True))


def prompt_chars(candidate: CompiledCandidate) -> int:
    """The characters of instruction and demos a candidate's stages send."""
    return sum(len(p.instruction) + sum(demo_chars(d) for d in p.demos) for p in candidate.stages)


def extra_prompt_chars(candidate: CompiledCandidate, baseline: CompiledCandidate) -> int:
    """How many more characters of instruction and demos the candidate sends than the baseline."""
    return max(0, prompt_chars(candidate) - prompt_chars(baseline))


def candidate_estimate(baseline: Usage, extra_chars: int, price: Price | None) -> Usage:
    """Expected usage of one rollout of a candidate whose prompt is `extra_chars` longer than the baseline's,
    from the baseline's measured rollouts (`baseline`: per rollout, `calls` LLM calls each carrying it)."""
    extra_tokens = int(max(1, baseline.calls) * extra_chars / CHARS_PER_TOKEN)
    extra_usd = extra_tokens * price.input_per_mtok / 1_000_000 if price else 0.0
    return Usage(
        calls=baseline.calls,
        prompt_tokens=baseline.prompt_tokens + extra_tokens,
        completion_tokens=baseline.completion_tokens,
        cost_usd=baseline.cost_usd + extra_usd,
    )


def final_reserve(largest: Usage, baseline: Usage, test_seeds: int) -> Usage:
    """What the search keeps back for the final test evaluation: the largest candidate and the baseline on
    every test seed, with the safety margin."""
    return scaled(largest, test_seeds * SAFETY).plus(scaled(baseline, test_seeds * SAFETY))


class EvaluationFit(BaseModel):
    """How many of an evaluation's seeds the budget allows, and the hard allowance its interceptor enforces
    (None: no budget is set). `seeds == 0`: the budget is spent, the job stops."""

    seeds: int
    allowance: Usage | None = None


def fit_evaluation(
    term: TerminationConfig, spend: Spend, held: Usage, estimate: Usage | None, seeds: int
) -> EvaluationFit:
    """Shrink an evaluation of `seeds` rollouts to what the budget left after `held` (in flight and the final
    reserve) allows, and size its allowance: enough for the estimate twice over, never more than is free.

    The allowance is enforced by the interceptor call by call, so even a wrong estimate cannot overspend.
    """
    if term.max_spend_usd is None and term.max_rollout_spend_usd is None and term.max_token_limit is None:
        return EvaluationFit(seeds=seeds)
    usd, tokens = remaining_budget(term, spend, held)
    n = seeds
    if estimate is not None and (fit := rollouts_that_fit(estimate, usd, tokens)) is not None:
        n = min(n, fit)
    if (usd is not None and usd <= 0) or (tokens is not None and tokens <= 0):
        n = 0
    if n == 0:
        return EvaluationFit(seeds=0)
    if estimate is None:  # nothing measured yet: take at most half of what is free
        allow_usd = None if usd is None else usd / 2
        allow_tokens = None if tokens is None else tokens / 2
    else:
        share = 2 * SAFETY * n + 8  # + room for the interceptor's per-call upper-bound reservations
        allow_usd = None if usd is None else min(usd, estimate.cost_usd * share)
        allow_tokens = None if tokens is None else min(tokens, estimate.total_tokens * share)
    if allow_usd is None and allow_tokens is None:
        return EvaluationFit(seeds=n)
    allowance = Usage(cost_usd=allow_usd or 0.0, prompt_tokens=int(allow_tokens or 0))
    return EvaluationFit(seeds=n, allowance=allowance)


def proposal_allowance(term: TerminationConfig, spend: Spend, held: Usage) -> float | None:
    """USD a proposal round may spend on the meta-model (None: no USD budget)."""
    limits = []
    if term.max_proposal_spend_usd is not None:
        limits.append(term.max_proposal_spend_usd - spend.proposal.cost_usd)
    if term.max_spend_usd is not None:
        limits.append(term.max_spend_usd - spend.total.cost_usd - held.cost_usd)
    return max(0.0, min(limits)) if limits else None
