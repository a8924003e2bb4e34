"""Pre-run estimate of a job: rollouts, LLM calls, tokens and cost, as a range. Nothing is started.

The range comes from the job's structure (pools, iterations, promotions, demos), not from guessing
scores: the minimum assumes no promotion and the baseline staying best; the maximum a promotion after
every iteration and the largest demo sets. Retries of failed rollouts are not included.
"""

from __future__ import annotations

from pydantic import BaseModel

from mipro.budget import price_usd
from mipro.config import JobConfig


class Range(BaseModel):
    low: float
    high: float


class JobEstimate(BaseModel):
    rollouts: Range
    policy_calls: Range
    meta_calls: Range
    tokens: Range
    cost_usd: Range
    capped_by_budget: list[str]
    assumptions: list[str]


def _rollouts(config: JobConfig) -> tuple[int, int]:
    m = config.mipro
    blocks = len(m.online_pool) // m.batch_size
    fixed = len(m.bootstrap_train_seeds) + len(m.val_seeds)
    trials = m.num_iterations * m.num_evaluations_per_iteration * m.batch_size
    baselines = min(m.num_iterations, blocks) * m.batch_size
    promotions = (m.num_iterations // m.validate_every_iterations + 1) * len(m.val_seeds)
    test = len(m.test_pool)
    return fixed + trials + baselines + test, fixed + trials + baselines + promotions + 2 * test


def _meta_calls(config: JobConfig) -> tuple[int, int]:
    m = config.mipro
    stages = len(config.stages())
    first = max(0, m.max_instructions - 1 - len(m.instruction_candidates))
    later = len(m.generate_at_iterations) * max(1, (m.max_instructions - 1) // 2)
    low = stages * (first + later)
    return low, low + stages * (1 + len(m.generate_at_iterations)) * m.duplicate_retry_limit


def estimate_job(config: JobConfig, prompt_tokens: int | None = None) -> JobEstimate:
    """Estimate a job; `prompt_tokens` is the size of one baseline policy prompt once rendered."""
    m, term = config.mipro, config.termination
    assumptions = ["one policy call per rollout; retries of failed rollouts not included"]
    if prompt_tokens is None:
        prompt_tokens = sum(len(p.pattern) for p in config.initial_prompt.messages) // 4
        assumptions.append(
            f"baseline prompt ~{prompt_tokens} tokens from the patterns (placeholders unexpanded: "
            "pass --prompt-tokens for a rendered prompt)"
        )
    completion = config.policy.max_completion_tokens
    largest = 1 + m.max_demo_set_size * len(config.stages())
    r_low, r_high = _rollouts(config)
    c_low, c_high = _meta_calls(config)
    meta_prompt, meta_out = 1500, m.meta.max_tokens
    tokens_low = r_low * (prompt_tokens + 1) + c_low * (meta_prompt + 50)
    tokens_high = r_high * (prompt_tokens * largest + completion) + c_high * (meta_prompt * 2 + meta_out)
    cost_low = price_usd(config.pricing, config.policy.model, r_low * prompt_tokens, r_low) + price_usd(
        config.pricing, m.meta.model, c_low * meta_prompt, c_low * 50
    )
    cost_high = price_usd(
        config.pricing, config.policy.model, r_high * prompt_tokens * largest, r_high * completion
    ) + price_usd(config.pricing, m.meta.model, c_high * meta_prompt * 2, c_high * meta_out)
    assumptions.append(f"meta-model prompt ~{meta_prompt} tokens")
    capped: list[str] = []
    if term.max_spend_usd is not None and cost_high > term.max_spend_usd:
        cost_high, capped = term.max_spend_usd, [*capped, "max_spend_usd"]
    if term.max_token_limit is not None and tokens_high > term.max_token_limit:
        tokens_high, capped = term.max_token_limit, [*capped, "max_token_limit"]
    if term.max_trials_allowed is not None:
        assumptions.append(f"max_trials_allowed={term.max_trials_allowed} may end the search earlier")
    return JobEstimate(
        rollouts=Range(low=r_low, high=r_high),
        policy_calls=Range(low=r_low, high=r_high),
        meta_calls=Range(low=c_low, high=c_high),
        tokens=Range(low=tokens_low, high=tokens_high),
        cost_usd=Range(low=cost_low, high=cost_high),
        capped_by_budget=capped,
        assumptions=assumptions,
    )
