"""The two stages' baseline messages, how a stage renders the candidate the request carries, and parsing.

Stage `router` (module `router`): the system instruction and a user turn listing the domains; the answer
is a domain name in plain text. Stage `classifier` (module `classifier`): the system instruction and a user
turn with the query, the routed domain and that domain's intents; the answer is a `banking77_classify`
tool call (banking77's tool). The config's stages must use these stage ids to be told apart by URL.

When the rollout request carries the candidate (`policy.config.prompt_template.prompt_metadata
.pipeline_modules`, as the public synth-ai pipeline apps read it), a stage renders it itself: its
instruction as the system message and its demos as turns before the final user turn, exactly as the
interceptor would, so the interceptor passes the call through unchanged.
"""

from __future__ import annotations

import re
from typing import Any

from mipro.compile import inject_demos
from mipro.taskapps.answers import InvalidModelOutput, first_message
from mipro.taskapps.banking77.prompts import format_intents
from mipro.taskapps.banking77_pipeline.domains import format_domains
from mipro.types import ChatMessage, FewShotExample

ROUTER = "router"
CLASSIFIER = "classifier"
STAGES = (ROUTER, CLASSIFIER)

ROUTER_SYSTEM = (
    "You are the router of a bank's customer support desk. Given a customer message, name the category "
    "of the team that should handle it."
)
ROUTER_USER = (
    "Customer Query: {query}\n\nAvailable Categories:\n{available_domains}\n\n"
    "Reply with the name of one category from the list."
)
CLASSIFIER_SYSTEM = (
    "You are an expert banking assistant that classifies customer queries into banking intents. Given a "
    "customer message and the category it was routed to, respond with exactly one intent label from the "
    "provided list using the `banking77_classify` tool."
)
CLASSIFIER_USER = (
    "Customer Query: {query}\n\nRouted to: {domain}\n\nAvailable Intents:\n{available_intents}\n\n"
    "Classify this query into one of the above banking intents using the tool call."
)
PATTERNS: dict[str, tuple[str, str]] = {
    ROUTER: (ROUTER_SYSTEM, ROUTER_USER),
    CLASSIFIER: (CLASSIFIER_SYSTEM, CLASSIFIER_USER),
}


def router_messages(query: str, domains: list[str]) -> list[dict[str, Any]]:
    user = ROUTER_USER.format(query=query, available_domains=format_domains(domains))
    return [{"role": "system", "content": ROUTER_SYSTEM}, {"role": "user", "content": user}]


def classifier_messages(query: str, domain: str, intents: list[str]) -> list[dict[str, Any]]:
    user = CLASSIFIER_USER.format(query=query, domain=domain, available_intents=format_intents(intents))
    return [{"role": "system", "content": CLASSIFIER_SYSTEM}, {"role": "user", "content": user}]


def candidate_stages(policy_config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The candidate's stages by stage id, from `prompt_template.prompt_metadata.pipeline_modules` (or
    `metadata`); a module without `stages` (the public apps' shape) is one stage named by the module."""
    template = policy_config.get("prompt_template")
    if not isinstance(template, dict):
        return {}
    metadata = template.get("prompt_metadata") or template.get("metadata")
    modules = metadata.get("pipeline_modules") if isinstance(metadata, dict) else None
    out: dict[str, dict[str, Any]] = {}
    for module in modules if isinstance(modules, list) else []:
        if not isinstance(module, dict):
            continue
        stages = module.get("stages")
        if not isinstance(stages, list):
            stages = [{**module, "stage_id": module.get("name") or module.get("module_id")}]
        for stage in stages:
            if isinstance(stage, dict) and isinstance(stage.get("stage_id"), str):
                out[stage["stage_id"]] = stage
    return out


def render_candidate(messages: list[dict[str, Any]], stage: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The stage's messages with the candidate's instruction as the system message and its demos as turns
    before the final user turn (the interceptor's placement); unchanged without a candidate stage."""
    if not stage:
        return messages
    instruction = stage.get("instruction_text")
    out = [ChatMessage.model_validate(m) for m in messages]
    if isinstance(instruction, str) and instruction.strip():
        out[0] = out[0].model_copy(update={"content": instruction.strip()})
    demos = [
        FewShotExample.model_validate(shot["demo"])
        for shot in stage.get("few_shots") or []
        if isinstance(shot, dict) and isinstance(shot.get("demo"), dict)
    ]
    return [m.as_openai() for m in inject_demos(out, demos)]


def parse_domain(response_json: Any, domains: list[str]) -> str | None:
    """The domain the router named: its answer's first line (an `X: ` prefix dropped), else the longest
    domain it mentions; None when it names none."""
    message = first_message(response_json)
    content = message.get("content")
    if not isinstance(content, str) or not content.strip():
        raise InvalidModelOutput("the router answered no text")
    by_lower = {d.lower(): d for d in domains}
    first = content.strip().splitlines()[0].split(":")[-1].strip().strip("`'\".").lower()
    if first in by_lower:
        return by_lower[first]
    named = [d for d in domains if re.search(rf"(?<!\w){re.escape(d)}(?!\w)", content, re.IGNORECASE)]
    return max(named, key=len) if named else None
