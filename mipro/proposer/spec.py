"""The synth proposer's grounding: a user-supplied system spec, and an optional custom meta-prompt template.

A spec is a table (`mipro.spec`, e.g. `{purpose, principles[], rules[], constraints}`) or text, or a
JSON / TOML / markdown file (`mipro.spec_path`) read when the config file is loaded, never while the job
runs: the workflow gets the spec as config data. It is shown to the meta-model rendered as indented text,
cut to `spec_max_tokens` (at ~4 characters a token).

A custom `metaprompt` replaces the guidance of the meta-prompt's system message; it may name the
placeholders of `METAPROMPT_FIELDS` (`{spec}`, `{n}`, ...); literal braces are written `{{` `}}`. Nothing
else is expanded: no attribute or index lookups, no code.
"""

from __future__ import annotations

import json
import string
import tomllib
from pathlib import Path
from typing import Any

from mipro.errors import MIPROConfigurationError

CHARS_PER_TOKEN = 4
# A job carries its config (the spec with it) in its workflow history, whose payloads Temporal caps at 2 MiB.
MAX_SPEC_CHARS = 100_000
METAPROMPT_FIELDS: dict[str, str] = {
    "spec": "the system spec, rendered",
    "task_description": "what the program does",
    "basic_instruction": "the instruction the LM is prompted with today",
    "n": "how many instructions this call asks for",
    "stage_id": "the stage the instructions are for",
}
SPEC_SUFFIXES = {".json": "json", ".toml": "toml", ".md": "text", ".markdown": "text", ".txt": "text"}


def render_spec(spec: Any, max_tokens: int) -> str:
    """The spec as the meta-model reads it: text as it is; a table as indented `key: value` lines and
    bulleted lists; cut (with a note) past `max_tokens`."""
    text = spec.strip() if isinstance(spec, str) else "\n".join(_lines(spec, 0)).strip()
    limit = max_tokens * CHARS_PER_TOKEN
    if len(text) > limit:
        text = text[:limit].rstrip() + "\n[... the spec is cut here: spec_max_tokens]"
    return text


def _lines(value: Any, depth: int) -> list[str]:
    pad = "  " * depth
    if isinstance(value, dict):
        out: list[str] = []
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                out.append(f"{pad}{key}:")
                out += _lines(item, depth + 1)
            else:
                out.append(f"{pad}{key}: {_scalar(item)}")
        return out
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, dict | list) and item:
                nested = _lines(item, depth + 1)
                out.append(f"{pad}- {nested[0].strip()}")
                out += nested[1:]
            else:
                out.append(f"{pad}- {_scalar(item)}")
        return out
    return [f"{pad}{_scalar(value)}"]


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def spec_size_problem(spec: Any) -> str | None:
    """Why a spec is too large to carry in a job, or None."""
    size = len(spec) if isinstance(spec, str) else len(json.dumps(spec))
    if size <= MAX_SPEC_CHARS:
        return None
    return (
        f"the spec is {size:,} characters: a job carries it in its workflow history (2 MiB payloads), so "
        f"keep it under {MAX_SPEC_CHARS:,} (the meta-model is shown the first spec_max_tokens of it anyway)"
    )


def metaprompt_problems(template: str) -> list[str]:
    """What is wrong with a metaprompt template: unknown placeholders, lookups, conversions, bad braces."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        return [f"{exc} (write literal braces as {{{{ and }}}})"]
    problems = []
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in METAPROMPT_FIELDS or spec or conversion:
            problems.append(
                f"{{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}} is not a "
                f"placeholder: use {', '.join('{' + k + '}' for k in METAPROMPT_FIELDS)} "
                "(literal braces: {{ }})"
            )
    return problems


def fill_metaprompt(template: str, values: dict[str, str]) -> str:
    """The template with its placeholders filled (checked at config load by `metaprompt_problems`)."""
    return template.format_map({name: values.get(name, "") for name in METAPROMPT_FIELDS})


def read_spec_file(path: Path) -> dict[str, Any] | str:
    """A spec file's content: a table (JSON, TOML) or text (markdown, plain text)."""
    kind = SPEC_SUFFIXES.get(path.suffix.lower())
    where = "prompt_learning.mipro.spec_path"
    if kind is None:
        raise MIPROConfigurationError(
            [(where, f"{path}: unknown spec file type", f"use one of {', '.join(sorted(SPEC_SUFFIXES))}")]
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MIPROConfigurationError(
            [
                (
                    where,
                    f"cannot read the spec file {path}: {exc}",
                    "check the path (relative to the config file)",
                )
            ]
        ) from None
    try:
        if kind == "json":
            content = json.loads(text)
        elif kind == "toml":
            content = tomllib.loads(text)
        else:
            content = text
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise MIPROConfigurationError([(where, f"cannot parse {path}: {exc}", "fix its syntax")]) from None
    if not isinstance(content, dict | str) or not content:
        raise MIPROConfigurationError(
            [(where, f"{path} holds no spec (an empty file, or JSON that is not an object)", "fix the file")]
        )
    return content


def load_spec_path(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """A config document with `mipro.spec_path` read into `mipro.spec` (relative paths: from `base`, the
    config file's directory). Done when a config file is loaded; a body without spec_path is unchanged."""
    body = raw.get("prompt_learning", raw)
    mipro = body.get("mipro") if isinstance(body, dict) else None
    if not isinstance(mipro, dict) or "spec_path" not in mipro:
        return raw
    if not isinstance(mipro["spec_path"], str) or not mipro["spec_path"]:
        raise MIPROConfigurationError(
            [("prompt_learning.mipro.spec_path", "must be a file path (text)", 'e.g. spec_path = "spec.md"')]
        )
    if mipro.get("spec") is not None:
        raise MIPROConfigurationError(
            [("prompt_learning.mipro.spec_path", "spec and spec_path are both set", "keep one of them")]
        )
    path = Path(mipro["spec_path"]).expanduser()
    mipro = {k: v for k, v in mipro.items() if k != "spec_path"}
    mipro["spec"] = read_spec_file(path if path.is_absolute() else base / path)
    body = {**body, "mipro": mipro}
    return {**raw, "prompt_learning": body} if "prompt_learning" in raw else body
