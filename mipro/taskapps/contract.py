"""Gen B task-app wire models (synth-ai 0.2.16-0.3.9; research notes §1.3, §1.5, §1.6).

Requests are parsed *leniently*: unknown keys are ignored and every field has a default, so Gen A/B/B'/C
callers all get through (`mode` and `ops` are optional here although synth's Gen B requires them).
Responses carry the full Gen B shape.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class RolloutEnvSpec(_Lenient):
    env_id: str | None = None
    env_name: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None


class RolloutPolicySpec(_Lenient):
    policy_id: str | None = None
    policy_name: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)


class PolicyConfig(_Lenient):
    """The `policy.config` keys a task app reads (others, e.g. provider or prompt_template, are ignored)."""

    model: str | None = None
    inference_url: str | None = None
    api_base: str | None = None
    base_url: str | None = None
    temperature: float | None = None
    max_completion_tokens: int | None = None
    max_tokens: int | None = None
    trace_correlation_id: str | None = None

    def route_base(self) -> str:
        """`inference_url`, else the ignored-by-design fallbacks `api_base` / `base_url` (synth order)."""
        for value in (self.inference_url, self.api_base, self.base_url):
            if value and value.strip():
                return value.strip()
        return ""

    def token_limit(self, default: int) -> int:
        return self.max_completion_tokens or self.max_tokens or default


class RolloutRequest(_Lenient):
    run_id: str | None = None
    env: RolloutEnvSpec = Field(default_factory=RolloutEnvSpec)
    policy: RolloutPolicySpec = Field(default_factory=RolloutPolicySpec)
    ops: list[Any] | None = None
    record: dict[str, Any] | None = None
    mode: str | None = None
    on_done: str | None = None
    trace_correlation_id: str | None = None


class RolloutStep(BaseModel):
    obs: dict[str, Any]
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    reward: float | None = None
    done: bool = False
    truncated: bool | None = None
    info: dict[str, Any] | None = None


class RolloutTrajectory(BaseModel):
    env_id: str
    policy_id: str
    steps: list[RolloutStep]
    final: dict[str, Any] | None = None
    length: int
    inference_url: str


class RolloutMetrics(BaseModel):
    episode_returns: list[float]
    mean_return: float
    num_steps: int
    num_episodes: int = 0
    outcome_score: float | None = None
    events_score: float | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class RolloutResponse(BaseModel):
    run_id: str
    trajectories: list[RolloutTrajectory]
    branches: dict[str, list[str]] = Field(default_factory=dict)
    metrics: RolloutMetrics
    aborted: bool = False
    ops_executed: int = 0
    trace_correlation_id: str | None = None
    trace: dict[str, Any] | None = None
    pipeline_metadata: dict[str, Any] = Field(default_factory=dict)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class TaskDescriptor(_Open):
    id: str
    name: str
    description: str | None = None
    version: str | None = None


class DatasetInfo(_Open):
    id: str | None = None
    name: str | None = None
    version: str | None = None
    splits: list[str] | None = None
    default_split: str | None = None
    description: str | None = None


class RubricCriterion(_Open):
    id: str
    description: str
    weight: float | None = None


class RubricSection(_Open):
    name: str
    criteria: list[RubricCriterion] = Field(default_factory=list)


class RubricInfo(_Open):
    outcome: RubricSection | None = None
    events: RubricSection | None = None


class InferenceInfo(_Open):
    model: str | None = None
    inference_url: str | None = None


class LimitsInfo(_Open):
    max_turns: int | None = None
    max_response_tokens: int | None = None
    timeout_seconds: int | None = None


class TaskInfo(_Open):
    task: TaskDescriptor
    environment: str
    dataset: DatasetInfo
    rubric: RubricInfo
    inference: InferenceInfo
    limits: LimitsInfo
    task_metadata: dict[str, Any] = Field(default_factory=dict)
