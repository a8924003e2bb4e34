"""The meta-model behaviour of the simulated LLM: proposals and data summaries. Pure functions.

It answers the prompts of `mipro.proposer.meta_prompt` (recognised by their system headers) with text
grounded in the examples it is shown: a rephrasing of the basic instruction in the style of the tip,
then one rule per label of a subset of the shown labels, naming words that are frequent in that label's
example inputs and rare in the others'. A score history keeps the best instruction's rules and drops
the labels ruled by the worst one. When the task description states an answer format (`Intent: <label>`,
a JSON template) that the basic instruction does not, the proposal restates it; failed examples (shown
when no answer scored well) add a line naming the answers that failed. Variation comes from the proposal
index and the temperature.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mipro.proposer.meta_prompt import PROPOSAL_HEADER, SUMMARY_HEADER
from mipro.proposer.tips import tip_name
from mipro.simllm.formats import answer_prefix, json_key
from mipro.simllm.prompt import message_text, raw_answer
from mipro.simllm.text import hint_stems, label_stems, stable_hash, unit, words

_EXAMPLE = re.compile(r'<example index="\d+">\nInput: (.*?)\nOutput: (.*?)\n</example>', re.DOTALL)
_FAILED = re.compile(
    r'<failed_example index="\d+" score="([-+\d.eE]+)">\nInput: (.*?)\nOutput: (.*?)\n</failed_example>',
    re.DOTALL,
)
_HISTORY = re.compile(r'<instruction score="([-+\d.eE]+)">\n(.*?)\n</instruction>', re.DOTALL)
_PROPOSAL = re.compile(r'<proposal index="(-?\d+)">')
_RULE = re.compile(r"^\s*-\s.*\bis\s+[`'\"]?([\w?\-]+?)[`'\"]?\.?\s*$")
WORDS_PER_RULE = {"simple": 2, "description": 4}
RULES_HEADERS = {
    "simple": "Rules:",
    "description": (
        "Use these rules, drawn from labelled examples, when they apply; otherwise choose the label whose "
        "meaning fits the input best:"
    ),
}
RULES_HEADER = "Use these rules when they apply:"


@dataclass(frozen=True)
class ProposalRequest:
    """What the simulated meta-model reads from a proposal prompt."""

    basic: str
    task: str
    examples: list[tuple[str, str]]
    history: list[tuple[float, str]]
    tip: str
    index: int
    failed: list[tuple[float, str]] = field(default_factory=list)  # (score, answer) of failed examples


def _system(messages: list[dict[str, Any]]) -> str:
    return next((message_text(m) for m in messages if m.get("role") == "system"), "")


def is_proposal(messages: list[dict[str, Any]]) -> bool:
    return _system(messages).startswith(PROPOSAL_HEADER)


def is_summary(messages: list[dict[str, Any]]) -> bool:
    return _system(messages).startswith(SUMMARY_HEADER)


def _user(messages: list[dict[str, Any]]) -> str:
    return "\n".join(message_text(m) for m in messages if m.get("role") == "user")


def _section(text: str, tag: str) -> str:
    match = re.search(rf"<{tag}(?: [^>]*)?>\n(.*?)\n</{tag}>", text, re.DOTALL)
    return match.group(1).strip() if match else ""


def output_label(output: str) -> str:
    """The label of a shown output: the first string value of tool-call or JSON arguments, the value of an
    `Intent: <label>`-style line, else the first line of the text."""
    first = output.split("; ")[0].strip()
    try:
        args = json.loads(first)
    except (json.JSONDecodeError, RecursionError):
        return raw_answer({"role": "assistant", "content": first}) or ""
    if isinstance(args, dict):
        return next((v.strip() for v in args.values() if isinstance(v, str) and v.strip()), "")
    return str(args)


def read_examples(text: str) -> list[tuple[str, str]]:
    """(input, label) of every `<example>` block."""
    return [(inp.strip(), output_label(out)) for inp, out in _EXAMPLE.findall(text)]


def read_proposal(messages: list[dict[str, Any]]) -> ProposalRequest:
    user = _user(messages)
    index = _PROPOSAL.search(user)
    return ProposalRequest(
        basic=_section(user, "basic_instruction"),
        task=_section(user, "task_description"),
        examples=read_examples(user),
        history=[(float(s), t.strip()) for s, t in _HISTORY.findall(user)],
        tip=tip_name(_section(user, "tip")),
        index=int(index.group(1)) if index else 0,
        failed=[(float(score), out.strip()) for score, _, out in _FAILED.findall(user)],
    )


def _term(req: ProposalRequest) -> str:
    text = f"{req.basic} {req.task}".lower()
    return next((t for t in ("intent", "category", "class") if t in text), "label")


def opening(basic: str, tip: str, salt: str) -> str:
    """The basic instruction rephrased in the style of the tip (one of a few variants)."""
    basic = basic.strip() or "Answer with the single best label for the input."
    variants = {
        "none": [basic, f"Read the input carefully. {basic}", f"{basic} Give the single best answer."],
        "simple": [basic],
        "description": [
            f"{basic} Read the whole input, compare it with every allowed answer, and pick the one whose "
            "meaning fits best; give exactly one answer, spelled exactly as listed, in the required format."
        ],
        "creative": [
            "Think of the allowed answers as labelled drawers, and file the input into the one drawer "
            f"where it fits best. {basic}"
        ],
        "high_stakes": [
            f"{basic} The stakes are high: a wrong answer sends a real person's request to the wrong "
            "team, so check the rules below before you answer."
        ],
        "persona": [
            f"You are a seasoned specialist who has handled thousands of such requests. {basic}",
            f"You are a meticulous, experienced analyst of these requests. {basic}",
        ],
    }
    options = variants.get(tip, variants["none"])
    return options[stable_hash(salt, "opening") % len(options)]


def _surface(examples: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """For each (label, stem) the most frequent surface word of that label's inputs."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for text, label in examples:
        for word in words(text):
            for s in hint_stems(word):
                counts[(label, s, word)] += 1
    out: dict[tuple[str, str], str] = {}
    for (label, s, word), _ in counts.most_common():
        out.setdefault((label, s), word)
    return out


