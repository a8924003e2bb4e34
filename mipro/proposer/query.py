"""Finding the query inside a user turn, whatever the task app's prompt format.

A task app's final user turn holds the query and, around it, prompt machinery: a label list, an answer
format, an instruction. `query_part` returns the query, trying in order:

1. a line starting with a common query prefix ("Customer Query:", "Query:", "Request:", "Message:", "Text:",
   ...), up to the next blank line;
2. the first DSPy input field (`[[ ## name ## ]]`);
3. any other short "Prefix: value" line whose prefix does not name prompt machinery (labels, format,
   answer, rules, ...) and whose value is no template (`<label>`, `{x}`);
4. what is left once list items, headers, inline lists and instruction-like lines are removed;
5. the whole text.

Pure functions; nothing here knows any dataset.
"""

from __future__ import annotations

import re

QUERY_MARKERS: tuple[str, ...] = (
    "Customer Query",
    "Customer Message",
    "User Query",
    "User Message",
    "User Request",
    "Query",
    "Utterance",
    "Input Text",
    "Input",
    "Question",
    "Request",
    "Message",
    "Text",
    "Sentence",
    "Ticket",
)
# Words of a prefix that names prompt machinery rather than the query ("Available Intents:", "Format:").
_MACHINERY_TEXT = """
    intent intents label labels category categories class classes topic topics tag tags option
    options choice choices answer answers output outputs format formats reply response respond rule
    rules note notes example examples instruction instructions task tip hint hints allowed available
    valid possible candidate candidates domain domains schema json tool tools system assistant
    reasoning
"""
MACHINERY_WORDS = frozenset(_MACHINERY_TEXT.split())

_MARKER = re.compile(
    r"(?im)^[ \t]*(?:\*\*)?(?:" + "|".join(re.escape(m) for m in QUERY_MARKERS) + r")(?:\*\*)?[ \t]*:[ \t]*"
)
_PREFIX_LINE = re.compile(
    r"(?m)^[ \t]*(?:\*\*)?(?P<prefix>[A-Za-z][A-Za-z'\-]*(?:[ \t][A-Za-z][A-Za-z'\-]*){0,3})(?:\*\*)?"
    r"[ \t]*:(?:\*\*)?[ \t]*(?P<value>\S.*)$"
)
_TEMPLATE = re.compile(r"<[^<>\n]{1,40}>|\{[^{}\n]{1,40}\}|\[\[ ## ")
_DSPY_FIELD = re.compile(r"(?m)^[ \t]*\[\[ ## (\w+) ## \]\]")
_DSPY_TRAILER = re.compile(r"\n[ \t]*\n(?=Respond with the corresponding output fields)")
_LIST_ITEM = re.compile(r"^[ \t]*(?:\d+[.)]|[-*\u2022])[ \t]+\S")
_INSTRUCTION = re.compile(
    r"\b(?:classify|classif\w+|categori[sz]e|label(?:s|led)?|intents?|categor(?:y|ies)|respond|reply|answer"
    r"|output|format|choose|select|pick|one of|the following|tool|json|exactly)\b",
    re.IGNORECASE,
)
_PARAGRAPH = re.compile(r"\n[ \t]*\n")


def dspy_fields(text: str) -> list[tuple[str, str]]:
    """The `[[ ## name ## ]]` fields of a DSPy-formatted text, in order, with their stripped values."""
    found = list(_DSPY_FIELD.finditer(text))
    out: list[tuple[str, str]] = []
    for index, match in enumerate(found):
        end = found[index + 1].start() if index + 1 < len(found) else len(text)
        value = _DSPY_TRAILER.split(text[match.end() : end], maxsplit=1)[0]
        out.append((match.group(1), value.strip()))
    return out


def _paragraph_from(text: str, start: int) -> str:
    """The text from `start` to the next blank line, or to a line of prompt machinery (an instruction,
    a list, a "Label:" cue) that follows the first line without a blank line between."""
    first, *rest = _PARAGRAPH.split(text[start:], maxsplit=1)[0].split("\n")
    kept = [first]
    for line in rest:
        if _is_machinery_line(line) or _PREFIX_LINE.match(line):
            break
        kept.append(line)
    return "\n".join(kept).strip()


def _after_marker(text: str) -> str | None:
    match = _MARKER.search(text)
    return _paragraph_from(text, match.end()) or None if match else None


def _names_machinery(prefix: str) -> bool:
    return any(word.lower() in MACHINERY_WORDS for word in re.split(r"[ \t]+", prefix))


def _after_any_prefix(text: str) -> str | None:
    for match in _PREFIX_LINE.finditer(text):
        if _names_machinery(match.group("prefix")) or _TEMPLATE.search(match.group("value")):
            continue
        return _paragraph_from(text, match.start("value")) or None
    return None


def _is_machinery_line(line: str) -> bool:
    stripped = line.strip()
    return (
        _LIST_ITEM.match(line) is not None
        or stripped.endswith(":")
        or len(re.findall(r"[,|;]", stripped)) >= 3
        or _INSTRUCTION.search(stripped) is not None
        or _TEMPLATE.search(stripped) is not None
    )


def _residual(text: str) -> str | None:
    kept = [line for line in text.splitlines() if line.strip() and not _is_machinery_line(line)]
    return "\n".join(line.strip() for line in kept) or None


def query_part(text: str) -> str:
    """The query inside a user turn (see the module docstring for the order of the rules)."""
    found = _after_marker(text)
    if found is not None:
        return found
    fields = [(name, value) for name, value in dspy_fields(text) if name != "completed"]
    if fields and fields[0][1]:
        return fields[0][1]
    return _after_any_prefix(text) or _residual(text) or text.strip()
