"""The answer format the request asks for: a tool call, DSPy output fields, JSON, a prefixed line, or text.

In order: a tool (unless `tool_choice` is "none"); DSPy output fields; JSON, when `response_format` asks
for it or the prompt shows a JSON template (`{"label": "<label>"}`) or says "JSON"; a prefixed line when
the prompt shows one (`Intent: <label>`, `Label: ...`, `Category: {category}`, or a last line "Intent:");
else the bare label. The final user turn is read before the system message.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mipro.proposer.query import query_part
from mipro.simllm.prompt import message_text
from mipro.simllm.text import stable_hash

_FIELD_LIST = re.compile(r"Your output fields are:\s*\n((?:\s*\d+\.\s*`\w+`.*\n?)+)", re.IGNORECASE)
_INPUT_LIST = re.compile(r"Your input fields are:\s*\n((?:\s*\d+\.\s*`\w+`.*\n?)+)", re.IGNORECASE)
_FIELD_NAME = re.compile(r"`(\w+)`")
_MARKER = re.compile(r"\[\[ ## (\w+) ## \]\]")
_LINE_MARKER = re.compile(r"(?m)^\[\[ ## (\w+) ## \]\]")
_REASONING = ("reasoning", "rationale", "thought", "thinking", "explanation")
_PLACEHOLDER = r"(?:<[^<>\n]{1,40}>|\{[^{}\n]{1,40}\}|\[[^\[\]\n]{1,40}\]|(?P<dots>\.\.\.|\u2026))"
_PREFIX_TEMPLATE = re.compile(
    r"(?:^|(?<=[\s'\"`(]))(?P<prefix>[A-Za-z][\w\-]*(?: [A-Za-z][\w\-]*){0,2}):[ \t]*" + _PLACEHOLDER
)
_CUE_LINE = re.compile(r"(?:^|\n)[ \t]*(?P<prefix>[A-Za-z][\w\-]*(?: [A-Za-z][\w\-]*)?):[ \t]*$")
_CUE_WORDS = ("intent", "label", "category", "class", "answer", "topic", "output")
_JSON_TEMPLATE = re.compile(
    r'\{\s*"(?P<key>[A-Za-z_]\w*)"\s*:\s*(?:"[^"\n]*"|' + _PLACEHOLDER.replace("?P<dots>", "") + r")\s*\}"
)
_JSON_WORD = re.compile(r"\bJSON\b")
_KEY_WORDS = ("intent", "label", "category", "class", "topic")


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


def _format_texts(messages: list[dict[str, Any]]) -> list[str]:
    """The final user turn (less its query), then the system/developer messages: where an answer format
    is stated."""
    final = next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), None)
    system = [message_text(m) for m in messages if m.get("role") in ("system", "developer")]
    if final is None:
        return system
    query = query_part(final)
    return [final.replace(query, " ") if query != final.strip() else "", *system]


def _schema_key(response_format: Any) -> str | None:
    spec = response_format.get("json_schema") if isinstance(response_format, dict) else None
    schema = spec.get("schema") if isinstance(spec, dict) else None
    props = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(props, dict) or not props:
        return None
    enums = [k for k, v in props.items() if isinstance(v, dict) and "enum" in v]
    return (enums or list(props))[0]


def json_key(body: dict[str, Any]) -> str | None:
    """The key of the JSON object the request asks for, or None when it asks for no JSON."""
    response_format = body.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    asked = kind in ("json_object", "json_schema")
    if asked and (schema_key := _schema_key(response_format)):
        return schema_key
    texts = _format_texts(body.get("messages") or [])
    for text in texts:
        template = _JSON_TEMPLATE.search(text)
        if template is not None:
            return template.group("key")
    if asked or any(_JSON_WORD.search(t) for t in texts):
        lowered = " ".join(texts).lower()
        return next((w for w in _KEY_WORDS if w in lowered), "label")
    return None


def answer_prefix(messages: list[dict[str, Any]]) -> str | None:
    """The prefix of a prefixed answer line the prompt shows ("Intent" for `Intent: <label>`), or None."""
    for text in _format_texts(messages):
        for template in _PREFIX_TEMPLATE.finditer(text):
            prefix = template.group("prefix")
            if not template.group("dots") or prefix.split()[-1].lower() in _CUE_WORDS:
                return prefix
        cue = _CUE_LINE.search(text.rstrip())
        if cue is not None and cue.group("prefix").split()[-1].lower() in _CUE_WORDS:
            return cue.group("prefix")
    return None


def text_answer(body: dict[str, Any], label: str) -> str:
    """The content answering `label` in the format the request asks for (no tool)."""
    messages = body.get("messages") or []
    fields = dspy_output_fields(messages)
    if fields:
        return dspy_text(fields, label)
    key = json_key(body)
    if key is not None:
        return json.dumps({key: label})
    prefix = answer_prefix(messages)
    return f"{prefix}: {label}" if prefix else label


def answer_message(body: dict[str, Any], label: str, key: str) -> tuple[dict[str, Any], str]:
    """The assistant message answering `label` in the requested format, and its finish reason."""
    function = chosen_tool(body)
    if function is not None:
        return tool_call_message(function, label, key), "tool_calls"
    return {"role": "assistant", "content": text_answer(body, label)}, "stop"


def completion_text(message: dict[str, Any]) -> str:
    """What the completion tokens are counted on: the content or the tool call arguments."""
    calls = message.get("tool_calls") or []
    if calls:
        return "".join(c["function"]["name"] + c["function"]["arguments"] for c in calls)
    return message.get("content") or ""
