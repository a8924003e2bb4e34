"""Domain types shared by the workflow, the activities, the interceptor and the CLI.

Everything here is a pydantic model so it can cross every boundary (Temporal payloads, HTTP, files).
This module imports nothing heavy: the workflow sandbox re-imports it for every run.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class ChatMessage(BaseModel):
    """One OpenAI chat message. Unknown keys are kept so nothing a task app sends is lost."""

    model_config = ConfigDict(extra="allow")

    role: str
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    name: str | None = None

    def as_openai(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class FewShotExample(BaseModel):
    """A demonstration bootstrapped from a good baseline rollout.

    `input` is the final user turn the task app sent (as the interceptor saw it) and `answer` the
    assistant message the model returned (plain content or tool calls).
    """

    seed: int
    stage_id: str
    input: str
    answer: ChatMessage
    score: float


class StagePrompt(BaseModel):
    """The prompt of one stage of a candidate: an instruction and the demos to inject."""

    stage_id: str
    instruction: str
    demos: list[FewShotExample] = Field(default_factory=list)


class CompiledCandidate(BaseModel):
    """An immutable candidate prompt, ready for the interceptor. Identified by its content hash."""

    stages: list[StagePrompt]

    @property
    def content_hash(self) -> str:
        raw = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(raw.encode()).hexdigest()[:20]


class BaselineMessage(BaseModel):
    """One message of a stage's baseline as the task app renders it (`content`; the reference's `pattern`)."""

    model_config = ConfigDict(extra="forbid")

    role: str
    content: str = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _pattern_is_content(cls, data: Any) -> Any:
        if isinstance(data, dict) and "pattern" in data and "content" not in data:
            data = {("content" if k == "pattern" else k): v for k, v in data.items()}
        return data


class StagePolicy(BaseModel):
    """A stage's own policy model (the reference's stage `policy` / `policy_config`): the interceptor sends
    the stage's calls to it. Without an `inference_url` it is the provider's (openai, groq) when that
    differs from the job policy's, else the job policy's URL and key. `temperature` and
    `max_completion_tokens`, when set, replace the task app's values in the stage's calls."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str = Field(min_length=1)
    provider: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    inference_url: str | None = None
    api_key_env: str | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_completion_tokens: int | None = Field(default=None, ge=1)

    @field_validator("provider", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


class StageSpec(BaseModel):
    """Where a stage's instruction lives in the messages the task app sends, and how to change it.

    `mode="replace"` swaps the located baseline text for the candidate instruction; `mode="follow"`
    keeps it and puts the candidate instruction right after it. (The reference's PYTHON transforms are
    refused: they would run config- or model-supplied code.) Unknown keys are refused.

    `module_id` names the pipeline module the stage belongs to (`mipro.modules`; "default" for stages declared
    flat). `baseline_messages` are the stage's own messages as the task app renders them: the config checks
    the baseline instruction against them instead of `initial_prompt`, and without a `baseline_instruction`
    the stage's is the content of their first message of the stage's `role`.
    """

    model_config = ConfigDict(extra="forbid")

    stage_id: str = "default"
    module_id: str = "default"
    baseline_instruction: str
    baseline_messages: list[BaselineMessage] | None = None
    role: str = "system"
    mode: Literal["replace", "follow"] = "replace"
    match: Literal["exact", "substring"] = "substring"
    case_sensitive: bool = True
    max_instruction_slots: Literal[1] = 1  # one instruction per stage: the search picks which
    max_demo_slots: int | None = Field(default=None, ge=0)  # this stage's demo set size (default: mipro's)
    policy: StagePolicy | None = None  # the stage's own model (default: the job's policy)

    @model_validator(mode="before")
    @classmethod
    def _policy_config_is_policy(cls, data: Any) -> Any:
        """The reference spells a stage's policy `policy` or `policy_config`."""
        if not isinstance(data, dict) or "policy_config" not in data:
            return data
        if data.get("policy") is not None:
            raise ValueError("policy and policy_config are both set: they name the same thing, keep one")
        data = dict(data)
        data["policy"] = data.pop("policy_config")
        return data

    @model_validator(mode="before")
    @classmethod
    def _baseline_from_messages(cls, data: Any) -> Any:
        """Without a baseline_instruction, the first `role` message of baseline_messages is the baseline."""
        if not isinstance(data, dict) or data.get("baseline_instruction") is not None:
            return data
        messages = data.get("baseline_messages")
        role = data.get("role", "system")
        if isinstance(messages, list):
            for message in messages:
                text = message.get("content", message.get("pattern")) if isinstance(message, dict) else None
                if isinstance(message, dict) and message.get("role") == role and isinstance(text, str):
                    return {**data, "baseline_instruction": text}
            raise ValueError(
                f"baseline_instruction is not set and baseline_messages has no {role!r} message to take it "
                f"from: set baseline_instruction, or add the stage's {role} message to baseline_messages"
            )
        return data

    @field_validator("mode", mode="before")
    @classmethod
    def _reference_mode_names(cls, value: Any) -> Any:
        """REPLACE / FOLLOW as the reference spells them; PYTHON refused with the reason."""
        if isinstance(value, str) and value.lower() == "python":
            raise ValueError(
                "PYTHON transforms are refused: they would execute code from the config or the meta-model; "
                "use replace or follow"
            )
        return value.lower() if isinstance(value, str) else value


class Usage(BaseModel):
    """Token usage and cost of LLM calls."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def minus(self, other: Usage) -> Usage:
        return Usage(
            calls=self.calls - other.calls,
            prompt_tokens=self.prompt_tokens - other.prompt_tokens,
            completion_tokens=self.completion_tokens - other.completion_tokens,
            cost_usd=self.cost_usd - other.cost_usd,
        )

    def at_least_zero(self) -> Usage:
        return Usage(
            calls=max(0, self.calls),
            prompt_tokens=max(0, self.prompt_tokens),
            completion_tokens=max(0, self.completion_tokens),
            cost_usd=max(0.0, self.cost_usd),
        )

    def plus(self, other: Usage) -> Usage:
        return Usage(
            calls=self.calls + other.calls,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cost_usd=self.cost_usd + other.cost_usd,
        )


ErrorKind = Literal[
    "http_5xx",
    "http_4xx",
    "rate_limited",  # 429 from the task app: retried, after its Retry-After when it sends one
    "timeout",
    "connection",
    "bad_json",
    "no_reward",
    "llm_error",
    "transform",
    "budget",
    "judge_unparseable",  # the LLM judge answered, but not a score in [0, 1] (mipro/judge.py)
]


class SeedOutcome(BaseModel):
    """The result of one rollout of a candidate on one seed: a score, or an error (never both).

    With an LLM judge, `score` is the rollout's score as the judge's mode forms it, `reward` the task app's
    own (None when it sent none) and `judge_score` the judge's (None when it was not asked). `usage` is
    everything the rollout's LLM calls cost, the policy's and the judge's (what the budgets and the budget
    estimates count); `judge_usage` is the judge's part of it, a cost category of its own."""

    seed: int
    score: float | None = None
    error: ErrorKind | None = None
    error_detail: str | None = None
    attempts: int = 1
    usage: Usage = Field(default_factory=Usage)
    example: FewShotExample | None = None  # filled only when the evaluation asks to capture demos
    # Per stage, the demo its last LLM call of the rollout yields (`example` is the rollout's last call's).
    examples: list[FewShotExample] = Field(default_factory=list)
    reward: float | None = None
    judge_score: float | None = None
    judge_usage: Usage = Field(default_factory=Usage)  # included in `usage`

    @property
    def stage_examples(self) -> list[FewShotExample]:
        """Every stage's demo; results recorded before `examples` existed carry only `example`."""
        return self.examples or ([self.example] if self.example is not None else [])

    @property
    def policy_usage(self) -> Usage:
        """The policy model's part of `usage`."""
        return self.usage.minus(self.judge_usage)

    @property
    def ok(self) -> bool:
        return self.score is not None


class CandidateChoice(BaseModel):
    """A point of the search space: an instruction index and a demo-set index per stage."""

    instruction: list[int]
    demo_set: list[int]

    @property
    def key(self) -> str:
        parts = [f"{i}:{d}" for i, d in zip(self.instruction, self.demo_set, strict=True)]
        return "|".join(parts)

    def as_params(self) -> list[int]:
        out: list[int] = []
        for i, d in zip(self.instruction, self.demo_set, strict=True):
            out += [i, d]
        return out
