"""Reading a chat-completions request the way the simulated policy model "understands" it.

It finds the allowed labels (`mipro.simllm.labels`, any common list shape), the query of the final user
turn (`mipro.proposer.query`, whatever its prefix), the demos (earlier user/assistant pairs, answered in any
format: tool call, `Intent: <label>`, JSON, DSPy fields, bare label) and the hint words that instruction
lines give for single labels. Pure functions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from mipro.proposer.query import dspy_fields, query_part
from mipro.simllm.labels import TEXT_FINDERS, labels_in_response_format, labels_in_tools
from mipro.simllm.text import hint_stems, label_stems

_RULE_LABEL = re.compile(
    r"\b(?:intent|label|category|class|answer)\s+(?:is|=|should be)\s+[`'\"]?([\w?\-]+)", re.IGNORECASE
)
_PREFIXED = re.compile(r"^[ \t]*(?:\*\*)?[A-Za-z][\w \-]{0,30}?(?:\*\*)?[ \t]*:(?:\*\*)?[ \t]*(\S.*)$")
_ANSWER_KEYS = ("intent", "label", "category", "class", "answer", "topic")


@dataclass(frozen=True)
class Demo:
    """One demonstration found in the prompt: its query and the label it was answered with."""

    query: str
    label: str


@dataclass(frozen=True)
class PromptView:
    """What the simulated model reads from a request."""

    labels: tuple[str, ...]
    query: str
    demos: tuple[Demo, ...] = ()
    hints: dict[str, frozenset[str]] = field(default_factory=dict)
    chars: int = 0


def message_text(message: dict[str, Any]) -> str:
    """The text of a message: its content string, or its text parts joined."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def prompt_chars(messages: list[dict[str, Any]], tools: list[Any] | None) -> int:
    """The size of the prompt in characters: every message's text and tool calls, plus the tools."""
    total = sum(len(message_text(m)) + len(json.dumps(m.get("tool_calls") or "")) for m in messages)
    return total + (len(json.dumps(tools)) if tools else 0)


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(x for x in items if x))


def _final_user_index(messages: list[dict[str, Any]]) -> int | None:
    return next((i for i in range(len(messages) - 1, -1, -1) if messages[i].get("role") == "user"), None)


def extract_query(text: str) -> str:
    """The query of a user turn (see `mipro.proposer.query.query_part`)."""
    return query_part(text)


def _first_string(values: dict[str, Any]) -> str | None:
    keyed = [values.get(k) for k in _ANSWER_KEYS] + list(values.values())
    found = next((v for v in keyed if isinstance(v, str) and v.strip()), None)
    return found.strip() if found else None


