"""One baseline rollout, for the pre-run estimate: the prompt as the task app really renders it.

The task app is sent one rollout (the first bootstrap seed, the baseline prompt) whose LLM calls go
through an interceptor started in this process, so the calls are seen exactly as a job's would be: the
rendered messages, and the usage the LLM reports. It costs one rollout (one policy call for a single-turn
app), paid like any other; nothing is started in Temporal.

Keys are read from this process's environment by name, as a worker reads them (`task_app_api_key_env`,
`policy.api_key_env`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import httpx

from mipro.activity_models import RolloutTarget
from mipro.compile import TOOL_RESULT
from mipro.config import JobConfig
from mipro.estimate import PromptMeasurement
from mipro.interceptor.app import create_app as create_interceptor
from mipro.interceptor.registry import CallRecord, Registry, Upstream
from mipro.proposer.query import query_part
from mipro.rollout_protocol import auth_headers, rollout_payload
from mipro.serving import LoopServer
from mipro.types import ChatMessage, CompiledCandidate, StagePrompt


class ProbeFailed(Exception):
    """The baseline rollout could not be made or measured; the message says why and what to do."""


def message_chars(message: ChatMessage) -> int:
    """A message's size in characters: its text and its tool calls (as JSON)."""
    calls = len(json.dumps(message.tool_calls)) if message.tool_calls else 0
    return len(message.content or "") + calls


def answer_turn_chars(answer: ChatMessage) -> int:
    """The size of the turns a demo with this answer adds after its input (compile._answer_turns)."""
    if not answer.tool_calls:
        return len(answer.content or "")
    return message_chars(answer) + len(TOOL_RESULT) * len(answer.tool_calls)


def measurement_of(calls: list[CallRecord], config: JobConfig, seed: int, where: str) -> PromptMeasurement:
    """What one rollout's LLM calls say about the job's prompts."""
    good = [c for c in calls if c.answer is not None and c.error is None]
    if not good:
        errors = "; ".join(c.error or "" for c in calls if c.error)
        raise ProbeFailed(
            f"the task app's LLM call failed ({errors})" if errors else "the task app made no LLM call"
        )
    last = good[-1]
    users = [m for m in last.sent_messages if m.role == "user" and m.content]
    final_user = users[-1].content or "" if users else ""
    return PromptMeasurement(
        seed=seed,
        calls=len(good),
        prompt_tokens=sum(c.usage.prompt_tokens for c in good),
        completion_tokens=sum(c.usage.completion_tokens for c in good),
        prompt_chars=sum(message_chars(m) for c in good for m in c.sent_messages),
        final_user_chars=len(final_user),
        query_chars=len(query_part(final_user)) if final_user else 0,
        answer_chars=max(answer_turn_chars(c.answer) for c in good if c.answer is not None),
        baseline_instruction_chars=sum(len(s.baseline_instruction) for s in config.known_stages()),
        cost_usd=sum(c.usage.cost_usd for c in good),
        source=where,
    )


async def measure_baseline_prompt(
    config: JobConfig, environ: Mapping[str, str] | None = None, timeout_seconds: float = 60.0
) -> PromptMeasurement:
    """Run one baseline rollout of the first bootstrap seed and measure its LLM calls."""
    env = os.environ if environ is None else environ
    target = RolloutTarget.from_config(config)
    stages = config.known_stages()  # none while the baseline is to be gathered: the calls pass unchanged
    baseline = CompiledCandidate(
        stages=[StagePrompt(stage_id=s.stage_id, instruction=s.baseline_instruction) for s in stages]
    )
    task_key = env.get(config.task_app_api_key_env) if config.task_app_api_key_env else None
    policy = config.policy
    upstream = Upstream(
        base_url=policy.inference_url,
        model=policy.model,
        api_key=env.get(policy.api_key_env) if policy.api_key_env else None,
        price=config.price_of(policy.model),
        timeout_seconds=timeout_seconds,
    )
    registry = Registry()
    version = registry.register(baseline, stages, upstream, caller_key=task_key)
    seed = (config.mipro.bootstrap_train_seeds or config.mipro.online_pool)[0]
    cid = f"trace_dry_run-s{seed}"
    server = await LoopServer(create_interceptor(registry)).start()
    url = target.task_app_url
    try:
        payload = rollout_payload(
            target, seed, f"dry-run-{seed}", cid, f"{server.url}/v1/{version}?cid={cid}"
        )
        async with httpx.AsyncClient() as http:
            try:
                info = await _task_info(http, url, task_key)
                response = await http.post(
                    f"{url}/rollout", json=payload, headers=auth_headers(task_key), timeout=timeout_seconds
                )
            except httpx.HTTPError as exc:
                raise ProbeFailed(f"task app at {url} is unreachable: {type(exc).__name__}: {exc}") from None
        calls = registry.take_records(version, cid)
    finally:
        await server.stop()
    if response.status_code in (401, 403):
        env_name = config.task_app_api_key_env or "ENVIRONMENT_API_KEY"
        have = "is set but refused" if task_key else "is not set in this shell"
        raise ProbeFailed(
            f"task app at {url} refused the rollout ({response.status_code}): {env_name} {have}; "
            "export the key the task app and the worker use"
        )
    if response.status_code >= 400 and not calls:
        raise ProbeFailed(f"task app at {url} answered {response.status_code}: {response.text[:200]}")
    measured = measurement_of(calls, config, seed, f"one baseline rollout of seed {seed} at {url}")
    taskset = info.get("taskset") if isinstance(info.get("taskset"), dict) else {}
    task = info.get("task") if isinstance(info.get("task"), dict) else {}
    description = taskset.get("description") or task.get("description") or taskset.get("name") or ""
    source = taskset.get("source") or (info.get("dataset") or {}).get("source")
    return measured.model_copy(
        update={
            "task_description_chars": len(str(description)),
            "data_source": str(source) if source else None,
        }
    )


async def _task_info(http: httpx.AsyncClient, url: str, key: str | None) -> dict[str, Any]:
    """The task app's /task_info (best effort: {} when it has none); an unreachable app raises."""
    response = await http.get(f"{url}/task_info", headers=auth_headers(key), timeout=10)
    try:
        body = response.json() if response.status_code == 200 else {}
    except ValueError:
        body = {}
    return body if isinstance(body, dict) else {}
