"""Baseline messages, answer parsing and scoring of the CLINC150 example app: plain text, no tools.

The model is asked to reply `Intent: <label>`; the answer is read with a regular expression, so an answer
in another format (a bare label, JSON, a sentence without the prefix) scores 0, like a wrong label. A
reply with no message at all is an invalid output (a failed rollout), not a 0.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from mipro.taskapps.answers import InvalidModelOutput, first_message, score

__all__ = ["ANSWER_RE", "InvalidModelOutput", "Prediction", "build_messages", "parse_prediction", "score"]

SYSTEM_PATTERN = (
    "You are the intent classifier of a virtual assistant. Read the user's request and name the single "
    "intent it expresses, from the list given."
)
USER_PATTERN = "Request: {query}\n\nReply with 'Intent: <label>' using one of: {intents}"
# Test knob (`state_answer_format=False`): the prompt lists the intents but no longer says how to answer,
# while the scorer still wants `Intent: <label>`: a model that answers the bare label scores 0.
UNSTATED_FORMAT_USER_PATTERN = "Request: {query}\n\nIntents: {intents}"
ANSWER_FORMAT = "Intent: <label>"
ANSWER_RE = re.compile(r"\bintent\s*:\s*[`'\"*]*([A-Za-z0-9_]+)", re.IGNORECASE)


class Prediction(BaseModel):
    intent: str | None  # None: the reply holds no `Intent: <label>` line
    content: str


def format_intents(labels: list[str]) -> str:
    """The labels comma-separated, in label order."""
    return ", ".join(labels)


def build_messages(query: str, labels: list[str], state_answer_format: bool = True) -> list[dict[str, str]]:
    """Render the baseline system + user messages for one query."""
    user = USER_PATTERN if state_answer_format else UNSTATED_FORMAT_USER_PATTERN
    return [
        {"role": "system", "content": SYSTEM_PATTERN},
        {"role": "user", "content": user.format(query=query, intents=format_intents(labels))},
    ]


def parse_prediction(response_json: Any) -> Prediction:
    """The label of the first `Intent: <label>` in the reply's text (None when there is none)."""
    message = first_message(response_json)
    content = message.get("content")
    content = content if isinstance(content, str) else ""
    found = ANSWER_RE.search(content)
    return Prediction(intent=found.group(1) if found else None, content=content)
