"""The meta-model prompts of the grounded proposer (MIPROv2 step 2), in OpenAI chat format.

The same messages go to a real meta-model (OpenAI, Groq, ...) and to the simulated LLM. They follow
DSPy's GroundedProposer (`GenerateSingleModuleInstruction`): a task description, a data summary, task
examples with their expected outputs, the basic (current) instruction, an optional history of scored
instructions, and a tip. Sections are XML-like tags so that multi-line values stay unambiguous.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator

from mipro.proposer.examples import format_examples, format_failed_examples
from mipro.proposer.tips import TIP_NAMES, tip_text
from mipro.types import FewShotExample

PROPOSAL_HEADER = "You are an expert prompt engineer who writes instructions for language-model programs."
SUMMARY_HEADER = "You are an expert data analyst who describes datasets for prompt engineers."

MAX_HISTORY_EACH_SIDE = 3
MAX_FAILED_EXAMPLES = 5
MAX_SUMMARY_EXAMPLES = 20

_PROPOSAL_SYSTEM = f"""{PROPOSAL_HEADER}
Use the information below to learn about a task that we are trying to solve using calls to a language \
model (LM), then write a new instruction that will be used to prompt the LM to better solve the task.

You are given these sections:
- <task_description>: what the program does.
- <data_summary>: observations about the task's data (optional).
- <basic_instruction>: the instruction the LM is prompted with today.
- <examples>: inputs of the task with the expected outputs.
- <history>: earlier instructions with their scores, higher is better (optional). Keep what the \
best-scoring instructions do and avoid what the worst ones do.
- <tip>: a suggestion about the style of the new instruction.
- <proposal>: the number of this proposal; proposals with different numbers should differ.

Write an instruction that:
- keeps every constraint of the basic instruction (the allowed outputs, the tool to call, the output format);
- is grounded in the examples: where they show which kinds of inputs lead to which outputs, state those \
patterns as short rules, one per line, e.g. "- If the input mentions <words>, the answer is <output>.";
- follows the tip.
Reply with the new instruction only: no preamble, no explanation, no quotes, no code fences."""

# Added to the system prompt only when no rollout of the basic instruction scored well enough to be a demo.
_FAILED_SECTION = (
    "- <failed_examples>: inputs on which the LM, prompted with the basic instruction, scored low, with the "
    "answers it gave (the expected outputs are unknown). No answer scored well: the LM may answer in a "
    "format the task does not accept, so make the new instruction state what the task description "
    "requires, e.g. the exact output format.\n"
)
_HISTORY_LINE = "- <history>:"

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
    """Everything the grounded proposer shows the meta-model for one proposal.

    `max_examples` caps the demos shown (DSPy shows 3; more grounds more rules but costs tokens). Each
    proposal shows a different window of `demos` (rotated by `proposal_index`), so a round of proposals is
    grounded in the whole pool, not in the same first few examples.
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

    @field_validator("tip")
    @classmethod
    def _known_tip(cls, value: str) -> str:
        if value not in TIP_NAMES:
            raise ValueError(f"unknown tip {value!r}; known tips: {', '.join(TIP_NAMES)}")
        return value


def _section(tag: str, body: str, attrs: str = "") -> str:
    return f"<{tag}{attrs}>\n{body.strip()}\n</{tag}>"


def _history_shown(history: list[ScoredInstruction]) -> list[ScoredInstruction]:
    """The best and the worst few instructions, sorted by ascending score (best last, as in DSPy)."""
    ranked = sorted(history, key=lambda item: item.score)
    if len(ranked) > 2 * MAX_HISTORY_EACH_SIDE:
        ranked = ranked[:MAX_HISTORY_EACH_SIDE] + ranked[-MAX_HISTORY_EACH_SIDE:]
    return ranked


def format_history(history: list[ScoredInstruction]) -> str:
    """The `<history>` section: one `<instruction score="...">` block per shown instruction."""
    blocks = [
        _section("instruction", item.text, f' score="{item.score:.4f}"') for item in _history_shown(history)
    ]
    return _section("history", "\n".join(blocks))


def examples_shown(ctx: ProposalContext) -> list[FewShotExample]:
    """The window of `max_examples` demos this proposal shows, starting where the previous one stopped."""
    count = min(ctx.max_examples, len(ctx.demos))
    if count == 0:
        return []
    start = ctx.proposal_index * count % len(ctx.demos)
    return [ctx.demos[(start + j) % len(ctx.demos)] for j in range(count)]


def _proposal_user(ctx: ProposalContext) -> str:
    parts = [_section("task_description", ctx.task_description or "No task description provided.")]
    if ctx.data_summary:
        parts.append(_section("data_summary", ctx.data_summary))
    parts.append(_section("basic_instruction", ctx.baseline_instruction))
    parts.append(format_examples(examples_shown(ctx)))
    if ctx.failed_examples:
        parts.append(format_failed_examples(ctx.failed_examples[:MAX_FAILED_EXAMPLES]))
    if ctx.history:
        parts.append(format_history(ctx.history))
    parts.append(_section("tip", tip_text(ctx.tip) or "No tip: write the instruction as you see fit."))
    parts.append(
        _section(
            "proposal",
            f"This is proposal number {ctx.proposal_index}.",
            f' index="{ctx.proposal_index}"',
        )
    )
    parts.append("Proposed instruction:")
    return "\n\n".join(parts)


def build_proposal_messages(ctx: ProposalContext) -> list[dict[str, Any]]:
    """The system and user messages asking the meta-model for one new instruction."""
    system = _PROPOSAL_SYSTEM
    if ctx.failed_examples:
        system = system.replace(_HISTORY_LINE, _FAILED_SECTION + _HISTORY_LINE, 1)
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
