"""How few-shot examples are shown to the meta-model: the query part of the input, and the answer.

A bootstrapped `FewShotExample.input` is the whole final user turn the task app sent (for banking77 it
repeats the 77 intents), so the proposer shows only its query part; the answer is the plain content or
the arguments of the tool call(s).
"""

from __future__ import annotations

import json
import re

from mipro.types import ChatMessage, FewShotExample

QUERY_MARKERS: tuple[str, ...] = ("Customer Query", "Query", "Utterance", "Input", "Question")
MAX_INPUT_CHARS = 600

_MARKER = re.compile(
    r"(?im)^[ \t]*(?:\*\*)?(?:" + "|".join(re.escape(m) for m in QUERY_MARKERS) + r")(?:\*\*)?[ \t]*:[ \t]*"
)
_DSPY_FIELD = re.compile(r"(?m)^[ \t]*\[\[ ## (\w+) ## \]\]")
_DSPY_TRAILER = re.compile(r"\n[ \t]*\n(?=Respond with the corresponding output fields)")


def dspy_fields(text: str) -> list[tuple[str, str]]:
    """The `[[ ## name ## ]]` fields of a DSPy-formatted text, in order, with their stripped values."""
    found = list(_DSPY_FIELD.finditer(text))
    out: list[tuple[str, str]] = []
    for index, match in enumerate(found):
        end = found[index + 1].start() if index + 1 < len(found) else len(text)
        value = _DSPY_TRAILER.split(text[match.end() : end], maxsplit=1)[0]
        out.append((match.group(1), value.strip()))
    return out


def _after_marker(text: str) -> str | None:
    match = _MARKER.search(text)
    if match is None:
        return None
    rest = text[match.end() :]
    return re.split(r"\n[ \t]*\n", rest, maxsplit=1)[0].strip() or None


def query_part(text: str) -> str:
    """The query inside a user turn.

    The text after a "Customer Query:" / "Query:" / "Utterance:" / "Input:" / "Question:" line up to a
    blank line; else the first DSPy input field; else the whole text.
    """
    found = _after_marker(text)
    if found is not None:
        return found
    fields = [(name, value) for name, value in dspy_fields(text) if name != "completed"]
    if fields and fields[0][1]:
        return fields[0][1]
    return text.strip()


def _arguments(call: dict[str, object]) -> str:
    function = call.get("function")
    raw = function.get("arguments") if isinstance(function, dict) else None
    if isinstance(raw, str):
        try:
            return json.dumps(json.loads(raw), sort_keys=True)
        except json.JSONDecodeError:
            return raw.strip()
    return json.dumps(raw or {}, sort_keys=True)


def answer_text(answer: ChatMessage) -> str:
    """The answer as shown to the meta-model: the content, or the tool call arguments ("; " joined)."""
    if answer.tool_calls:
        return "; ".join(_arguments(call) for call in answer.tool_calls)
    return (answer.content or "").strip()


def _clip(text: str, limit: int = MAX_INPUT_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def format_example(index: int, example: FewShotExample) -> str:
    """One example block: `<example index="i">`, an Input line and an Output line."""
    return (
        f'<example index="{index}">\n'
        f"Input: {_clip(query_part(example.input))}\n"
        f"Output: {_clip(answer_text(example.answer))}\n"
        "</example>"
    )


def format_examples(examples: list[FewShotExample]) -> str:
    """The `<examples>` section, or a sentence saying there are none."""
    if not examples:
        return "<examples>\nNo task examples provided.\n</examples>"
    blocks = "\n".join(format_example(i + 1, ex) for i, ex in enumerate(examples))
    return f"<examples>\n{blocks}\n</examples>"