def distinctive_words(examples: list[tuple[str, str]], salt: str, per_rule: int) -> dict[str, list[str]]:
    """Per label, words frequent in its example inputs and rare in the other labels' inputs.

    Words of any shown label's name are left out (the label list already names them), and so are
    words that most of the examples holding them do not share the label. A word's weight is recall
    (share of the label's examples holding it) times smoothed precision (share of the examples holding
    it that have the label), plus a little salted jitter.
    """
    stems_by_label: dict[str, Counter[str]] = {}
    sizes: Counter[str] = Counter()
    named = frozenset().union(*(label_stems(label) for _, label in examples))
    for text, label in examples:
        sizes[label] += 1
        stems_by_label.setdefault(label, Counter()).update(hint_stems(text) - named)
    total: Counter[str] = Counter()
    for counts in stems_by_label.values():
        total.update(counts)
    surface = _surface(examples)
    out: dict[str, list[str]] = {}
    for label, counts in stems_by_label.items():

        def weight(s: str, counts: Counter[str] = counts, label: str = label) -> float:
            recall, precision = counts[s] / sizes[label], counts[s] / (total[s] + 1)
            return recall * precision + 0.05 * unit(salt, label, s)

        specific = [s for s in counts if 2 * counts[s] > total[s]]
        best = sorted(specific, key=weight, reverse=True)[:per_rule]
        out[label] = [surface.get((label, s), s) for s in best]
    return out


def rule_line(found: list[str], term: str, label: str) -> str:
    listed = found[0] if len(found) == 1 else f"{', '.join(found[:-1])} or {found[-1]}"
    return f"- If the query mentions {listed}, the {term} is {label}."


def rule_lines(text: str) -> dict[str, str]:
    """The rule lines of an instruction, by the label they name."""
    found = (_RULE.match(line) for line in text.splitlines())
    return {m.group(1): m.group(0).strip() for m in found if m}


def _history_rules(history: list[tuple[float, str]]) -> tuple[dict[str, str], set[str]]:
    """The rules of the best instruction, and the labels ruled only by the worst one."""
    if not history:
        return {}, set()
    best = max(history, key=lambda item: item[0])
    worst = min(history, key=lambda item: item[0])
    kept = rule_lines(best[1])
    dropped = set(rule_lines(worst[1])) - set(kept) if worst[0] < best[0] else set()
    return kept, dropped


