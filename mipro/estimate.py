"""Pre-run estimate of a job: rollouts, LLM calls, tokens and cost, as a range. Nothing is started.

The range comes from the job's structure (pools, iterations, promotions, demos), not from guessing
scores: the minimum assumes no promotion, the baseline staying best and no demos; the maximum a promotion
after every iteration, the largest demo sets in every candidate rollout and instructions as long as the
meta-model may write them. Retries of failed rollouts are not included.

Token sizes come from a `PromptMeasurement`: one baseline rollout measured through an interceptor
(`starter.probe`, what `mipro start --dry-run` does), which gives the prompt as the task app renders it
and as the LLM counts it; a bootstrapped demo is made of the same final user turn and an answer. Without a
measurement, only the config's patterns are known (placeholders unexpanded), and the estimate says so.
"""

from __future__ import annotations

import math

from pydantic import BaseModel

from mipro.budget import price_usd
from mipro.config import JobConfig
from mipro.plan import rollout_plan
from mipro.pricing import price_table
from mipro.proposer.examples import MAX_INPUT_CHARS
from mipro.proposer.meta_prompt import MAX_HISTORY_EACH_SIDE, ProposalContext, build_proposal_messages
from mipro.proposer.profile import context_profile

# A demo's query may be longer than the probe's: up to this many characters, or 4x the probe's query.
QUERY_ALLOWANCE_CHARS = 500
EXAMPLE_TAG_CHARS = 60  # the <example index="i"> wrapper and the Input:/Output: labels of one example


class Range(BaseModel):
    low: float
    high: float


class PromptMeasurement(BaseModel):
    """One baseline rollout's LLM calls, measured (starter.probe): the rendered prompt, as the LLM
    counts it."""

    seed: int
    calls: int  # policy calls in the rollout
    prompt_tokens: int  # over the rollout's calls, as the LLM reported them
    completion_tokens: int
    prompt_chars: int  # the sent messages' text and tool calls (tools schemas not included)
    final_user_chars: int  # the final user turn: what a bootstrapped demo's input is made of
    query_chars: int  # the query inside it
    answer_chars: int  # the answer turns a demo adds (tool call JSON and tool result, or the text)
    baseline_instruction_chars: int
    cost_usd: float = 0.0
    task_description_chars: int = 0  # the task app's description (/task_info), shown to the meta-model
    data_source: str | None = None  # the data the task app says it serves (/task_info), when it says
    source: str  # where it was measured, said in the estimate
    measured: bool = True  # False: read from the config's patterns, placeholders unexpanded

    @property
    def tokens_per_char(self) -> float:
        return self.prompt_tokens / max(1, self.prompt_chars)


class JobEstimate(BaseModel):
    rollouts: Range
    policy_calls: Range
    meta_calls: Range
    tokens: Range
    cost_usd: Range
    capped_by_budget: list[str]
    assumptions: list[str]
    measured: bool = False  # the prompt sizes come from a real baseline rollout
    warnings: list[str] = []


def pattern_measurement(config: JobConfig, prompt_tokens: int | None = None) -> PromptMeasurement:
    """What the config's patterns alone say (placeholders unexpanded); `prompt_tokens` overrides the size."""
    messages = config.initial_prompt.ordered() if config.initial_prompt else []  # none: to be gathered
    chars = sum(len(m.pattern) for m in messages)
    users = [m.pattern for m in messages if m.role == "user"]
    tokens = prompt_tokens if prompt_tokens is not None else math.ceil(chars / 4)
    scale = tokens / max(1, math.ceil(chars / 4))  # a given rendered size scales every part alike
    source = (
        f"--prompt-tokens {prompt_tokens} (no rollout)"
        if prompt_tokens is not None
        else "the config's patterns, placeholders unexpanded (no rollout)"
    )
    return PromptMeasurement(
        seed=0,
        calls=1,
        prompt_tokens=tokens,
        completion_tokens=config.policy.max_completion_tokens,
        prompt_chars=chars,
        final_user_chars=int(len(users[-1]) * scale) if users else 0,
        query_chars=0,
        answer_chars=0,
        baseline_instruction_chars=sum(len(s.baseline_instruction) for s in config.known_stages()),
        source=source,
        measured=prompt_tokens is not None,
    )


