"""The instruction-proposal activity: asks the meta-model for new instructions, grounded in demos and scores
(dspy mode: and a data summary and tips; synth/gepa-ai: a system spec), and in the reference corpus.

Each call asks for up to `instructions_per_batch` instructions (one JSON answer); duplicates of existing or
already accepted instructions, unusable answers and short batches are re-asked, up to
`duplicate_retry_limit` extra calls. Every call's tokens and cost are reported.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass, field

import httpx
import structlog
from temporalio import activity

from mipro.activities.resources import WorkerResources, heartbeat_forever
from mipro.activity_models import ProposeInput, ProposeOutput
from mipro.budget import price_usd
from mipro.interceptor.registry import Upstream
from mipro.interceptor.upstream import UpstreamError, forward_chat
from mipro.proposer.meta_prompt import (
    ProposalContext,
    ScoredInstruction,
    build_proposal_messages,
    build_summary_messages,
)
from mipro.proposer.parse import ProposalParseError, is_duplicate, parse_instructions
from mipro.proposer.spec import render_spec
from mipro.proposer.tips import TIPS
from mipro.types import Usage

log = structlog.get_logger("activities.proposals")


class ProposalActivities:
    def __init__(self, resources: WorkerResources) -> None:
        self.res = resources

    @activity.defn(name="propose_instructions")
    async def propose_instructions(self, inp: ProposeInput) -> ProposeOutput:
        upstream = Upstream(
            base_url=inp.meta.inference_url,
            model=inp.meta.model,
            api_key=self.res.secret(inp.meta.api_key_env),
            price=inp.meta_price,
        )
        rng = random.Random(inp.seed)
        tips = sorted(TIPS)
        progress = {"accepted": 0, "calls": 0}
        beat = asyncio.create_task(heartbeat_forever(lambda: dict(progress)))
        try:
            return await self._propose(inp, upstream, rng, tips, progress)
        finally:
            beat.cancel()

    async def _propose(
        self,
        inp: ProposeInput,
        upstream: Upstream,
        rng: random.Random,
        tips: list[str],
        progress: dict[str, int],
    ) -> ProposeOutput:
        per_batch = inp.proposer.instructions_per_batch
        summary, usage = await self._data_summary(inp, upstream, Usage())
        tally = _Tally()
        # ceil(n / per_batch) calls ask for the n instructions, all at once; then up to
        # duplicate_retry_limit more, one at a time, replace duplicates, unusable answers and short batches.
        first = -(-inp.n // per_batch) if inp.n else 0
        plans: list[_CallPlan] = []
        for index in range(first):
            plan = self._plan(inp, summary, rng, tips, index, min(per_batch, inp.n - index * per_batch))
            if not _fits(inp, usage.plus(_planned(plans)), plan):
                break
            plans.append(plan)
        progress.update(calls=len(plans))
        answers = await asyncio.gather(*(self._ask(upstream, inp, p.messages, p.max_tokens) for p in plans))
        for plan, (text, call_usage) in zip(plans, answers, strict=True):
            usage = usage.plus(call_usage)
            tally.take(inp, plan.count, text)
        budget_cut = len(plans) < first
        retries = 0 if budget_cut else inp.duplicate_retry_limit
        for index in range(first, first + retries):
            if len(tally.accepted) >= inp.n:
                break
            progress.update(accepted=len(tally.accepted), calls=index)
            plan = self._plan(inp, summary, rng, tips, index, min(per_batch, inp.n - len(tally.accepted)))
            if not _fits(inp, usage, plan):
                budget_cut = True
                break
            text, call_usage = await self._ask(upstream, inp, plan.messages, plan.max_tokens)
            usage = usage.plus(call_usage)
            tally.take(inp, plan.count, text)
        if budget_cut:
            log.warning("proposal_budget_reached", job_id=inp.job_id, accepted=len(tally.accepted))
        log.info(
            "proposed",
            job_id=inp.job_id,
            stage=inp.stage.stage_id,
            mode=inp.proposer.mode,
            accepted=len(tally.accepted),
            duplicates=tally.duplicates,
            failures=tally.failures,
        )
        return ProposeOutput(
            instructions=tally.accepted,
            usage=usage,
            duplicates_rejected=tally.duplicates,
            failures=tally.failures,
        )

    def _plan(
        self,
        inp: ProposeInput,
        summary: str | None,
        rng: random.Random,
        tips: list[str],
        index: int,
        count: int,
    ) -> _CallPlan:
        """The messages of the index-th proposal call, asking for `count` instructions."""
        settings, profile = inp.proposer, inp.proposer.context
        grounded = settings.grounded_in_spec
        call_tips = [rng.choice(tips) for _ in range(count)] if not grounded else ["none"]
        ctx = ProposalContext(
            task_description=inp.task_description,
            baseline_instruction=inp.stage.baseline_instruction,
            demos=inp.demos,
            data_summary=summary,
            tip=call_tips[0],
            proposal_index=inp.seed * 1000 + index,
            history=[ScoredInstruction(text=t, score=s) for t, s in inp.history],
            failed_examples=inp.failed_examples,
            max_examples=profile.demos,
            mode="synth" if grounded else "dspy",
            spec_text=render_spec(settings.spec, settings.spec_max_tokens) if grounded else None,
            metaprompt=settings.metaprompt if grounded else None,
            stage_id=inp.stage.stage_id,
            count=count,
            batch_tips=call_tips if count > 1 and not grounded else [],
            reference_inputs=inp.reference_inputs,
            max_reference_inputs=profile.reference_inputs,
            max_history_each_side=profile.history_each_side,
            max_failed_examples=profile.failed_examples,
            length_words=settings.length_words,
        )
        messages = build_proposal_messages(ctx)
        max_tokens = settings.max_tokens(inp.meta.max_tokens, count)
        return _CallPlan(count=count, messages=messages, estimate=_estimate(inp, messages, max_tokens))

    async def _data_summary(
        self, inp: ProposeInput, upstream: Upstream, usage: Usage
    ) -> tuple[str | None, Usage]:
        """The dspy proposer's data summary (one meta-model call over the demos), when the effort level
        asks for one and there are demos to summarize. None when it cannot be had."""
        examples = inp.proposer.context.summary_examples
        if inp.proposer.grounded_in_spec or not examples or not inp.demos or not inp.n:
            return None, usage
        messages = build_summary_messages(inp.demos, inp.task_description, max_examples=examples)
        plan = _CallPlan(count=0, messages=messages, estimate=_estimate(inp, messages, inp.meta.max_tokens))
        if not _fits(inp, usage, plan):
            return None, usage
        text, call_usage = await self._ask(upstream, inp, messages, inp.meta.max_tokens)
        summary = (text or "").strip()
        return (summary or None), usage.plus(call_usage)

    async def _ask(
        self, upstream: Upstream, inp: ProposeInput, messages: list[dict], max_tokens: int
    ) -> tuple[str | None, Usage]:
        body = {
            "model": inp.meta.model,
            "messages": messages,
            "temperature": inp.meta.temperature,
            "max_tokens": max_tokens,
        }
        try:
            answer = await forward_chat(self.res.http, upstream, body)
        except (UpstreamError, httpx.HTTPError) as exc:
            log.warning("meta_model_failed", job_id=inp.job_id, error=str(exc))
            return None, Usage()
        raw = answer.get("usage") or {}
        prompt, completion = int(raw.get("prompt_tokens") or 0), int(raw.get("completion_tokens") or 0)
        pricing = {inp.meta.model: inp.meta_price} if inp.meta_price else {}
        usage = Usage(
            calls=1,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost_usd=price_usd(pricing, inp.meta.model, prompt, completion),
        )
        return answer["choices"][0]["message"].get("content"), usage


@dataclass(frozen=True)
class _CallPlan:
    count: int  # instructions asked for
    messages: list[dict]
    estimate: Usage  # a generous upper estimate of the call's usage

    @property
    def max_tokens(self) -> int:
        return self.estimate.completion_tokens


@dataclass
class _Tally:
    """The instructions accepted so far, and what was turned away."""

    accepted: list[str] = field(default_factory=list)
    duplicates: int = 0
    failures: int = 0

    def take(self, inp: ProposeInput, count: int, text: str | None) -> None:
        try:
            instructions = parse_instructions(text or "", count)
        except ProposalParseError:
            self.failures += 1
            return
        for instruction in instructions:
            if len(self.accepted) >= inp.n:
                return
            if any(is_duplicate(instruction, other) for other in [*inp.existing, *self.accepted]):
                self.duplicates += 1
                continue
            self.accepted.append(instruction)


def _planned(plans: list[_CallPlan]) -> Usage:
    total = Usage()
    for plan in plans:
        total = total.plus(plan.estimate)
    return total


def _estimate(inp: ProposeInput, messages: list[dict], max_tokens: int) -> Usage:
    """One meta-model call at a generous upper estimate: 3 characters per prompt token, the full cap."""
    prompt = len(json.dumps(messages)) // 3
    pricing = {inp.meta.model: inp.meta_price} if inp.meta_price else {}
    cost = price_usd(pricing, inp.meta.model, prompt, max_tokens)
    return Usage(calls=1, prompt_tokens=prompt, completion_tokens=max_tokens, cost_usd=cost)


def _fits(inp: ProposeInput, used: Usage, plan: _CallPlan) -> bool:
    """Whether one more meta-model call, at its upper estimate, stays within the allowance."""
    total = used.plus(plan.estimate)
    if inp.max_cost_usd is not None and total.cost_usd > inp.max_cost_usd:
        return False
    return inp.max_tokens is None or total.total_tokens <= inp.max_tokens
