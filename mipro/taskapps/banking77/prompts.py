"""Baseline messages, the classify tool, answer parsing and scoring of synth-ai's banking77 app (0.2.24).

The wording is byte-for-byte synth's (research notes §2.4 and §3), because the optimizer matches the baseline
messages an app sends against its `initial_prompt` patterns.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from mipro.taskapps.answers import InvalidModelOutput, first_message, score

__all__ = ["InvalidModelOutput", "Prediction", "build_messages", "parse_prediction", "score"]

TOOL_NAME = "banking77_classify"

SYSTEM_PATTERN = (
    "You are an expert banking assistant that classifies customer queries into banking intents. "
    "Given a customer message, respond with exactly one intent label from the provided list using the "
    "`banking77_classify` tool."
)
USER_PATTERN = (
    "Customer Query: {query}\n\nAvailable Intents:\n{available_intents}\n\n"
    "Classify this query into one of the above banking intents using the tool call."
)
DEFAULT_MESSAGES: list[dict[str, str]] = [
    {"role": "system", "pattern": SYSTEM_PATTERN},
    {"role": "user", "pattern": USER_PATTERN},
]

CLASSIFY_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": TOOL_NAME,
        "description": "Return the predicted banking77 intent label in the `intent` field.",
        "parameters": {
            "type": "object",
            "properties": {"intent": {"type": "string"}},
            "required": ["intent"],
        },
    },
}


class Prediction(BaseModel):
    intent: str
    tool_calls: list[dict[str, Any]]
    content: str


def format_intents(labels: list[str]) -> str:
    """`"1. activate_my_card\\n2. card_arrival\\n…"` over ALL labels, in label order."""
    return "\n".join(f"{i}. {label}" for i, label in enumerate(labels, start=1))


def build_messages(query: str, labels: list[str]) -> list[dict[str, str]]:
    """Render the baseline system + user messages for one query."""
    placeholders = {"query": query, "available_intents": format_intents(labels)}
    return [{"role": m["role"], "content": m["pattern"].format(**placeholders)} for m in DEFAULT_MESSAGES]


def _normalise_tool_calls(raw: Any) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    for call in raw if isinstance(raw, list) else []:
        if not isinstance(call, dict):
            raise InvalidModelOutput(f"Malformed tool call: {str(call)[:200]!r}")
        fn = call.get("function") if isinstance(call.get("function"), dict) else {}
        calls.append(
            {
                "id": call.get("id", ""),
                "type": call.get("type", "function"),
                "function": {"name": fn.get("name", ""), "arguments": fn.get("arguments", "{}")},
            }
        )
    return calls


def _intent_from_call(call: dict[str, Any]) -> str:
    fn = call["function"]
    if fn["name"] != TOOL_NAME:
        raise InvalidModelOutput(f"Unexpected tool name: {fn['name']!r}")
    args = fn["arguments"]
    try:
        parsed = json.loads(args) if isinstance(args, str) else args
    except json.JSONDecodeError as exc:
        raise InvalidModelOutput(f"Tool call arguments not valid JSON: {str(args)[:200]!r}") from exc
    intent = str((parsed or {}).get("intent", "") if isinstance(parsed, dict) else "").strip()
    if not intent:
        raise InvalidModelOutput("Tool call missing 'intent'")
    return intent


def parse_prediction(response_json: Any) -> Prediction:
    """The `intent` of the banking77_classify tool call, else the first token of the message content."""
    message = first_message(response_json)
    tool_calls = _normalise_tool_calls(message.get("tool_calls"))
    content = message.get("content") or ""
    content = content if isinstance(content, str) else json.dumps(content)
    if tool_calls:
        return Prediction(intent=_intent_from_call(tool_calls[0]), tool_calls=tool_calls, content=content)
    if not content.strip():
        raise InvalidModelOutput("Empty model output: no tool_calls and no content")
    return Prediction(intent=content.strip().split()[0], tool_calls=[], content=content)
