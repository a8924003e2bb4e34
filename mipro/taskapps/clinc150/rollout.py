"""One CLINC150 rollout: pick the row, call the policy LLM through `inference_url`, read `Intent: <label>`
from its text, score, build Gen B.

Errors are `HTTPException`s with the synth error envelope (`mipro.taskapps.single_turn` lists them), plus
400 `seed_out_of_range` for a seed past the split (seeds are never wrapped around).
"""

from __future__ import annotations

from typing import Any

import httpx

from mipro.taskapps.clinc150.data import Clinc150Data
from mipro.taskapps.clinc150.meta import APP_ID, DEFAULT_SPLIT, pick_row
from mipro.taskapps.clinc150.prompts import InvalidModelOutput, Prediction, build_messages, parse_prediction
from mipro.taskapps.clinc150.prompts import score as label_score
from mipro.taskapps.contract import RolloutRequest, RolloutResponse, RolloutStep
from mipro.taskapps.single_turn import (
    call_llm,
    chat_url,
    llm_body,
    log_rollout,
    one_step_response,
    policy_config,
    upstream_error,
)


def _predict(response_json: Any) -> Prediction:
    try:
        return parse_prediction(response_json)
    except InvalidModelOutput as exc:
        raise upstream_error("upstream_invalid_output", str(exc)) from exc


async def run_rollout(
    req: RolloutRequest,
    data: Clinc150Data,
    client: httpx.AsyncClient,
    api_key: str | None,
    state_answer_format: bool = True,
) -> RolloutResponse:
    """Run one rollout end to end; `api_key` is the inbound key, forwarded upstream as X-API-Key."""
    split = str(req.env.config.get("split") or DEFAULT_SPLIT)
    seed = req.env.seed or 0
    row = pick_row(data, split, seed)
    cfg = policy_config(req)
    messages = build_messages(row.text, data.labels, state_answer_format)
    response_json = await call_llm(client, chat_url(cfg), llm_body(cfg, messages), api_key)
    pred = _predict(response_json)
    reward = label_score(pred.intent, row.label)
    info = {
        "expected_intent": row.label,
        "predicted_intent": pred.intent,
        "answer": pred.content,
        "correct": reward == 1.0,
        "messages": messages,
        "response_json": response_json,
    }
    obs = {"query": row.text, "index": seed, "split": split}
    step = RolloutStep(obs=obs, reward=reward, done=True, info=info)
    result = one_step_response(req, f"{APP_ID}::{split}::{seed}", step, reward)
    log_rollout(APP_ID, result, row.label, pred.intent)
    return result