class _MetaCalls(BaseModel):
    first_low: int
    later_low: int
    first_high: int
    later_high: int


def _meta_calls(config: JobConfig) -> _MetaCalls:
    """Meta-model calls: ceil(instructions / instructions_per_batch) per stage and round, the re-asks of
    duplicates at the high end, and (dspy mode, when the effort level writes one) a data summary per stage
    and round at the high end (it is skipped when no demo was bootstrapped)."""
    m = config.mipro
    stages = max(1, len(config.known_stages()))  # a gathered baseline is one stage
    per_call = m.instructions_per_batch
    first = max(0, m.max_instructions - 1 - len(m.instruction_candidates))
    rounds = len(m.generate_at_iterations)
    each_later = max(1, (m.max_instructions - 1) // 2)
    summary = int(m.proposer_mode == "dspy" and context_profile(m.proposer_effort).summary_examples > 0)
    first_calls = -(-first // per_call)
    later_calls = rounds * -(-each_later // per_call)
    return _MetaCalls(
        first_low=stages * first_calls,
        later_low=stages * later_calls,
        first_high=stages * (first_calls + m.duplicate_retry_limit + summary) if first else 0,
        later_high=stages * (later_calls + rounds * (m.duplicate_retry_limit + summary)),
    )


def _meta_prompt_chars(config: JobConfig, p: PromptMeasurement) -> tuple[int, int, int]:
    """(fixed, examples, history) characters of a proposal prompt: the part always sent, the most the
    shown examples add (each clipped to MAX_INPUT_CHARS per side), the most a later round's history adds
    (counted in meta-model tokens, not characters)."""
    stages = config.known_stages()
    baseline = stages[0].baseline_instruction if stages else ""  # a gathered one: not known yet
    description = config.mipro.task_description or "x" * p.task_description_chars
    ctx = ProposalContext(task_description=description, baseline_instruction=baseline)
    fixed = sum(len(str(msg["content"])) for msg in build_proposal_messages(ctx))
    examples = ctx.max_examples * (2 * MAX_INPUT_CHARS + EXAMPLE_TAG_CHARS)
    history_tokens = 2 * MAX_HISTORY_EACH_SIDE * (config.mipro.meta.max_tokens + 10)
    return fixed, examples, history_tokens


def estimate_job(
    config: JobConfig, measurement: PromptMeasurement | None = None, prompt_tokens: int | None = None
) -> JobEstimate:
    """Estimate a job from a measured baseline rollout (else the patterns, or `prompt_tokens` given)."""
    m, term = config.mipro, config.termination
    p = measurement or pattern_measurement(config, prompt_tokens)
    rho = p.tokens_per_char
    k = max(1, p.calls)
    completion_cap = config.policy.max_completion_tokens
    assumptions = [
        f"prompt sizes from {p.source}: {p.prompt_tokens:,} prompt tokens in {k} policy call(s)"
        + (f", ${p.cost_usd:.6f}" if p.measured and p.cost_usd else ""),
        "retries of failed rollouts not included; an early stop (budget, time, errors) spends less",
    ]
    warnings: list[str] = []
    if not p.measured:
        warnings.append(
            "the prompt was not measured: placeholders (label lists, inputs) are unexpanded, so tokens and "
            "cost may be far too low; run the dry run with the task app and LLM up (one baseline rollout)"
        )
    # Per policy call, in the LLM's tokens (rho tokens per character of the measured prompt).
    query_allowance = max(4 * p.query_chars, QUERY_ALLOWANCE_CHARS)
    base_high = p.prompt_tokens / k + rho * max(0, query_allowance - p.query_chars)
    base_low = max(1.0, p.prompt_tokens / k - rho * p.query_chars)
    demo_high = rho * (p.final_user_chars - p.query_chars + query_allowance + p.answer_chars) + completion_cap
    proposing = _meta_calls(config)
    writes = proposing.first_high + proposing.later_high > 0
    instruction_high = max(
        [m.meta.max_tokens if writes else 0, *(rho * len(c) for c in m.instruction_candidates)]
    )
    largest_demos = m.max_demo_set_size
    cand_high = base_high + instruction_high + largest_demos * demo_high
    cand_low = max(1.0, base_low - rho * p.baseline_instruction_chars)
    r = rollout_plan(config)
    prompt_low = k * (r.baseline_rollouts * base_low + r.candidate_low * cand_low)
    prompt_high = k * (r.baseline_rollouts * base_high + r.candidate_high * cand_high)
    out_low, out_high = k * r.low * 1, k * r.high * completion_cap
    assumptions.append(
        f"per call: baseline {base_low:,.0f}-{base_high:,.0f} prompt tokens, a candidate up to "
        f"{cand_high:,.0f} ({largest_demos} demos of up to {demo_high:,.0f} tokens, an instruction of up to "
        f"{instruction_high:,.0f}); 1-{completion_cap} completion tokens"
    )
    # The meta-model: its prompt is built here as the proposer builds it, sized with the same tokenizer ratio.
    fixed, examples, history = _meta_prompt_chars(config, p)
    meta_rho = rho if p.measured else 0.25
    meta_low_prompt = meta_rho * fixed
    first_high = meta_rho * (fixed + examples)
    later_high = first_high + history
    meta_prompt_low = (proposing.first_low + proposing.later_low) * meta_low_prompt
    meta_prompt_high = proposing.first_high * first_high + proposing.later_high * later_high
    c_low = proposing.first_low + proposing.later_low
    c_high = proposing.first_high + proposing.later_high
    meta_out_low, meta_out_high = c_low * 1, c_high * m.meta.max_tokens
    assumptions.append(
        f"meta-model prompt {meta_low_prompt:,.0f}-{later_high if proposing.later_high else first_high:,.0f} "
        f"tokens, up to {m.meta.max_tokens} completion tokens"
    )
    tokens_low = prompt_low + out_low + meta_prompt_low + meta_out_low
    tokens_high = prompt_high + out_high + meta_prompt_high + meta_out_high
    policy, meta = config.policy.model, m.meta.model
    prices = price_table(config.pricing)
    cost_low = price_usd(prices, policy, round(prompt_low), out_low) + price_usd(
        prices, meta, round(meta_prompt_low), meta_out_low
    )
    cost_high = price_usd(prices, policy, round(prompt_high), out_high) + price_usd(
        prices, meta, round(meta_prompt_high), meta_out_high
    )
    capped: list[str] = []
    if term.max_spend_usd is not None and cost_high > term.max_spend_usd:
        cost_high, capped = term.max_spend_usd, [*capped, "max_spend_usd"]
    if term.max_token_limit is not None and tokens_high > term.max_token_limit:
        tokens_high, capped = term.max_token_limit, [*capped, "max_token_limit"]
    if term.max_trials_allowed is not None:
        assumptions.append(f"max_trials_allowed={term.max_trials_allowed} may end the search earlier")
    return JobEstimate(
        rollouts=Range(low=r.low, high=r.high),
        policy_calls=Range(low=k * r.low, high=k * r.high),
        meta_calls=Range(low=c_low, high=c_high),
        tokens=Range(low=round(tokens_low), high=round(tokens_high)),
        cost_usd=Range(low=cost_low, high=cost_high),
        capped_by_budget=capped,
        assumptions=assumptions,
        measured=p.measured,
        warnings=warnings,
    )
