"""The meta-model prompts of the grounded proposer (MIPROv2 step 2), in OpenAI chat format.

The same messages go to a real meta-model (OpenAI, Groq, ...) and to the simulated LLM. They follow
DSPy's GroundedProposer (`GenerateSingleModuleInstruction`): a task description, a data summary, task
examples with their expected outputs, the basic (current) instruction, an optional history of scored
instructions, and a tip. The synth mode shows a system spec instead of a tip (and its guidance may be a
custom template); both may show reference inputs (the reference corpus) and ask for several instructions
in one JSON answer. Sections are XML-like tags so that multi-line values stay unambiguous.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from mipro.proposer.examples import format_examples, format_failed_examples
from mipro.proposer.spec import fill_metaprompt
from mipro.proposer.tips import TIP_NAMES, tip_text
from mipro.types import FewShotExample

PROPOSAL_HEADER = "You are an expert prompt engineer who writes instructions for language-model programs."
SUMMARY_HEADER = "You are an expert data analyst who describes datasets for prompt engineers."

MAX_HISTORY_EACH_SIDE = 3
MAX_FAILED_EXAMPLES = 5
MAX_SUMMARY_EXAMPLES = 20
MAX_REFERENCE_INPUT_CHARS = 300

_INTRO = (
    "Use the information below to learn about a task that we are trying to solve using calls to a language "
    "model (LM), then write {what} that will be used to prompt the LM to better solve the task."
)
_SYNTH_INTRO = (
    "Use the system specification and the information below to learn about a task that we are trying to "
    "solve using calls to a language model (LM), then write {what} that will be used to prompt the LM to "
    "better solve the task, as the specification requires."
)
# The sections a proposal prompt may show, in the order the user message shows them.
_SECTION_LINES = {
    "system_spec": "- <system_spec>: the specification of the system the LM is part of: its purpose, "
    "principles, rules and constraints. It is authoritative.",
    "task_description": "- <task_description>: what the program does.",
    "data_summary": "- <data_summary>: observations about the task's data (optional).",
    "basic_instruction": "- <basic_instruction>: the instruction the LM is prompted with today.",
    "examples": "- <examples>: inputs of the task with the expected outputs.",
    # shown only when no rollout of the basic instruction scored well enough to be a demo
    "failed_examples": "- <failed_examples>: inputs on which the LM, prompted with the basic instruction, "
    "scored low, with the answers it gave (the expected outputs are unknown). No answer scored well: the LM "
    "may answer in a format the task does not accept, so make the new instruction state what the task "
    "description requires, e.g. the exact output format.",
    "reference_inputs": "- <reference_inputs>: more inputs of the task, without outputs: the kind of data "
    "the LM will be given.",
    "history": "- <history>: earlier instructions with their scores, higher is better (optional). Keep what "
    "the best-scoring instructions do and avoid what the worst ones do.",
    "tip": "- <tip>: a suggestion about the style of the new instruction.",
    "tips": "- <tips>: one suggestion about the style of each new instruction, in order.",
    "proposal": "- <proposal>: the number of this proposal; proposals with different numbers should differ.",
}
_GUIDANCE = """Write an instruction that:
- keeps every constraint of the basic instruction (the allowed outputs, the tool to call, the output format);
- is grounded in the examples: where they show which kinds of inputs lead to which outputs, state those \
patterns as short rules, one per line, e.g. "- If the input mentions <words>, the answer is <output>.";
- follows the tip."""
_SYNTH_GUIDANCE = """Write an instruction that:
- states, concretely for this task, the rules and constraints of the specification that apply to it, and \
never contradicts the specification;
- keeps every constraint of the basic instruction (the allowed outputs, the tool to call, the output format);
- is grounded in the examples: where they show which kinds of inputs lead to which outputs, state those \
patterns as short rules, one per line, e.g. "- If the input mentions <words>, the answer is <output>."."""
_REPLY = "Reply with the new instruction only: no preamble, no explanation, no quotes, no code fences."
_BATCH_REPLY = (
    'Reply with a JSON object only, {{"instructions": ["<instruction 1>", ..., "<instruction {n}>"]}}, '
    "holding exactly {n} instructions that differ from each other and from the basic instruction: no "
    "preamble, no explanation, no code fences."
)

_SUMMARY_SYSTEM = f"""{SUMMARY_HEADER}
Given a task description and examples of the task's inputs with their expected outputs, write \
observations about trends that hold for most or all of the examples: their topics, content, length, \
vocabulary and syntax, and how the outputs are distributed. Be concrete and refer to what the examples \
show.
Reply with a 2-3 sentence summary only: no preamble, no lists."""


class ScoredInstruction(BaseModel):
    """An instruction that was evaluated, with its score (higher is better)."""

    text: str
    score: float


class ProposalContext(BaseModel):
    """Everything the proposer shows the meta-model for one call.

    `max_examples` caps the demos shown (DSPy shows 3; more grounds more rules but costs tokens). Each
    proposal shows a different window of `demos` (rotated by `proposal_index`), so a round of proposals is
    grounded in the whole pool, not in the same first few examples; `reference_inputs` rotate the same way.
    `mode` "synth" grounds the proposal in `spec_text` (and `metaprompt`, if given) instead of a tip;
    `count` > 1 asks for that many instructions in one JSON answer, each with its tip of `batch_tips`.
    """

    task_description: str
    baseline_instruction: str
    demos: list[FewShotExample] = Field(default_factory=list)
    data_summary: str | None = None
    tip: str = "none"
    proposal_index: int = 0
    history: list[ScoredInstruction] = Field(default_factory=list)
    max_examples: int = Field(default=5, ge=0)
    failed_examples: list[FewShotExample] = Field(default_factory=list)  # shown when no demo was bootstrapped
    mode: Literal["dspy", "synth"] = "dspy"
    spec_text: str | None = None  # synth: the rendered system spec
    metaprompt: str | None = (
        None  # synth: the custom guidance template (placeholders: spec.METAPROMPT_FIELDS)
    )
    stage_id: str = "default"
    count: int = Field(default=1, ge=1)
    batch_tips: list[str] = Field(default_factory=list)  # dspy, count > 1: a tip per instruction
    reference_inputs: list[str] = Field(default_factory=list)  # the reference corpus (inputs only)
    max_reference_inputs: int = Field(default=20, ge=0)
    max_history_each_side: int = Field(default=MAX_HISTORY_EACH_SIDE, ge=1)
    max_failed_examples: int = Field(default=MAX_FAILED_EXAMPLES, ge=0)
    length_words: int | None = Field(default=None, ge=1)  # the most words an instruction should have

    @field_validator("tip")
    @classmethod
    def _known_tip(cls, value: str) -> str:
        if value not in TIP_NAMES:
            raise ValueError(f"unknown tip {value!r}; known tips: {', '.join(TIP_NAMES)}")
        return value

    @field_validator("batch_tips")
    @classmethod
    def _known_tips(cls, values: list[str]) -> list[str]:
        for value in values:
            cls._known_tip(value)
        return values


def _section(tag: str, body: str, attrs: str = "") -> str:
    return f"<{tag}{attrs}>\n{body.strip()}\n</{tag}>"


def _history_shown(
    history: list[ScoredInstruction], each_side: int = MAX_HISTORY_EACH_SIDE
) -> list[ScoredInstruction]:
    """The best and the worst few instructions, sorted by ascending score (best last, as in DSPy)."""
    ranked = sorted(history, key=lambda item: item.score)
    if len(ranked) > 2 * each_side:
        ranked = ranked[:each_side] + ranked[-each_side:]
    return ranked


def format_history(history: list[ScoredInstruction], each_side: int = MAX_HISTORY_EACH_SIDE) -> str:
    """The `<history>` section: one `<instruction score="...">` block per shown instruction."""
    blocks = [
        _section("instruction", item.text, f' score="{item.score:.4f}"')
        for item in _history_shown(history, each_side)
    ]
    return _section("history", "\n".join(blocks))


def _window(items: list[Any], size: int, index: int) -> list[Any]:
    count = min(size, len(items))
    if count == 0:
        return []
    start = index * count % len(items)
    return [items[(start + j) % len(items)] for j in range(count)]


def examples_shown(ctx: ProposalContext) -> list[FewShotExample]:
    """The window of `max_examples` demos this proposal shows, starting where the previous one stopped."""
    return _window(ctx.demos, ctx.max_examples, ctx.proposal_index)


def reference_shown(ctx: ProposalContext) -> list[str]:
    """The window of `max_reference_inputs` reference inputs this proposal shows (rotated like the demos)."""
    return _window(ctx.reference_inputs, ctx.max_reference_inputs, ctx.proposal_index)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def format_reference(inputs: list[str]) -> str:
    """The `<reference_inputs>` section: one `<input index="i">` block per shown input."""
    blocks = [
        _section("input", _clip(text, MAX_REFERENCE_INPUT_CHARS), f' index="{i + 1}"')
        for i, text in enumerate(inputs)
    ]
    return _section("reference_inputs", "\n".join(blocks))


def _tips_section(ctx: ProposalContext) -> str:
    if ctx.count > 1 and ctx.batch_tips:
        lines = [
            f"Instruction {i + 1}: {tip_text(tip) or 'no tip: write it as you see fit.'}"
            for i, tip in enumerate(ctx.batch_tips[: ctx.count])
        ]
        return _section("tips", "\n".join(lines))
    return _section("tip", tip_text(ctx.tip) or "No tip: write the instruction as you see fit.")


def _proposal_user(ctx: ProposalContext) -> str:
    parts = []
    if ctx.mode == "synth":
        parts.append(_section("system_spec", ctx.spec_text or "No specification provided."))
    parts.append(_section("task_description", ctx.task_description or "No task description provided."))
    if ctx.data_summary:
        parts.append(_section("data_summary", ctx.data_summary))
    parts.append(_section("basic_instruction", ctx.baseline_instruction))
    parts.append(format_examples(examples_shown(ctx)))
    if ctx.failed_examples and ctx.max_failed_examples:
        parts.append(format_failed_examples(ctx.failed_examples[: ctx.max_failed_examples]))
    if shown := reference_shown(ctx):
        parts.append(format_reference(shown))
    if ctx.history:
        parts.append(format_history(ctx.history, ctx.max_history_each_side))
    if ctx.mode == "dspy":
        parts.append(_tips_section(ctx))
    parts.append(
        _section(
            "proposal",
            f"This is proposal number {ctx.proposal_index}.",
            f' index="{ctx.proposal_index}"',
        )
    )
    parts.append("Proposed instruction:" if ctx.count == 1 else f"Proposed instructions ({ctx.count}, JSON):")
    return "\n\n".join(parts)


def _sections_listed(ctx: ProposalContext) -> list[str]:
    shown = ["task_description", "data_summary", "basic_instruction", "examples"]
    if ctx.mode == "synth":
        shown.insert(0, "system_spec")
    if ctx.failed_examples and ctx.max_failed_examples:
        shown.append("failed_examples")
    if ctx.reference_inputs and ctx.max_reference_inputs:
        shown.append("reference_inputs")
    shown.append("history")
    if ctx.mode == "dspy":
        shown.append("tips" if ctx.count > 1 and ctx.batch_tips else "tip")
    shown.append("proposal")
    return [_SECTION_LINES[name] for name in shown]


def _guidance(ctx: ProposalContext) -> str:
    if ctx.mode == "synth" and ctx.metaprompt:
        values = {
            "spec": ctx.spec_text or "",
            "task_description": ctx.task_description,
            "basic_instruction": ctx.baseline_instruction,
            "n": str(ctx.count),
            "stage_id": ctx.stage_id,
        }
        return fill_metaprompt(ctx.metaprompt, values).strip()
    text = _SYNTH_GUIDANCE if ctx.mode == "synth" else _GUIDANCE
    if ctx.count > 1:
        text = text.replace(
            "Write an instruction that:", f"Write {ctx.count} instructions, each of which:", 1
        )
        text = text.replace("- follows the tip.", "- follows its tip.", 1)
    if ctx.length_words:
        text += f"\n- is at most {ctx.length_words} words long."
    return text


def build_proposal_messages(ctx: ProposalContext) -> list[dict[str, Any]]:
    """The system and user messages asking the meta-model for `ctx.count` new instructions."""
    what = "a new instruction" if ctx.count == 1 else f"{ctx.count} new, different instructions"
    intro = (_SYNTH_INTRO if ctx.mode == "synth" else _INTRO).format(what=what)
    reply = _REPLY if ctx.count == 1 else _BATCH_REPLY.format(n=ctx.count)
    listed = "\n".join(_sections_listed(ctx))
    system = (
        f"{PROPOSAL_HEADER}\n{intro}\n\nYou are given these sections:\n{listed}\n\n{_guidance(ctx)}\n{reply}"
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": _proposal_user(ctx)}]


def build_summary_messages(
    examples: list[FewShotExample], task_description: str, max_examples: int = MAX_SUMMARY_EXAMPLES
) -> list[dict[str, Any]]:
    """The system and user messages asking the meta-model for a 2-3 sentence data summary."""
    user = "\n\n".join(
        [
            _section("task_description", task_description or "No task description provided."),
            format_examples(examples[:max_examples]),
            "Summary:",
        ]
    )
    return [{"role": "system", "content": _SUMMARY_SYSTEM}, {"role": "user", "content": user}]
