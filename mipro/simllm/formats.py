"""The answer format the request asks for: a tool call, DSPy output fields, or plain text."""

from __future__ import annotations

import json
import re
from typing import Any

from mipro.simllm.prompt import message_text
from mipro.simllm.text import stable_hash

_FIELD_LIST = re.compile(r"Your output fields are:\s*\n((?:\s*\d+\.\s*`\w+`.*\n?)+)", re.IGNORECASE)
_INPUT_LIST = re.compile(r"Your input fields are:\s*\n((?:\s*\d+\.\s*`\w+`.*\n?)+)", re.IGNORECASE)
_FIELD_NAME = re.compile(r"`(\w+)`")
_MARKER = re.compile(r"\[\[ ## (\w+) ## \]\]")
_LINE_MARKER = re.compile(r"(?m)^\[\[ ## (\w+) ## \]\]")
_REASONING = ("reasoning", "rationale", "thought", "thinking", "explanation")


def _function_tools(tools: list[Any] | None) -> list[dict[str, Any]]:
    return [t["function"] for t in tools or [] if isinstance(t, dict) and isinstance(t.get("function"), dict)]


def chosen_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    """The function the model must call, or None when it should answer in text."""
    functions = _function_tools(body.get("tools"))
    choice = body.get("tool_choice")
    if not functions or choice == "none":
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return next((f for f in functions if f.get("name") == name), functions[0])
    return functions[0]


def argument_name(function: dict[str, Any]) -> str:
    """The first required string property of the function's parameters (else any string one)."""
    params = function.get("parameters") or {}
    props = params.get("properties") or {}
    strings = [k for k, v in props.items() if isinstance(v, dict) and v.get("type", "string") == "string"]
    required = [k for k in params.get("required") or [] if k in strings]
    return (required or strings or ["answer"])[0]


def tool_call_message(function: dict[str, Any], label: str, key: str) -> dict[str, Any]:
    arguments = json.dumps({argument_name(function): label})
    call = {
        "id": f"call_{stable_hash(key, 'call'):016x}",
        "type": "function",
        "function": {"name": function.get("name", "answer"), "arguments": arguments},
    }
    return {"role": "assistant", "content": None, "tool_calls": [call]}


def _system_text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(message_text(m) for m in messages if m.get("role") in ("system", "developer"))


def dspy_output_fields(messages: list[dict[str, Any]]) -> list[str]:
    """The output fields a DSPy ChatAdapter-style system message asks for ([] when it asks none)."""
    system = _system_text(messages)
    listed = _FIELD_LIST.search(system)
    if listed:
        return _FIELD_NAME.findall(listed.group(1))
    if "[[ ## completed ## ]]" not in system:
        return []
    inputs = _INPUT_LIST.search(system)
    skip = set(_FIELD_NAME.findall(inputs.group(1))) if inputs else set()
    users = "\n".join(message_text(m) for m in messages if m.get("role") == "user")
    user_fields = set(_LINE_MARKER.findall(users))
    names = [n for n in dict.fromkeys(_MARKER.findall(system)) if n != "completed"]
    return [n for n in names if n not in skip and n not in user_fields]


def dspy_text(fields: list[str], label: str) -> str:
    """A DSPy-formatted answer: the label in the first (non-reasoning) output field."""
    parts = []
    for name in fields:
        value = f"The input best matches {label}." if name.lower() in _REASONING else label
        parts.append(f"[[ ## {name} ## ]]\n{value}")
    return "\n\n".join([*parts, "[[ ## completed ## ]]"])


def answer_message(body: dict[str, Any], label: str, key: str) -> tuple[dict[str, Any], str]:
    """The assistant message answering `label` in the requested format, and its finish reason."""
    function = chosen_tool(body)
    if function is not None:
        return tool_call_message(function, label, key), "tool_calls"
    fields = dspy_output_fields(body.get("messages") or [])
    content = dspy_text(fields, label) if fields else label
    return {"role": "assistant", "content": content}, "stop"


def completion_text(message: dict[str, Any]) -> str:
    """What the completion tokens are counted on: the content or the tool call arguments."""
    calls = message.get("tool_calls") or []
    if calls:
        return "".join(c["function"]["name"] + c["function"]["arguments"] for c in calls)
    return message.get("content") or ""
