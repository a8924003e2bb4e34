"""The LLM judge: a rollout's score from the task input and the answer the interceptor captured.

The judge (`[prompt_learning.judge]`, `mipro.config.JudgeConfig`) is any OpenAI-compatible chat model. It
is shown the `rubric` (its instructions) as the system message and, as the user message, the rollout's task
input (the final user turn of the rollout's last answered LLM call, as the task app sent it to the
interceptor) and the model's answer to it (its text, and its tool calls as `name(arguments)`). It must
answer with the score alone: a number in [0, 1] (`0`, `1`, `0.75`, `.5`), or a JSON object whose `score` is
one (`{"score": 0.75}`, other keys allowed). Anything else, a number outside [0, 1] included, is a
`judge_unparseable` error of the rollout: never a score.

When it is asked (`mode`): "fallback" only for rollouts whose task app sends no reward; "blend" and "judge"
for every rollout. The score is the judge's in "fallback" and "judge", `weight * judge + (1 - weight) *
reward` in "blend".

Its calls are the evaluation's like the policy's: each reserves an upper bound of its usage (the prompt's
UTF-8 bytes plus a per-message allowance, and `max_tokens`) against the evaluation's allowance in the
worker's interceptor registry before it is sent (refused: the rollout is a `budget` error), and settles at
the usage the judge reports, priced with the job's `pricing` (else the built-in price of the model). An
upstream failure is retried like the interceptor's calls (429 honouring Retry-After, 5xx, timeouts,
malformed bodies: 4 attempts) and then the judge call again, up to `rollout_retries` times, without re-running
the rollout; if it still fails the rollout is an `llm_error` (a transient error, re-run by the workflow).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from mipro.budget import price_usd
from mipro.config import JudgeConfig
from mipro.interceptor.registry import CallRecord, Registry, Upstream
from mipro.interceptor.upstream import UpstreamError, send_chat
from mipro.types import ChatMessage, ErrorKind, Usage

JUDGE_FORMAT = (
    "Reply with the score only: one number from 0 to 1 (for example 0.75), with no other text. "
    "Any other reply is discarded."
)
RESERVE_POLL_SECONDS = 0.02  # while only other calls' reservations stand in the way of the judge's
_NUMBER = re.compile(r"\+?(?:\d+(?:\.\d*)?|\.\d+)")
Mode = Literal["fallback", "blend", "judge"]


class JudgeFailure(Exception):
    """The judge gave no score: `kind` is the rollout's error kind, `usage` what its calls spent."""

    def __init__(self, kind: ErrorKind, detail: str, usage: Usage | None = None, retryable: bool = False):
        super().__init__(detail)
        self.kind = kind
        self.usage = usage or Usage()
        self.retryable = retryable


@dataclass(frozen=True)
class Verdict:
    score: float
    usage: Usage


def needs_judge(mode: Mode, reward: float | None) -> bool:
    """Whether the judge is asked about a rollout whose task app sent `reward` (None: none)."""
    return mode != "fallback" or reward is None


def scores_without_reward(judge: JudgeConfig | None) -> bool:
    """Whether a rollout without a reward can still be scored: by the judge in fallback or judge mode."""
    return judge is not None and judge.mode in ("fallback", "judge")


def combine(mode: Mode, weight: float, reward: float | None, judged: float) -> float:
    """The rollout's score from the task app's reward and the judge's score."""
    if mode == "blend":
        if reward is None:
            raise ValueError("blend needs the task app's reward")
        return weight * judged + (1.0 - weight) * reward
    if mode == "fallback" and reward is not None:
        return reward
    return judged


def parse_score(text: str | None) -> float:
    """The judge's score, read strictly: a bare number, or a JSON object with a numeric `score`, in [0, 1].
    Raises ValueError saying why otherwise."""
    if text is None:
        raise ValueError("the judge's answer has no text")
    stripped = text.strip()
    value: Any = None
    if _NUMBER.fullmatch(stripped):
        value = float(stripped)
    elif stripped.startswith("{"):
        try:
            body = json.loads(stripped)
        except ValueError:
            raise ValueError(f"not a number, nor JSON: {stripped[:80]!r}") from None
        value = body.get("score") if isinstance(body, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"JSON without a numeric score: {stripped[:80]!r}")
    else:
        raise ValueError(f"not a number: {stripped[:80]!r}")
    value = float(value)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"score {value:g} is outside [0, 1]")
    return value


def answer_text(answer: ChatMessage) -> str:
    """The model's answer as the judge reads it: its text, then each tool call as `name(arguments)`."""
    parts = [answer.content.strip()] if answer.content and answer.content.strip() else []
    for call in answer.tool_calls or []:
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        arguments = function.get("arguments", "")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, sort_keys=True)
        parts.append(f"{function.get('name', '')}({arguments})")
    return "\n".join(parts)