def _subset(labels: list[str], salt: str) -> list[str]:
    """A salted share (55-100%, at least one) of the labels, in their original order."""
    if not labels:
        return []
    share = 0.55 + 0.45 * unit(salt, "keep-share")
    chosen = set(sorted(labels, key=lambda label: unit(salt, label))[: max(1, round(share * len(labels)))])
    return [label for label in labels if label in chosen]


def propose(messages: list[dict[str, Any]], temperature: float) -> str:
    """A new instruction for a proposal prompt."""
    return propose_from(read_proposal(messages), temperature)


def propose_from(req: ProposalRequest, temperature: float) -> str:
    """A new instruction for what a proposal prompt shows (ours, or DSPy's GroundedProposer's)."""
    salt = f"{req.index}:{round(temperature, 3)}:{req.tip}"
    kept, dropped = _history_rules(req.history)
    per_rule = WORDS_PER_RULE.get(req.tip, 3)
    rules = dict(kept)
    candidates = {
        label: found
        for label, found in distinctive_words(req.examples, salt, per_rule).items()
        if found and label and label not in rules and label not in dropped
    }
    for label in _subset(list(candidates), salt):
        rules[label] = rule_line(candidates[label], _term(req), label)
    lines = [opening(req.basic, req.tip, salt)]
    format_line = answer_format_line(req.task, req.basic)
    if format_line:
        lines.append(format_line)
    if req.failed:
        lines.append(failed_line(req.failed, bool(format_line)))
    if rules:
        lines += ["", RULES_HEADERS.get(req.tip, RULES_HEADER), *rules.values()]
    return "\n".join(lines)


def answer_format_line(task: str, basic: str) -> str | None:
    """A line restating the answer format the task description states and the basic instruction does not."""
    as_messages = lambda text: [{"role": "system", "content": text}]  # noqa: E731
    key = json_key({"messages": as_messages(task)})
    if key is not None and json_key({"messages": as_messages(basic)}) is None:
        return f'Answer with a JSON object only, exactly {{"{key}": "<label>"}}, with one allowed label.'
    prefix = answer_prefix(as_messages(task))
    if prefix is not None and answer_prefix(as_messages(basic)) is None:
        return f"Answer with exactly one line in the format `{prefix}: <label>`, with one allowed label."
    return None


def failed_line(failed: list[tuple[float, str]], has_format: bool) -> str:
    """A line naming answers that scored low, and what to do instead."""
    answers = list(dict.fromkeys(output_label(out) or out for _, out in failed))[:3]
    shown = ", ".join(f'"{a}"' for a in answers)
    best = max(score for score, _ in failed)
    fix = (
        "follow that format exactly."
        if has_format
        else "answer with exactly one of the allowed labels, spelled exactly as listed, and nothing else."
    )
    return f"Earlier answers such as {shown} scored {best:.2f} at best: {fix}"


def summarize(messages: list[dict[str, Any]]) -> str:
    """A 2-3 sentence data summary grounded in the shown examples."""
    return summary_of(read_examples(_user(messages)))


def summary_of(examples: list[tuple[str, str]]) -> str:
    """A 2-3 sentence summary of (input, output) examples."""
    if not examples:
        return "No examples were provided, so nothing can be said about the data yet."
    labels = Counter(label for _, label in examples)
    lengths = [len(words(text)) for text, _ in examples]
    vocab = Counter(w for text, _ in examples for w in dict.fromkeys(words(text)) if hint_stems(w))
    top_labels = ", ".join(f"{label} ({n})" for label, n in labels.most_common(3))
    common = ", ".join(w for w, _ in vocab.most_common(5))
    questions = sum(text.rstrip().endswith("?") for text, _ in examples) / len(examples)
    first_person = sum(bool({"i", "my", "me"} & set(words(t))) for t, _ in examples) / len(examples)
    return (
        f"The {len(examples)} examples are inputs of about {sum(lengths) / len(lengths):.0f} words "
        f"(from {min(lengths)} to {max(lengths)}), each answered with one of {len(labels)} distinct outputs; "
        f"the most frequent are {top_labels}. Common words in the inputs are {common}. "
        f"{questions:.0%} of the inputs are questions and {first_person:.0%} are in the first person."
    )


def meta_answer(messages: list[dict[str, Any]], temperature: float) -> str | None:
    """The meta-model's answer, or None when the request is not a proposer prompt."""
    if is_proposal(messages):
        return propose(messages, temperature)
    if is_summary(messages):
        return summarize(messages)
    return None
