"""Reading the policy LLM's answer, shared by the example task apps: the first message, label matching."""

from __future__ import annotations

from typing import Any


class InvalidModelOutput(ValueError):
    """The LLM answered 2xx but with nothing usable (no choices, wrong tool, bad arguments, empty output)."""


def first_message(response_json: Any) -> dict[str, Any]:
    """The message of the first choice of a chat completion; InvalidModelOutput when there is none."""
    if not isinstance(response_json, dict):
        raise InvalidModelOutput("LLM response is not a JSON object")
    choices = response_json.get("choices")
    if not isinstance(choices, list) or not choices:
        raise InvalidModelOutput("LLM response has no choices")
    message = (choices[0] or {}).get("message")
    if not isinstance(message, dict):
        raise InvalidModelOutput("LLM response choice has no message")
    return message


def _norm(label: str) -> str:
    return label.lower().replace("_", " ").strip()


def score(predicted: str | None, expected: str) -> float:
    """1.0 when the labels match ignoring case, underscores-vs-spaces and outer whitespace, else 0.0."""
    return 1.0 if predicted is not None and _norm(predicted) == _norm(expected) else 0.0
