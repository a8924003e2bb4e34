"""One banking77 rollout: pick the row, call the policy LLM through `inference_url`, score, build Gen B.

Errors are raised as `HTTPException`s with the synth error envelope:
- 400 `missing_policy_fields` / `unknown_split` / `invalid_inference_url` for a bad request;
- 502 `direct_provider_url`, `upstream_unreachable`, `upstream_http_error`, `upstream_bad_json`,
  `upstream_invalid_output` when the LLM call fails. A failed call is a *failed rollout*, never a score of 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import structlog
from fastapi import HTTPException

from mipro.taskapps.auth import error_detail
from mipro.taskapps.banking77.data import Banking77Data, Row
from mipro.taskapps.banking77.prompts import (
    CLASSIFY_TOOL,
    InvalidModelOutput,
    Prediction,
    build_messages,
    parse_prediction,
    score,
)
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


@dataclass(frozen=True)
class _Turn:
    """Everything one finished LLM turn produced, for building the response."""

    split: str
    idx: int
    row: Row
    messages: list[dict[str, str]]
    response_json: Any
    pred: Prediction


def pick_row(data: Banking77Data, split: str, seed: int) -> tuple[int, Row]:
    """synth's mapping: `idx = seed % len(split rows)`."""
    try:
        rows = data.split(split)
    except KeyError as exc:
        raise HTTPException(400, detail=error_detail("unknown_split", str(exc.args[0]))) from exc
    if not rows:
        raise HTTPException(400, detail=error_detail("unknown_split", f"split {split!r} is empty"))
    idx = seed % len(rows)
    return idx, rows[idx]


def _policy(req: RolloutRequest) -> PolicyConfig:
    cfg = PolicyConfig.model_validate(req.policy.config)
    present = {"model": bool(cfg.model), "inference_url": bool(cfg.route_base())}
    missing = [name for name, ok in present.items() if not ok]
    if missing:
        msg = "Missing policy fields in TOML [prompt_learning.policy]: " + ", ".join(missing)
        raise HTTPException(400, detail=error_detail("missing_policy_fields", msg, missing=missing))
    return cfg


def _chat_url(cfg: PolicyConfig) -> str:
    base = cfg.route_base()
    if is_provider_host(base):
        msg = f"Direct provider URL not allowed for policy: {base}"
        raise HTTPException(502, detail=error_detail("direct_provider_url", msg))
    try:
        return normalize_chat_url(base)
    except ValueError as exc:
        raise HTTPException(400, detail=error_detail("invalid_inference_url", str(exc))) from exc


def _llm_body(cfg: PolicyConfig, messages: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "model": cfg.model,
        "messages": messages,
        "temperature": DEFAULT_TEMPERATURE if cfg.temperature is None else cfg.temperature,
        "max_tokens": cfg.token_limit(DEFAULT_MAX_TOKENS),
        "tools": [CLASSIFY_TOOL],
        "tool_choice": "required",
    }


def _upstream_error(code: str, message: str, **extra: Any) -> HTTPException:
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
        raise _upstream_error("upstream_unreachable", msg, url=url) from exc
    if not response.is_success:
        msg = f"LLM call returned HTTP {response.status_code}"
        preview = response.text[:_BODY_PREVIEW]
        raise _upstream_error("upstream_http_error", msg, status=response.status_code, body=preview, url=url)
    try:
        return response.json()
    except ValueError as exc:
        preview = response.text[:_BODY_PREVIEW]
        raise _upstream_error("upstream_bad_json", f"LLM response is not JSON: {exc}", body=preview) from exc


def _predict(response_json: Any) -> Prediction:
    try:
        return parse_prediction(response_json)
    except InvalidModelOutput as exc:
        raise _upstream_error("upstream_invalid_output", str(exc)) from exc


def _step(turn: _Turn, labels: list[str], reward: float) -> RolloutStep:
    obs = {"query": turn.row.text, "index": turn.idx, "split": turn.split, "available_intents": labels}
    info = {
        "expected_intent": turn.row.label,
        "predicted_intent": turn.pred.intent,
        "correct": reward == 1.0,
        "messages": turn.messages,
        "response_json": turn.response_json,
        "tool_calls": turn.pred.tool_calls,
    }
    return RolloutStep(obs=obs, tool_calls=turn.pred.tool_calls, reward=reward, done=True, info=info)


def _response(req: RolloutRequest, data: Banking77Data, turn: _Turn) -> RolloutResponse:
    reward = score(turn.pred.intent, turn.row.label)
    correct = reward == 1.0
    inference_url = PolicyConfig.model_validate(req.policy.config).route_base()
    cid = extract_trace_correlation_id(req.policy.config, inference_url, req.trace_correlation_id)
    step = _step(turn, data.labels, reward)
    trajectory = RolloutTrajectory(
        env_id=f"banking77::{turn.split}::{turn.idx}",
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
        details={"correct": correct},
    )
    return RolloutResponse(
        run_id=req.run_id or cid or "rollout",
        trajectories=[trajectory],
        metrics=metrics,
        ops_executed=2,
        trace_correlation_id=cid,
        pipeline_metadata={"trace_correlation_id": cid, "inference_url": inference_url},
    )


async def run_rollout(
    req: RolloutRequest, data: Banking77Data, client: httpx.AsyncClient, api_key: str | None
) -> RolloutResponse:
    """Run one rollout end to end; `api_key` is the inbound key, forwarded upstream as X-API-Key."""
    split = str(req.env.config.get("split") or DEFAULT_SPLIT)
    idx, row = pick_row(data, split, req.env.seed or 0)
    cfg = _policy(req)
    url = _chat_url(cfg)
    messages = build_messages(row.text, data.labels)
    response_json = await call_llm(client, url, _llm_body(cfg, messages), api_key)
    pred = _predict(response_json)
    result = _response(req, data, _Turn(split, idx, row, messages, response_json, pred))
    log.info(
        "banking77.rollout",
        run_id=result.run_id,
        env_id=result.trajectories[0].env_id,
        expected=row.label,
        predicted=pred.intent,
        reward=result.metrics.mean_return,
        cid=result.trace_correlation_id,
    )
    return result
