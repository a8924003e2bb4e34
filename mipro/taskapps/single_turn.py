"""What every single-turn example task app does around its prompt: read the policy config, call the LLM
through `inference_url` (one call, no streaming), and build the Gen B response of a one-step episode.

Errors are raised as `HTTPException`s with the synth error envelope:
- 400 `missing_policy_fields` / `unknown_split` / `invalid_inference_url` for a bad request;
- 502 `direct_provider_url`, `upstream_unreachable`, `upstream_http_error`, `upstream_bad_json`,
  `upstream_invalid_output` when the LLM call fails. A failed call is a *failed rollout*, never a score of 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import httpx
import structlog
from fastapi import HTTPException

from mipro.taskapps.auth import error_detail
from mipro.taskapps.contract import (
    PolicyConfig,
    RolloutMetrics,
    RolloutRequest,
    RolloutResponse,
    RolloutStep,
    RolloutTrajectory,
)
from mipro.taskapps.urls import extract_trace_correlation_id, is_provider_host, normalize_chat_url

log = structlog.get_logger(__name__)

DEFAULT_SPLIT = "train"
DEFAULT_TEMPERATURE = 0.7  # synth banking77's default when policy.config has no temperature
DEFAULT_MAX_TOKENS = 100  # synth banking77's default when neither max_completion_tokens nor max_tokens is set
_BODY_PREVIEW = 500
RowT = TypeVar("RowT")


def split_rows(split_of: Callable[[str], Sequence[RowT]], split: str) -> Sequence[RowT]:
    """The rows of a split; 400 `unknown_split` for an unknown or empty one."""
    try:
        rows = split_of(split)
    except KeyError as exc:
        raise HTTPException(400, detail=error_detail("unknown_split", str(exc.args[0]))) from exc
    if not rows:
        raise HTTPException(400, detail=error_detail("unknown_split", f"split {split!r} is empty"))
    return rows


def policy_config(req: RolloutRequest) -> PolicyConfig:
    """The request's policy config; 400 `missing_policy_fields` without a model or an inference URL."""
    cfg = PolicyConfig.model_validate(req.policy.config)
    present = {"model": bool(cfg.model), "inference_url": bool(cfg.route_base())}
    missing = [name for name, ok in present.items() if not ok]
    if missing:
        msg = "Missing policy fields in TOML [prompt_learning.policy]: " + ", ".join(missing)
        raise HTTPException(400, detail=error_detail("missing_policy_fields", msg, missing=missing))
    return cfg


def chat_url(cfg: PolicyConfig) -> str:
    """The chat-completions URL to call (query string kept); direct provider hosts are refused."""
    base = cfg.route_base()
    if is_provider_host(base):
        msg = f"Direct provider URL not allowed for policy: {base}"
        raise HTTPException(502, detail=error_detail("direct_provider_url", msg))
    try:
        return normalize_chat_url(base)
    except ValueError as exc:
        raise HTTPException(400, detail=error_detail("invalid_inference_url", str(exc))) from exc


def llm_body(cfg: PolicyConfig, messages: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    """The chat-completions body: the policy's model, temperature and token limit, plus `extra`."""
    return {
        "model": cfg.model,
        "messages": messages,
        "temperature": DEFAULT_TEMPERATURE if cfg.temperature is None else cfg.temperature,
        "max_tokens": cfg.token_limit(DEFAULT_MAX_TOKENS),
        **extra,
    }


def upstream_error(code: str, message: str, **extra: Any) -> HTTPException:
    return HTTPException(502, detail=error_detail(code, message, **extra))


async def call_llm(client: httpx.AsyncClient, url: str, body: dict[str, Any], api_key: str | None) -> Any:
    """POST the chat completion (one call, no streaming) and return the decoded JSON body."""
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["X-API-Key"] = api_key
    try:
        response = await client.post(url, json=body, headers=headers)
    except httpx.HTTPError as exc:
        msg = f"LLM call failed: {type(exc).__name__}: {exc}"
        raise upstream_error("upstream_unreachable", msg, url=url) from exc
    if not response.is_success:
        msg = f"LLM call returned HTTP {response.status_code}"
        preview = response.text[:_BODY_PREVIEW]
        raise upstream_error("upstream_http_error", msg, status=response.status_code, body=preview, url=url)
    try:
        return response.json()
    except ValueError as exc:
        preview = response.text[:_BODY_PREVIEW]
        raise upstream_error("upstream_bad_json", f"LLM response is not JSON: {exc}", body=preview) from exc


def one_step_response(
    req: RolloutRequest, env_id: str, step: RolloutStep, reward: float, ops_executed: int = 2
) -> RolloutResponse:
    """The Gen B response of a one-step episode scored `reward` (1.0 counts as correct)."""
    inference_url = PolicyConfig.model_validate(req.policy.config).route_base()
    cid = extract_trace_correlation_id(req.policy.config, inference_url, req.trace_correlation_id)
    trajectory = RolloutTrajectory(
        env_id=env_id,
        policy_id=req.policy.policy_id or req.policy.policy_name or "policy",
        steps=[step],
        final={"observation": step.obs, "reward": reward},
        length=1,
        inference_url=inference_url,
    )
    metrics = RolloutMetrics(
        episode_returns=[reward],
        mean_return=reward,
        num_steps=1,
        num_episodes=1,
        outcome_score=reward,
        events_score=reward,
        details={"correct": reward == 1.0},
    )
    return RolloutResponse(
        run_id=req.run_id or cid or "rollout",
        trajectories=[trajectory],
        metrics=metrics,
        ops_executed=ops_executed,
        trace_correlation_id=cid,
        pipeline_metadata={"trace_correlation_id": cid, "inference_url": inference_url},
    )


def log_rollout(app_id: str, result: RolloutResponse, expected: str, predicted: str | None) -> None:
    """One info line per finished rollout: run, env id, expected and predicted labels, reward, cid."""
    log.info(
        f"{app_id}.rollout",
        run_id=result.run_id,
        env_id=result.trajectories[0].env_id,
        expected=expected,
        predicted=predicted,
        reward=result.metrics.mean_return,
        cid=result.trace_correlation_id,
    )
