"""One banking77 rollout: pick the row, call the policy LLM through `inference_url`, score, build Gen B.

Errors are `HTTPException`s with the synth error envelope (`mipro.taskapps.single_turn` lists them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from mipro.taskapps.banking77.data import Banking77Data, Row
from mipro.taskapps.banking77.prompts import (
    CLASSIFY_TOOL,
    InvalidModelOutput,
    Prediction,
    build_messages,
    parse_prediction,
    score,
)
from mipro.taskapps.contract import PolicyConfig, RolloutRequest, RolloutResponse, RolloutStep
from mipro.taskapps.single_turn import (
    DEFAULT_SPLIT,
    call_llm,
    chat_url,
    llm_body,
    log_rollout,
    one_step_response,
    policy_config,
    split_rows,
    upstream_error,
)


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
    rows = split_rows(data.split, split)
    idx = seed % len(rows)
    return idx, rows[idx]


def _llm_body(cfg: PolicyConfig, messages: list[dict[str, str]]) -> dict[str, Any]:
    return llm_body(cfg, messages, tools=[CLASSIFY_TOOL], tool_choice="required")


def _predict(response_json: Any) -> Prediction:
    try:
        return parse_prediction(response_json)
    except InvalidModelOutput as exc:
        raise upstream_error("upstream_invalid_output", str(exc)) from exc


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
    step = _step(turn, data.labels, reward)
    return one_step_response(req, f"banking77::{turn.split}::{turn.idx}", step, reward)


async def run_rollout(
    req: RolloutRequest, data: Banking77Data, client: httpx.AsyncClient, api_key: str | None
) -> RolloutResponse:
    """Run one rollout end to end; `api_key` is the inbound key, forwarded upstream as X-API-Key."""
    split = str(req.env.config.get("split") or DEFAULT_SPLIT)
    idx, row = pick_row(data, split, req.env.seed or 0)
    cfg = policy_config(req)
    url = chat_url(cfg)
    messages = build_messages(row.text, data.labels)
    response_json = await call_llm(client, url, _llm_body(cfg, messages), api_key)
    pred = _predict(response_json)
    result = _response(req, data, _Turn(split, idx, row, messages, response_json, pred))
    log_rollout("banking77", result, row.label, pred.intent)
    return result
