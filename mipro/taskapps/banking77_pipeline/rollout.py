"""One two-stage rollout: the router picks a domain, the classifier the intent within it; both call the
policy LLM through `inference_url` (with the stage in the URL: `.../stage/<stage_id>/chat/completions`);
the reward is the final intent's correctness.

A router answer naming no domain routes the query to every intent (`routed: false` in the step info): the
classifier still answers, over the whole list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from mipro.taskapps.banking77.data import Banking77Data
from mipro.taskapps.banking77.prompts import CLASSIFY_TOOL, InvalidModelOutput, parse_prediction, score
from mipro.taskapps.banking77.rollout import pick_row
from mipro.taskapps.banking77_pipeline.domains import domains_for
from mipro.taskapps.banking77_pipeline.prompts import (
    CLASSIFIER,
    ROUTER,
    candidate_stages,
    classifier_messages,
    parse_domain,
    render_candidate,
    router_messages,
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
    upstream_error,
)
from mipro.taskapps.urls import stage_chat_url

APP_ID = "banking77_pipeline"


@dataclass(frozen=True)
class PipelineData:
    """The data and how this app instance calls the LLM: with the stage in the URL (`stage_urls`), and
    rendering the candidate the request carries (`read_prompt_template`)."""

    banking77: Banking77Data
    stage_urls: bool = True
    read_prompt_template: bool = True

    @property
    def domains(self) -> dict[str, list[str]]:
        return domains_for(self.banking77.labels)


async def _call(
    client: httpx.AsyncClient,
    cfg: PolicyConfig,
    stage_id: str,
    messages: list[dict[str, Any]],
    api_key: str | None,
    stage_urls: bool,
    **extra: Any,
) -> Any:
    url = stage_chat_url(chat_url(cfg), stage_id) if stage_urls else chat_url(cfg)
    return await call_llm(client, url, llm_body(cfg, messages, **extra), api_key)


def _module(
    stage_id: str, messages: list[dict[str, Any]], response: Any, predicted: str | None
) -> dict[str, Any]:
    return {"module": stage_id, "stage_id": stage_id, "messages": messages, "response": response,
            "predicted": predicted}  # fmt: skip


async def run_rollout(
    req: RolloutRequest, data: PipelineData, client: httpx.AsyncClient, api_key: str | None
) -> RolloutResponse:
    """Run the two stages; `api_key` is the inbound key, forwarded to the LLM as X-API-Key."""
    split = str(req.env.config.get("split") or DEFAULT_SPLIT)
    idx, row = pick_row(data.banking77, split, req.env.seed or 0)
    cfg = policy_config(req)
    candidate = candidate_stages(req.policy.config) if data.read_prompt_template else {}
    domains = data.domains

    routing = render_candidate(router_messages(row.text, list(domains)), candidate.get(ROUTER))
    routed = await _call(client, cfg, ROUTER, routing, api_key, data.stage_urls)
    try:
        domain = parse_domain(routed, list(domains))
    except InvalidModelOutput as exc:
        raise upstream_error("upstream_invalid_output", f"router: {exc}") from exc
    intents = domains[domain] if domain else list(data.banking77.labels)

    shown = domain or "unknown"
    classifying = render_candidate(classifier_messages(row.text, shown, intents), candidate.get(CLASSIFIER))
    tools = {"tools": [CLASSIFY_TOOL], "tool_choice": "required"}
    classified = await _call(client, cfg, CLASSIFIER, classifying, api_key, data.stage_urls, **tools)
    try:
        pred = parse_prediction(classified)
    except InvalidModelOutput as exc:
        raise upstream_error("upstream_invalid_output", f"classifier: {exc}") from exc

    reward = score(pred.intent, row.label)
    modules = [
        _module(ROUTER, routing, routed, domain),
        _module(CLASSIFIER, classifying, classified, pred.intent),
    ]
    obs = {"query": row.text, "index": idx, "split": split, "available_domains": list(domains)}
    info = {
        "expected_intent": row.label,
        "predicted_intent": pred.intent,
        "predicted_domain": domain,
        "routed": domain is not None,
        "correct": reward == 1.0,
        "messages": routing,
        "tool_calls": pred.tool_calls,
    }
    step = RolloutStep(obs=obs, tool_calls=pred.tool_calls, reward=reward, done=True, info=info)
    result = one_step_response(req, f"{APP_ID}::{split}::{idx}", step, reward, ops_executed=3)
    result.pipeline_metadata.update(
        {"modules": modules, "final_intent": pred.intent, "expected_intent": row.label}
    )
    log_rollout(APP_ID, result, row.label, pred.intent)
    return result