def judged_turn(calls: list[CallRecord]) -> tuple[str, str] | None:
    """(task input, answer) of the rollout's last answered LLM call: its final user turn as the task app
    sent it, and the model's answer. None when no call has both."""
    for call in reversed(calls):
        if call.answer is None:
            continue
        users = [m for m in call.request_messages if m.role == "user" and m.content]
        if users:
            return users[-1].content or "", answer_text(call.answer)
    return None


def judge_messages(rubric: str, task_input: str, answer: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": f"{rubric.strip()}\n\n{JUDGE_FORMAT}"},
        {
            "role": "user",
            "content": f"Task input:\n{task_input}\n\nAnswer to score:\n{answer or '(empty answer)'}",
        },
    ]


def request_body(judge: JudgeConfig, task_input: str, answer: str) -> dict[str, Any]:
    return {
        "model": judge.model,
        "messages": judge_messages(judge.rubric, task_input, answer),
        "temperature": judge.temperature,
        "max_tokens": judge.max_tokens,
    }


def _cost(upstream: Upstream, prompt: int, completion: int) -> Usage:
    pricing = {upstream.model: upstream.price} if upstream.price else {}
    cost = price_usd(pricing, upstream.model, prompt, completion)
    return Usage(calls=1, prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost)


def upper_estimate(upstream: Upstream, body: dict[str, Any]) -> Usage:
    """An upper bound of the call's usage, as the interceptor bounds the policy's: tokens never outnumber
    the prompt's UTF-8 bytes (plus a per-message allowance); the completion is capped at max_tokens."""
    messages = body.get("messages", [])
    prompt = len(json.dumps(messages, ensure_ascii=False).encode()) + 8 * len(messages) + 16
    return _cost(upstream, prompt, int(body.get("max_tokens") or 1024))


def _count(value: Any) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**9
    return value if ok else None


def reported_usage(upstream: Upstream, data: dict[str, Any], fallback: Usage) -> Usage:
    """The call's usage as the judge reports it; the upper estimate when the report is unreadable."""
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    prompt, completion = _count(usage.get("prompt_tokens", 0)), _count(usage.get("completion_tokens", 0))
    if prompt is None or completion is None:
        return fallback
    return _cost(upstream, prompt, completion)


async def _reserve(registry: Registry, version: str, estimate: Usage) -> str:
    while (verdict := registry.reserve(version, estimate)) == "wait":
        await asyncio.sleep(RESERVE_POLL_SECONDS)
    return verdict


async def ask_judge(
    http: httpx.AsyncClient,
    registry: Registry,
    version: str,
    upstream: Upstream,
    judge: JudgeConfig,
    task_input: str,
    answer: str,
) -> Verdict:
    """One judge call, within the evaluation's allowance (registered under `version`)."""
    body = request_body(judge, task_input, answer)
    estimate = upper_estimate(upstream, body)
    if await _reserve(registry, version, estimate) != "ok":
        raise JudgeFailure("budget", "the judge's call could exceed the evaluation's budget allowance")
    spent = Usage()
    try:
        completion = await send_chat(http, upstream, body)
        spent = reported_usage(upstream, completion.data, estimate)
    except UpstreamError as exc:
        raise JudgeFailure("llm_error", f"judge: {exc}", retryable=True) from None
    finally:
        registry.settle(version, estimate, spent)
    message = completion.data["choices"][0]["message"]
    try:
        score = parse_score(message.get("content"))
    except ValueError as exc:
        raise JudgeFailure("judge_unparseable", f"judge answer unparseable: {exc}", spent) from None
    return Verdict(score=score, usage=spent)


async def judge_rollout(
    http: httpx.AsyncClient,
    registry: Registry,
    version: str,
    upstream: Upstream,
    judge: JudgeConfig,
    calls: list[CallRecord],
    attempts: int,
) -> Verdict:
    """The judge's score of a rollout from its LLM calls; a failing judge is asked again (`attempts` in
    all, with backoff) without re-running the rollout. Raises JudgeFailure with what all attempts spent."""
    turn = judged_turn(calls)
    if turn is None:
        raise JudgeFailure("no_reward", "no reward, and no captured LLM answer for the judge to score")
    spent = Usage()
    for attempt in range(1, attempts + 1):
        try:
            verdict = await ask_judge(http, registry, version, upstream, judge, *turn)
        except JudgeFailure as failure:
            spent = spent.plus(failure.usage)
            if not failure.retryable or attempt == attempts:
                raise JudgeFailure(failure.kind, str(failure), spent) from None
            await asyncio.sleep(min(0.25 * 2 ** (attempt - 1), 4.0))
            continue
        return Verdict(score=verdict.score, usage=spent.plus(verdict.usage))
    raise AssertionError("unreachable")
