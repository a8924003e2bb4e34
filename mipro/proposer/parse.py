"""Parsing the meta-model's reply into an instruction, and deduplicating instructions."""

from __future__ import annotations

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
