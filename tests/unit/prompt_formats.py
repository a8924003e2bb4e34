"""Prompt formats of task apps other than banking77, shared by the simulated-LLM and proposer tests.

Each format renders a request for a query over a label set (the label list, query prefix and answer format
of the format), and the assistant turn a correct answer takes in it. None of them uses "Intents:" +
"Customer Query:", the only shape the simulated LLM and the proposer read before issue 15.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

LABELS = ["billing", "shipping", "returns", "account_access", "gift_cards", "translate"]
SYSTEM = "You route messages for a support desk."


@dataclass(frozen=True)
class PromptFormat:
    name: str
    user: Callable[[str, list[str]], str]  # the final user turn for a query
    answer: Callable[[str], dict[str, Any]]  # the assistant turn answering a label
    system: str = SYSTEM
    extra: Callable[[list[str]], dict[str, Any]] = lambda labels: {}  # noqa: E731  tools, response_format

    def body(
        self, query: str, labels: list[str] = LABELS, demos: list[tuple[str, str]] = ()
    ) -> dict[str, Any]:
        """The request: system, then (query, label) demos as user/assistant pairs, then the query."""
        turns: list[dict[str, Any]] = [{"role": "system", "content": self.system}]
        for demo_query, demo_label in demos:
            turns += [{"role": "user", "content": self.user(demo_query, labels)}, self.answer(demo_label)]
        turns.append({"role": "user", "content": self.user(query, labels)})
        return {"model": "sim", "temperature": 0.0, "messages": turns, **self.extra(labels)}


def text(content: str) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


def tool_call(name: str, arguments: dict[str, str]) -> dict[str, Any]:
    call = {"id": "c1", "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}
    return {"role": "assistant", "content": None, "tool_calls": [call]}


def _route_tool(labels: list[str]) -> dict[str, Any]:
    parameters = {
        "type": "object",
        "properties": {"team": {"type": "string", "enum": labels}},
        "required": ["team"],
    }
    function = {"name": "route", "parameters": parameters}
    return {"tools": [{"type": "function", "function": function}], "tool_choice": "required"}


def _dspy_system(labels: list[str]) -> str:
    literal = ", ".join(repr(x) for x in labels)
    return (
        "Your input fields are:\n1. `message` (str)\nYour output fields are:\n"
        f"1. `category` (Literal[{literal}])\n"
        "All interactions will be structured in the following way, with the appropriate values filled in.\n\n"
        "[[ ## message ## ]]\n{message}\n\n[[ ## category ## ]]\n{category}\n\n[[ ## completed ## ]]\n"
        "In adhering to this structure, your objective is: Route the message."
    )


FORMATS: list[PromptFormat] = [
    # The format of issue 15 (the CLINC150 app): a comma-separated list after "one of", a prefixed answer.
    PromptFormat(
        "clinc150",
        lambda q, labels: f"Request: {q}\n\nReply with 'Intent: <label>' using one of: {', '.join(labels)}",
        lambda label: text(f"Intent: {label}"),
        system="You are the intent classifier of a virtual assistant.",
    ),
    PromptFormat(
        "bullets, Label: ...",
        lambda q, labels: (
            "Categories:\n"
            + "\n".join(f"- {x}: questions about {x.replace('_', ' ')}" for x in labels)
            + f"\n\nMessage: {q}\n\nAnswer as `Label: ...`."
        ),
        lambda label: text(f"Label: {label}"),
    ),
    PromptFormat(
        "pipes after one of, bare label",
        lambda q, labels: f"Text: {q}\nWhich team is this for? Answer with one of {' | '.join(labels)}.",
        lambda label: text(label),
    ),
    PromptFormat(
        "JSON array, JSON answer",
        lambda q, labels: f"Ticket: {q}",
        lambda label: text(json.dumps({"label": label})),
        system=f"Allowed labels: {json.dumps(LABELS)}. Respond with a JSON object "
        '{"label": "<one of the allowed labels>"} and nothing else.',
    ),
    PromptFormat(
        "tool enum, no list",
        lambda q, labels: f"Customer wrote: {q}",
        lambda label: tool_call("route", {"team": label}),
        extra=_route_tool,
    ),
    PromptFormat(
        "numbered list with descriptions, bare query",
        lambda q, labels: q,
        lambda label: text(label),
        system="Pick the category of the user's message. The categories are:\n"
        + "\n".join(f"{i}. {x} - about {x.replace('_', ' ')}" for i, x in enumerate(LABELS, 1)),
    ),
    PromptFormat(
        "DSPy fields",
        lambda q, labels: (
            f"[[ ## message ## ]]\n{q}\n\nRespond with the corresponding output fields, starting "
            "with the field `[[ ## category ## ]]`, and then ending with the marker for "
            "`[[ ## completed ## ]]`."
        ),
        lambda label: text(f"[[ ## category ## ]]\n{label}\n\n[[ ## completed ## ]]"),
        system=_dspy_system(LABELS),
    ),
    PromptFormat(
        "response_format schema, trailing cue",
        lambda q, labels: (
            f"Classify the sentence into one of: {', '.join(labels)}.\n\nSentence: {q}\nCategory:"
        ),
        lambda label: text(json.dumps({"topic": label})),
        extra=lambda labels: {
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "route",
                    "schema": {"type": "object", "properties": {"topic": {"type": "string", "enum": labels}}},
                },
            }
        },
    ),
]