def _json_object(text: str) -> dict[str, Any] | None:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        value = json.loads(text[start : end + 1])
    except (json.JSONDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def raw_answer(message: dict[str, Any]) -> str | None:
    """What an assistant turn answered: tool call arguments, DSPy output field, JSON value, the value of
    an `Intent: <label>`-style line, or the first line of the content."""
    for call in message.get("tool_calls") or []:
        raw = (call.get("function") or {}).get("arguments")
        try:
            args = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError:
            continue
        if isinstance(args, dict) and (found := _first_string(args)):
            return found
    text = message_text(message).strip()
    fields = [(n, v) for n, v in dspy_fields(text) if n not in ("completed", "reasoning", "rationale")]
    if fields:
        return fields[0][1].splitlines()[0].strip() if fields[0][1] else None
    if (obj := _json_object(text)) is not None and (found := _first_string(obj)):
        return found
    first = text.splitlines()[0].strip() if text else ""
    prefixed = _PREFIXED.match(first)
    return (prefixed.group(1).strip().strip("`'\"").strip() if prefixed else first) or None


def canonical_label(answer: str, labels: tuple[str, ...]) -> str:
    """The allowed label an answer names: itself, else the longest label it mentions, else the answer."""
    by_lower = {x.lower(): x for x in labels}
    if answer.lower() in by_lower:
        return by_lower[answer.lower()]
    pattern = _label_pattern(labels)
    named = [m.group(1) for m in pattern.finditer(answer)] if pattern else []
    return by_lower[max(named, key=len).lower()] if named else answer


def label_of_answer(message: dict[str, Any], labels: tuple[str, ...] = ()) -> str | None:
    """The label an assistant turn answered, matched to the allowed labels when they are known."""
    raw = raw_answer(message)
    return canonical_label(raw, labels) if raw else None


def find_demos(messages: list[dict[str, Any]], labels: tuple[str, ...] = ()) -> tuple[Demo, ...]:
    """(query, label) pairs of the user/assistant turn pairs before the final user turn."""
    final = _final_user_index(messages)
    demos: list[Demo] = []
    for index, message in enumerate(messages[: final or 0]):
        if message.get("role") != "user" or index + 1 >= len(messages):
            continue
        reply = messages[index + 1]
        label = label_of_answer(reply, labels) if reply.get("role") == "assistant" else None
        if label:
            demos.append(Demo(query=extract_query(message_text(message)), label=label))
    return tuple(demos)


def _label_texts(messages: list[dict[str, Any]], query: str) -> list[str]:
    """The texts a label list may sit in: the final user turn (less its query) first, then the others."""
    final = _final_user_index(messages)
    texts = [message_text(messages[final]).replace(query, " ") if query else ""] if final is not None else []
    texts += [message_text(m) for m in messages if m.get("role") in ("system", "user", "developer")]
    return [t for t in texts if t.strip()]


def prompt_labels(
    messages: list[dict[str, Any]],
    tools: list[Any] | None,
    query: str = "",
    response_format: Any = None,
) -> tuple[str, ...]:
    """The labels the prompt itself lists (text, tool enum or response schema), or ()."""
    texts = _label_texts(messages, query)
    for finder in TEXT_FINDERS:
        for text in texts:
            found = _unique(finder(text))
            if found:
                return found
    return _unique(labels_in_tools(tools)) or _unique(labels_in_response_format(response_format))


def labels_seen(messages: list[dict[str, Any]], demos: tuple[Demo, ...], query: str = "") -> tuple[str, ...]:
    """When the prompt lists no labels: the labels its demos answered and its rule lines name."""
    ruled = [m.group(1) for text in _label_texts(messages, query) for m in _RULE_LABEL.finditer(text)]
    return _unique([d.label for d in demos] + ruled)


def _label_pattern(labels: tuple[str, ...]) -> re.Pattern[str] | None:
    if not labels:
        return None
    alternatives = "|".join(re.escape(x) for x in sorted(labels, key=len, reverse=True))
    return re.compile(rf"(?<![\w])({alternatives})(?![\w])", re.IGNORECASE)


def find_hints(texts: list[str], labels: tuple[str, ...]) -> dict[str, frozenset[str]]:
    """Hint words per label from every line that names exactly one label plus other words."""
    pattern = _label_pattern(labels)
    if pattern is None:
        return {}
    canonical = {x.lower(): x for x in labels}
    hints: dict[str, set[str]] = {}
    for line in (ln for text in texts for ln in text.splitlines()):
        named = {canonical[m.group(1).lower()] for m in pattern.finditer(line)}
        if len(named) != 1:
            continue
        label = named.pop()
        stems = hint_stems(pattern.sub(" ", line)) - label_stems(label)
        if stems:
            hints.setdefault(label, set()).update(stems)
    return {label: frozenset(words) for label, words in hints.items()}


def _instruction_texts(messages: list[dict[str, Any]], query: str) -> list[str]:
    final = _final_user_index(messages)
    texts = [message_text(m) for m in messages if m.get("role") in ("system", "developer")]
    if final is not None:
        texts.append(message_text(messages[final]).replace(query, " "))
    return texts


def read_prompt(
    messages: list[dict[str, Any]], tools: list[Any] | None = None, response_format: Any = None
) -> PromptView:
    """Everything the simulated classifier uses from a request."""
    final = _final_user_index(messages)
    query = extract_query(message_text(messages[final])) if final is not None else ""
    listed = prompt_labels(messages, tools, query, response_format)
    demos = find_demos(messages, listed)
    labels = listed or labels_seen(messages, demos, query)
    hints = find_hints(_instruction_texts(messages, query), labels)
    return PromptView(labels, query, demos, hints, prompt_chars(messages, tools))
