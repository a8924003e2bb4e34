"""How few-shot examples are shown to the meta-model: the query part of the input, and the answer.

A bootstrapped `FewShotExample.input` is the whole final user turn the task app sent (for banking77 it
repeats the 77 intents), so the proposer shows only its query part (`mipro.proposer.query`, whatever the
prompt format); the answer is the plain content or the arguments of the tool call(s).
"""

from __future__ import annotations

import json

from mipro.proposer.query import QUERY_MARKERS, dspy_fields, query_part
from mipro.types import ChatMessage, FewShotExample

__all__ = [
    "QUERY_MARKERS",
    "answer_text",
    "dspy_fields",
    "format_example",
    "format_examples",
    "format_failed_examples",
    "query_part",
]

MAX_INPUT_CHARS = 600


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


def format_example(index: int, example: FewShotExample, tag: str = "example", attrs: str = "") -> str:
    """One example block: `<example index="i">`, an Input line and an Output line."""
    return (
        f'<{tag} index="{index}"{attrs}>\n'
        f"Input: {_clip(query_part(example.input))}\n"
        f"Output: {_clip(answer_text(example.answer))}\n"
        f"</{tag}>"
    )


def format_examples(examples: list[FewShotExample]) -> str:
    """The `<examples>` section, or a sentence saying there are none."""
    if not examples:
        return "<examples>\nNo task examples provided.\n</examples>"
    blocks = "\n".join(format_example(i + 1, ex) for i, ex in enumerate(examples))
    return f"<examples>\n{blocks}\n</examples>"


def format_failed_examples(examples: list[FewShotExample]) -> str:
    """The `<failed_examples>` section: inputs, the answers the LM gave and their (low) scores."""
    blocks = "\n".join(
        format_example(i + 1, ex, "failed_example", f' score="{ex.score:.2f}"')
        for i, ex in enumerate(examples)
    )
    return f"<failed_examples>\n{blocks}\n</failed_examples>"
