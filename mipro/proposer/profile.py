"""What the proposer shows and asks for: its mode and the levels `proposer_effort`, `proposer_output_tokens`.

`proposer_effort` sets the context of a proposal (how many demos, failed answers, scored instructions and
reference inputs it shows; whether a data summary is written first) and the meta-model's temperature;
`proposer_output_tokens` its token limit per instruction and the length the prompt asks for. A level fills
`mipro.meta.temperature` / `mipro.meta.max_tokens` where the config does not set them (at config load);
an explicit value wins. No level (None) is MEDIUM context with the meta-model's own settings.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, JsonValue

Effort = Literal["LOW_CONTEXT", "LOW", "MEDIUM", "HIGH"]
OutputTokens = Literal["RAPID", "FAST", "SLOW"]
ProposerMode = Literal["dspy", "synth", "gepa-ai"]

MAX_TOKENS_PER_CALL = (
    16_384  # a batch call asks for instructions_per_batch x the per-instruction limit, capped
)


class ContextProfile(BaseModel):
    """How much one proposal shows the meta-model."""

    demos: int  # bootstrapped demos shown per proposal (a different window of the pool each time)
    summary_examples: int  # demos the data summary is written from (0: no summary; dspy mode only)
    history_each_side: int  # best and worst scored instructions shown when re-proposing
    failed_examples: int  # low-scoring baseline answers shown when no demo was bootstrapped
    reference_inputs: int  # inputs of the reference corpus shown per proposal (rotated like the demos)
    temperature: float  # the meta-model's temperature unless mipro.meta.temperature is set


EFFORT: dict[str, ContextProfile] = {
    "LOW_CONTEXT": ContextProfile(
        demos=2,
        summary_examples=0,
        history_each_side=1,
        failed_examples=2,
        reference_inputs=5,
        temperature=0.6,
    ),
    "LOW": ContextProfile(
        demos=3,
        summary_examples=10,
        history_each_side=2,
        failed_examples=3,
        reference_inputs=10,
        temperature=0.7,
    ),
    "MEDIUM": ContextProfile(
        demos=5,
        summary_examples=20,
        history_each_side=3,
        failed_examples=5,
        reference_inputs=20,
        temperature=0.8,
    ),
    "HIGH": ContextProfile(
        demos=10,
        summary_examples=40,
        history_each_side=5,
        failed_examples=8,
        reference_inputs=50,
        temperature=1.0,
    ),
}
DEFAULT_EFFORT = "MEDIUM"

# proposer_output_tokens: (max_tokens per instruction, the length in words the prompt asks for at most)
OUTPUT_TOKENS: dict[str, tuple[int, int]] = {"RAPID": (256, 60), "FAST": (512, 150), "SLOW": (2048, 400)}


def context_profile(effort: str | None) -> ContextProfile:
    return EFFORT[effort or DEFAULT_EFFORT]


def meta_defaults(effort: str | None, output_tokens: str | None) -> dict[str, float | int]:
    """The meta-model settings the levels imply (filled in where the config sets none)."""
    defaults: dict[str, float | int] = {}
    if effort is not None:
        defaults["temperature"] = EFFORT[effort].temperature
    if output_tokens is not None:
        defaults["max_tokens"] = OUTPUT_TOKENS[output_tokens][0]
    return defaults


class ProposerSettings(BaseModel):
    """The proposer's settings of a job (from `mipro`), as the proposal activity gets them."""

    mode: ProposerMode = "dspy"
    effort: Effort | None = None
    output_tokens: OutputTokens | None = None
    instructions_per_batch: int = Field(default=1, ge=1)
    spec: dict[str, JsonValue] | str | None = None  # the synth proposer's system spec (read at config load)
    spec_max_tokens: int = Field(default=5000, ge=1)
    metaprompt: str | None = None  # the synth proposer's custom meta-prompt template

    @property
    def grounded_in_spec(self) -> bool:
        return self.mode in ("synth", "gepa-ai")

    @property
    def context(self) -> ContextProfile:
        return context_profile(self.effort)

    @property
    def length_words(self) -> int | None:
        return OUTPUT_TOKENS[self.output_tokens][1] if self.output_tokens else None

    def max_tokens(self, per_instruction: int, count: int) -> int:
        """The token limit of a call asking for `count` instructions."""
        return min(MAX_TOKENS_PER_CALL, max(per_instruction, per_instruction * count))
