"""The instruction-proposal activity: asks the meta-model for new instructions, grounded in demos and scores.

Duplicates of existing or already accepted instructions are rejected and re-asked, up to
`duplicate_retry_limit` extra calls. Every call's tokens and cost are reported.
"""

from __future__ import annotations

import asyncio
import json
import random

import httpx
import structlog
from temporalio import activity

from mipro.activities.resources import WorkerResources, heartbeat_forever
from mipro.activity_models import ProposeInput, ProposeOutput
from mipro.budget import price_usd
from mipro.interceptor.registry import Upstream
from mipro.interceptor.upstream import UpstreamError, forward_chat
from mipro.proposer.meta_prompt import ProposalContext, ScoredInstruction, build_proposal_messages
from mipro.proposer.parse import ProposalParseError, is_duplicate, parse_instruction
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
        accepted: list[str] = []
        usage, duplicates, failures = Usage(), 0, 0
        for index in range(inp.n + inp.duplicate_retry_limit):
            if len(accepted) >= inp.n:
                break
            progress.update(accepted=len(accepted), calls=index)
            ctx = ProposalContext(
                task_description=inp.task_description,
                baseline_instruction=inp.stage.baseline_instruction,
                demos=inp.demos,
                tip=rng.choice(tips),
                proposal_index=inp.seed * 1000 + index,
                history=[ScoredInstruction(text=t, score=s) for t, s in inp.history],
                failed_examples=inp.failed_examples,
            )
            messages = build_proposal_messages(ctx)
            if not _fits(inp, usage, messages):
                log.warning("proposal_budget_reached", job_id=inp.job_id, accepted=len(accepted))
                break
            text, call_usage = await self._ask(upstream, inp, messages)
            usage = usage.plus(call_usage)
            try:
                instruction = parse_instruction(text or "")
            except ProposalParseError:
                failures += 1
                continue
            if any(is_duplicate(instruction, other) for other in [*inp.existing, *accepted]):
                duplicates += 1
                continue
            accepted.append(instruction)
        log.info(
            "proposed",
            job_id=inp.job_id,
            stage=inp.stage.stage_id,
            accepted=len(accepted),
            duplicates=duplicates,
            failures=failures,
        )
        return ProposeOutput(
            instructions=accepted, usage=usage, duplicates_rejected=duplicates, failures=failures
        )

    async def _ask(
        self, upstream: Upstream, inp: ProposeInput, messages: list[dict]
    ) -> tuple[str | None, Usage]:
        body = {
            "model": inp.meta.model,
            "messages": messages,
            "temperature": inp.meta.temperature,
            "max_tokens": inp.meta.max_tokens,
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


def _fits(inp: ProposeInput, used: Usage, messages: list[dict]) -> bool:
    """Whether one more meta-model call, at a generous upper estimate, stays within the allowance."""
    prompt = len(json.dumps(messages)) // 3
    pricing = {inp.meta.model: inp.meta_price} if inp.meta_price else {}
    cost = price_usd(pricing, inp.meta.model, prompt, inp.meta.max_tokens)
    if inp.max_cost_usd is not None and used.cost_usd + cost > inp.max_cost_usd:
        return False
    return inp.max_tokens is None or used.total_tokens + prompt + inp.meta.max_tokens <= inp.max_tokens
