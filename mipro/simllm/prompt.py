"""Reading a chat-completions request the way the simulated policy model "understands" it.

It finds the allowed labels, the query of the final user turn, the demos (earlier user/assistant
pairs) and the hint words that instruction lines give for single labels. Pure functions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from mipro.proposer.examples import dspy_fields, query_part
from mipro.simllm.text import hint_stems, label_stems

_LIST_HEADER = re.compile(
    r"^[ \t]*(?:\*\*)?(?:the[ \t]+)?(?:available|allowed|possible|valid|candidate)?[ \t]*"
    r"(?:intents|labels|categories|classes|intent labels)(?:\*\*)?[ \t]*:[ \t]*(.*)$",
    re.IGNORECASE,
)
_LIST_ITEM = re.compile(r"^[ \t]*(?:\d+[.)]|[-*\u2022])[ \t]+(.+?)[ \t]*$")
_LITERAL = re.compile(r"Literal\[([^\]]*)\]")
_QUOTED = re.compile(r"'([^']*)'|\"([^\"]*)\"")
_RULE_LABEL = re.compile(
    r"\b(?:intent|label|category|class|answer)\s+(?:is|=|should be)\s+[`'\"]?([\w?\-]+)", re.IGNORECASE
)


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


def _clean_item(item: str) -> str:
    item = re.split(r"\s+[-\u2013:]\s+|:\s", item, maxsplit=1)[0]
    return item.strip().strip("`'\"*").strip()


def _labels_after_header(text: str) -> list[str]:
    labels: list[str] = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        header = _LIST_HEADER.match(line)
        if header is None:
            continue
        inline = header.group(1).strip()
        if inline:
            return [_clean_item(x) for x in inline.split(",") if _clean_item(x)]
        for item_line in lines[index + 1 :]:
            item = _LIST_ITEM.match(item_line)
            if item is None:
                if labels or item_line.strip():
                    break
                continue
            labels.append(_clean_item(item.group(1)))
        if labels:
            return labels
    return labels


def _labels_from_literal(text: str) -> list[str]:
    match = _LITERAL.search(text)
    if match is None:
        return []
    return [a or b for a, b in _QUOTED.findall(match.group(1)) if a or b]


def _labels_from_tools(tools: list[Any] | None) -> list[str]:
    for tool in tools or []:
        props = (tool.get("function") or {}).get("parameters", {}).get("properties", {})
        for spec in props.values() if isinstance(props, dict) else []:
            if isinstance(spec, dict) and isinstance(spec.get("enum"), list):
                return [str(v) for v in spec["enum"]]
    return []


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(x for x in items if x))


def _final_user_index(messages: list[dict[str, Any]]) -> int | None:
    return next((i for i in range(len(messages) - 1, -1, -1) if messages[i].get("role") == "user"), None)


def extract_query(text: str) -> str:
    """The query of a user turn (see `mipro.proposer.examples.query_part`)."""
    return query_part(text)


def label_of_answer(message: dict[str, Any]) -> str | None:
    """The label an assistant turn answered: tool call arguments, DSPy output field, or the content."""
    for call in message.get("tool_calls") or []:
        raw = (call.get("function") or {}).get("arguments")
        try:
            args = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError:
            continue
        if isinstance(args, dict):
            found = next((v for v in args.values() if isinstance(v, str) and v.strip()), None)
            if found:
                return found.strip()
    text = message_text(message).strip()
    fields = [(n, v) for n, v in dspy_fields(text) if n not in ("completed", "reasoning", "rationale")]
    if fields:
        return fields[0][1].splitlines()[0].strip() if fields[0][1] else None
    return text.splitlines()[0].strip() if text else None


def find_demos(messages: list[dict[str, Any]]) -> tuple[Demo, ...]:
    """(query, label) pairs of the user/assistant turn pairs before the final user turn."""
    final = _final_user_index(messages)
    demos: list[Demo] = []
    for index, message in enumerate(messages[: final or 0]):
        if message.get("role") != "user" or index + 1 >= len(messages):
            continue
        reply = messages[index + 1]
        label = label_of_answer(reply) if reply.get("role") == "assistant" else None
        if label:
            demos.append(Demo(query=extract_query(message_text(message)), label=label))
    return tuple(demos)


def find_labels(
    messages: list[dict[str, Any]], tools: list[Any] | None, demos: tuple[Demo, ...]
) -> tuple[str, ...]:
    """The allowed labels: a list after a "Labels:"-like line, a Literal[...], a tool enum, else seen."""
    final = _final_user_index(messages)
    ordered = ([messages[final]] if final is not None else []) + messages
    texts = [message_text(m) for m in ordered if m.get("role") in ("system", "user", "developer")]
    for finder in (_labels_after_header, _labels_from_literal):
        for text in texts:
            found = _unique(finder(text))
            if found:
                return found
    from_tools = _unique(_labels_from_tools(tools))
    if from_tools:
        return from_tools
    ruled = [m.group(1) for text in texts for m in _RULE_LABEL.finditer(text)]
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


def read_prompt(messages: list[dict[str, Any]], tools: list[Any] | None = None) -> PromptView:
    """Everything the simulated classifier uses from a request."""
    final = _final_user_index(messages)
    query = extract_query(message_text(messages[final])) if final is not None else ""
    demos = find_demos(messages)
    labels = find_labels(messages, tools, demos)
    hints = find_hints(_instruction_texts(messages, query), labels)
    return PromptView(labels, query, demos, hints, prompt_chars(messages, tools))
