"""Reading the allowed labels from a request, whatever shape the prompt gives them. Pure functions.

Shapes understood, first found wins (the final user turn is read before the other messages):
- a header line naming labels ("Available Intents:", "Labels:", "Categories:", "Choose one of the
  following:", "one of these labels:") followed by a numbered, bulleted or plain list, or by an inline list
  on the same line;
- an inline list after "one of" ("using one of: a, b, c", "answer with one of a | b | c", "a, b or c");
- a JSON array of strings (`["a", "b", "c"]`);
- a DSPy `Literal['a', 'b']`;
- the enum of a tool's parameter, or of a `response_format` JSON schema property.
Items lose their descriptions ("card_arrival - the card has not arrived" -> "card_arrival"). A list whose
items read like sentences (rules, instructions) is not a label list. Nothing here knows any dataset.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

_KEYWORD = re.compile(
    r"\b(?:intents?|labels?|categor(?:y|ies)|class(?:es)?|topics?|options?|choices?|tags?|classes|values"
    r"|one of|the following)\b",
    re.IGNORECASE,
)
_HEADER = re.compile(
    r"^[ \t]*(?:#+[ \t]*)?(?:\*\*)?(?P<head>[^:\n]{1,100}?)(?:\*\*)?[ \t]*:(?:\*\*)?(?P<rest>.*)$"
)
_ONE_OF = re.compile(r"\bone of\b(?P<rest>.*)$", re.IGNORECASE)
_LIST_ITEM = re.compile(r"^[ \t]*(?:\d+[.)]|[a-z][.)]|[-*\u2022])[ \t]+(.+?)[ \t]*$")
_PLAIN_ITEM = re.compile(r"^[ \t]*(\w[\w\-/.']*(?: [\w\-/.']+){0,2})[ \t]*$")
_JSON_ARRAY = re.compile(r'\[\s*"[^"\n]{1,80}"(?:\s*,\s*"[^"\n]{1,80}")+\s*\]')
_LITERAL = re.compile(r"Literal\[([^\]]*)\]")
_QUOTED = re.compile(r"'([^']*)'|\"([^\"]*)\"")
_DESCRIPTION = re.compile(r"\s+[-\u2013\u2014:=]\s+|:\s|\s+\(")
_LEAD_WORDS = re.compile(r"^(?:the following|these|the|these \w+|the \w+ below|below)\s*$", re.IGNORECASE)
MAX_LABEL_WORDS = 5
MAX_LABEL_CHARS = 60


def clean_item(item: str) -> str:
    """A list item without its description, quotes, emphasis or final full stop."""
    item = _DESCRIPTION.split(item.strip(), maxsplit=1)[0]
    item = item.strip().strip("`'\"*").strip()
    return item[:-1].strip() if item.endswith((".", ",", ";")) else item


def looks_like_label(item: str) -> bool:
    """Short, no sentence punctuation inside, no template: a label, not a rule or an instruction."""
    return (
        0 < len(item) <= MAX_LABEL_CHARS
        and len(item.split()) <= MAX_LABEL_WORDS
        and not re.search(r"[<>{}\[\]]|[.,;:!?]\s", item)
    )


def _json_strings(text: str) -> list[str]:
    """The strings of a JSON array literal ([] when it does not parse, e.g. a bad escape)."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return []
    return [x for x in value if isinstance(x, str)] if isinstance(value, list) else []


def _valid(items: list[str]) -> list[str]:
    cleaned = [clean_item(x) for x in items]
    cleaned = [x for x in cleaned if x]
    return cleaned if len(cleaned) >= 2 and all(looks_like_label(x) for x in cleaned) else []


def split_inline(text: str) -> list[str]:
    """Items of an inline list: a JSON array, or `|`, `;` or comma separated (a final "or"/"and" split)."""
    text = text.strip().rstrip(".")
    array = _JSON_ARRAY.search(text)
    if array is not None and array.start() < 3:
        return _valid(_json_strings(array.group(0)))
    for sep in ("|", ";", ","):
        if sep in text:
            parts = [p.strip() for p in text.split(sep)]
            break
    else:
        parts = [text]
    parts = [*parts[:-1], *re.split(r"\s+or\s+", parts[-1])]
    return _valid([re.sub(r"^(?:or|and)\s+", "", p) for p in parts])


def _following_list(lines: list[str]) -> list[str]:
    """The list under a header: bulleted or numbered lines, else (3 or more) plain short lines, up to a
    blank line."""
    items: list[str] = []
    plain = True
    for line in lines:
        if not line.strip():
            if items:
                break
            continue
        bullet = _LIST_ITEM.match(line)
        if bullet is not None:
            plain = False
            items.append(bullet.group(1))
        elif plain and (word := _PLAIN_ITEM.match(line)) is not None and not line.rstrip().endswith(":"):
            items.append(word.group(1))
        else:
            break
    return _valid(items) if not plain or len(items) >= 3 else []


def _header_rest(line: str) -> tuple[str, int] | None:
    """What follows a header naming labels on this line ("" when the list is below) and how many items
    make a list there; None when the line is no such header. A bare "one of a, b, c" inside a sentence
    needs 3 items (or `|` separators): "one of them, or say so" is no list."""
    one_of = _ONE_OF.search(line)
    if one_of is not None:
        rest = one_of.group("rest")
        if ":" in rest:
            return rest.split(":", 1)[1], 2
        if _LEAD_WORDS.match(rest.strip()):
            return "", 2
        return rest, 2 if "|" in rest else 3
    header = _HEADER.match(line)
    if header is None:
        return None
    # "Pick one. The categories are:": the header is the last sentence before the colon
    head = re.split(r"[.!?]\s+", header.group("head"))[-1]
    if "rule" in head.lower() or len(head.split()) > 8:
        return None
    return (header.group("rest"), 2) if _KEYWORD.search(head) else None


def labels_in_lines(text: str) -> list[str]:
    """A label list introduced by a header or by "one of", inline or on the following lines."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        found_rest = _header_rest(line)
        if found_rest is None:
            continue
        rest, least = found_rest
        found = split_inline(rest) if rest.strip() else _following_list(lines[index + 1 :])
        if len(found) >= least:
            return found
    return []


def labels_in_json_array(text: str) -> list[str]:
    for match in _JSON_ARRAY.finditer(text):
        found = _valid(_json_strings(match.group(0)))
        if found:
            return found
    return []


def labels_in_literal(text: str) -> list[str]:
    match = _LITERAL.search(text)
    if match is None:
        return []
    return [a or b for a, b in _QUOTED.findall(match.group(1)) if a or b]


TEXT_FINDERS: tuple[Callable[[str], list[str]], ...] = (
    labels_in_lines,
    labels_in_json_array,
    labels_in_literal,
)


def _enums(schema: Any) -> Iterator[list[str]]:
    """The string enums of a JSON schema's properties (nested objects included)."""
    props = schema.get("properties") if isinstance(schema, dict) else None
    for spec in props.values() if isinstance(props, dict) else []:
        if isinstance(spec, dict) and isinstance(spec.get("enum"), list):
            yield [str(v) for v in spec["enum"]]
        elif isinstance(spec, dict):
            yield from _enums(spec)


def labels_in_tools(tools: list[Any] | None) -> list[str]:
    for tool in tools or []:
        function = tool.get("function") if isinstance(tool, dict) else None
        for enum in _enums((function or {}).get("parameters") if isinstance(function, dict) else None):
            return enum
    return []


def labels_in_response_format(response_format: Any) -> list[str]:
    if not isinstance(response_format, dict):
        return []
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return next(_enums(schema), [])
