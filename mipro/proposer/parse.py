"""Parsing the meta-model's reply into an instruction (or several), and deduplicating instructions."""

from __future__ import annotations

import json
import re

MIN_INSTRUCTION_CHARS = 12
MIN_INSTRUCTION_WORDS = 3

_FENCE = re.compile(r"^```[\w-]*[ \t]*\n?(.*?)\n?```$", re.DOTALL)
_DSPY_MARKER = re.compile(r"\[\[ ## \w+ ## \]\]")
_PREFIX = re.compile(
    r"^\s*(?:#+\s*)?(?:\*\*|__)?\s*"
    r"(?:here\s+is\s+(?:the|a|my)\s+)?(?:(?:new|proposed|improved|revised|final|updated)\s+)?"
    r"(?:instruction|prompt)s?\s*(?:\(\w+\))?\s*(?:\*\*|__)?\s*(?::|\s-\s)\s*(?:\*\*|__)?\s*",
    re.IGNORECASE,
)
_QUOTES = (('"', '"'), ("'", "'"), ("\u201c", "\u201d"), ("\u2018", "\u2019"), ("`", "`"))
_TOKEN = re.compile(r"[a-z0-9]+")


class ProposalParseError(ValueError):
    """The meta-model's reply holds no usable instruction."""


def _strip_fence(text: str) -> str:
    match = _FENCE.match(text.strip())
    return match.group(1) if match else text


def _strip_quotes(text: str) -> str:
    for left, right in _QUOTES:
        if len(text) >= 2 and text.startswith(left) and text.endswith(right):
            inner = text[len(left) : -len(right)]
            if left not in inner:
                return inner.strip()
    return text


def _strip_prefixes(text: str) -> str:
    previous = None
    while previous != text:
        previous = text
        text = _PREFIX.sub("", text, count=1).strip()
    return text


def parse_instruction(text: str) -> str:
    """The instruction in a meta-model reply.

    Removes DSPy field markers, code fences, "Proposed Instruction:"-style prefixes and surrounding
    quotes. Raises `ProposalParseError` when what remains is empty or too short to be an instruction.
    """
    if not isinstance(text, str):
        raise ProposalParseError(f"expected the reply text, got {type(text).__name__}")
    out = _DSPY_MARKER.sub("", text).strip()
    for _ in range(3):
        before = out
        out = _strip_quotes(_strip_prefixes(_strip_fence(out).strip()))
        if out == before:
            break
    if len(out) < MIN_INSTRUCTION_CHARS or len(out.split()) < MIN_INSTRUCTION_WORDS:
        raise ProposalParseError(f"the reply holds no usable instruction: {text[:200]!r}")
    return out


_TAGGED = re.compile(r"<instruction(?:\s[^>]*)?>\s*(.*?)\s*</instruction>", re.DOTALL | re.IGNORECASE)
_HEADED = re.compile(
    r"(?im)^[ \t]*(?:#+[ \t]*)?(?:\*\*|__)?[ \t]*(?:proposed[ \t]+)?(?:instruction|proposal)[ \t]*#?[ \t]*"
    r"(\d+)[ \t]*(?:\*\*|__)?[ \t]*[:.)\-]?[ \t]*(?:\*\*|__)?[ \t]*$|"
    r"^[ \t]*(?:#+[ \t]*)?(?:\*\*|__)?[ \t]*(?:proposed[ \t]+)?(?:instruction|proposal)[ \t]*#?[ \t]*"
    r"(\d+)[ \t]*(?:\*\*|__)?[ \t]*:[ \t]*(?:\*\*|__)?"
)
_ITEM_KEYS = ("instructions", "proposals", "candidates", "proposed_instructions")


def _json_items(text: str) -> list[str] | None:
    """The instructions of a JSON answer: `{"instructions": [...]}`, or a bare list (of text, or of
    objects with an `instruction`/`text` field)."""
    try:
        value = json.loads(_strip_fence(text.strip()).strip())
    except (json.JSONDecodeError, RecursionError):
        return None
    if isinstance(value, dict):
        value = next((value[k] for k in _ITEM_KEYS if isinstance(value.get(k), list)), None)
    if not isinstance(value, list):
        return None
    items = []
    for item in value:
        if isinstance(item, dict):
            item = item.get("instruction") or item.get("text")
        if isinstance(item, str):
            items.append(item)
    return items


def _headed_items(text: str) -> list[str] | None:
    """Sections under "Instruction 1:" / "### Instruction 2" headers (two or more)."""
    marks = list(_HEADED.finditer(text))
    if len(marks) < 2:
        return None
    return [
        text[m.end() : nxt.start() if nxt else len(text)]
        for m, nxt in zip(marks, [*marks[1:], None], strict=True)
    ]


def parse_instructions(text: str, expected: int = 1) -> list[str]:
    """The instructions in a reply asked for `expected` of them.

    One asked: `parse_instruction`. Several: a JSON answer (`{"instructions": [...]}` or a list), else
    `<instruction>` blocks, else "Instruction N:" sections; an answer in none of these shapes is one
    instruction. Unusable items are dropped; raises `ProposalParseError` when none is left.
    """
    if not isinstance(text, str):
        raise ProposalParseError(f"expected the reply text, got {type(text).__name__}")
    if expected <= 1:
        return [parse_instruction(text)]
    items = _json_items(text) or _TAGGED.findall(text) or _headed_items(text)
    if not items:
        return [parse_instruction(text)]
    out = []
    for item in items:
        try:
            out.append(parse_instruction(item))
        except ProposalParseError:
            continue
    if not out:
        raise ProposalParseError(f"the reply holds no usable instruction: {text[:200]!r}")
    return out


def normalize(text: str) -> str:
    """Lowercase alphanumeric tokens joined by single spaces (punctuation and layout dropped)."""
    return " ".join(_TOKEN.findall(text.lower()))


def is_duplicate(a: str, b: str, threshold: float = 0.9) -> bool:
    """Whether two instructions are the same up to layout, or share >= `threshold` of their tokens.

    Token overlap is the Jaccard index of the two token sets.
    """
    norm_a, norm_b = normalize(a), normalize(b)
    if norm_a == norm_b:
        return True
    tokens_a, tokens_b = set(norm_a.split()), set(norm_b.split())
    if not tokens_a or not tokens_b:
        return False
    return len(tokens_a & tokens_b) / len(tokens_a | tokens_b) >= threshold
