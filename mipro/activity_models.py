"""Inputs and outputs of the activities: one pydantic model in, one out, for every activity."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator

from mipro.config import JobConfig, JudgeConfig, MetaModelConfig, PolicyConfig, PoolName, Price
from mipro.proposer.profile import ProposerSettings
from mipro.providers import inherited_upstream
from mipro.tpe import TPESettings
from mipro.types import (
    ChatMessage,
    CompiledCandidate,
    FewShotExample,
    SeedOutcome,
    StagePolicy,
    StageSpec,
    Usage,
)

TASK_QUEUE = "mipro"


class StageUpstream(BaseModel):
    """A stage's own policy, resolved (mipro/providers.py): where its calls go and what they cost. No
    secret: the worker reads the key from `api_key_env`."""

    model: str
    inference_url: str
    api_key_env: str | None
    price: Price | None
    body_overrides: dict[str, Any] = Field(default_factory=dict)  # temperature, max_completion_tokens

    @classmethod
    def of(cls, config: JobConfig, policy: StagePolicy) -> StageUpstream:
        job = config.policy
        url, key_env, _ = inherited_upstream(
            policy.inference_url,
            policy.api_key_env,
            policy.provider,
            (job.inference_url, job.api_key_env, job.provider),
        )
        overrides = {"temperature": policy.temperature, "max_completion_tokens": policy.max_completion_tokens}
        return cls(
            model=policy.model,
            inference_url=url,
            api_key_env=key_env,
            price=config.price_of(policy.model),
            body_overrides={k: v for k, v in overrides.items() if v is not None},
        )


class RolloutTarget(BaseModel):
    """Everything an evaluation needs to know about the task app and the policy model (no secrets)."""

    task_app_url: str
    task_app_api_key_env: str | None
    env_name: str
    env_config: dict[str, Any]
    policy: PolicyConfig
    policy_price: Price | None
    stages: list[StageSpec]
    prompt_template: dict[str, Any]
    rollout_timeout_seconds: float
    rollout_retries: int
    # The LLM judge scoring the rollouts (its upstream resolved), and its price; None: the task app's reward.
    judge: JudgeConfig | None = None
    judge_price: Price | None = None
    stage_policies: dict[str, StageUpstream] = Field(default_factory=dict)  # stages with their own model

    @classmethod
    def from_config(cls, config: JobConfig, pool: PoolName = "online") -> RolloutTarget:
        """The target of rollouts on seeds of `pool` (its env config is the pool's)."""
        prompt = config.initial_prompt
        template: dict[str, Any] = {}  # none yet: the baseline is still to be gathered from the app
        if prompt is not None:
            template = {
                "id": prompt.id,
                "name": prompt.name,
                "sections": [m.model_dump() for m in prompt.ordered()],
                "wildcards": prompt.wildcards,
                "metadata": prompt.metadata,
            }
        stages = config.known_stages()
        judge = config.judge.resolved(config.policy) if config.judge and config.judge.enabled else None
        return cls(
            task_app_url=config.task_app_url.rstrip("/"),
            task_app_api_key_env=config.task_app_api_key_env,
            env_name=config.mipro.env_name,
            env_config=config.env_config_for(pool),
            policy=config.policy_for(pool),
            policy_price=config.price_of(config.policy_for(pool).model),
            stages=stages,
            prompt_template=template,
            rollout_timeout_seconds=config.mipro.rollout_timeout_seconds,
            rollout_retries=config.mipro.rollout_retries,
            judge=judge,
            judge_price=config.price_of(judge.model) if judge else None,
            stage_policies={
                stage.stage_id: StageUpstream.of(config, stage.policy)
                for stage in stages
                if stage.policy is not None
            },
        )


class HealthCheckInput(BaseModel):
    task_app_url: str
    task_app_api_key_env: str | None = None
    # The job's seed pools by name and its env_config split: seeds outside the ranges the task app
    # advertises in /task_info (if it does) fail the health check, naming them.
    seed_pools: dict[str, list[int]] = Field(default_factory=dict)
    split: str | None = None
    pool_splits: dict[str, str | None] = Field(default_factory=dict)  # seed pool name -> its split, if set
    # The policy's OpenAI-compatible base URL: its /v1/models says whether it is the simulated LLM.
    policy_inference_url: str | None = None
    policy_api_key_env: str | None = None  # the probe of /models sends the policy's key, as rollouts do


class TaskAppInfo(BaseModel):
    healthy: bool
    description: str | None = None
    task_info: dict[str, Any] | None = None
    data_source: str | None = None  # which data the task app says it serves (/health or /task_info)
    simulated_llm: bool | None = None  # the policy's /v1/models names the simulated LLM (None: unknown)


class EvaluateInput(BaseModel):
    job_id: str
    label: str  # e.g. "trial-0007", "baseline-val": names the correlation ids and the activity summary
    target: RolloutTarget
    candidate: CompiledCandidate
    seeds: list[int]
    concurrency: int = Field(ge=1)
    capture_examples: bool = False
    max_cost_usd: float | None = None  # hard allowance, enforced by the interceptor call by call
    max_tokens: int | None = None


class GatherInput(BaseModel):
    """One rollout whose LLM calls pass unchanged, to read the messages the task app sends."""

    job_id: str
    target: RolloutTarget  # with no stages: nothing is substituted
    seed: int


class GatherOutput(BaseModel):
    calls: list[list[ChatMessage]]  # each LLM call's messages as the app sent them, in order
    usage: Usage


class EvaluateOutput(BaseModel):
    outcomes: list[SeedOutcome]  # in the order of `seeds`
    skipped_for_budget: bool = False
    halted: bool = False  # not run: the job had stopped (set by the workflow, never by the activity)
    # Spent by crashed attempts on seeds they did not finish (their finished seeds are in `outcomes`).
    lost_usage: Usage = Field(default_factory=Usage)

    @property
    def ran(self) -> bool:
        return not (self.skipped_for_budget or self.halted)

    @property
    def usage(self) -> Usage:
        total = Usage()
        for o in self.outcomes:
            total = total.plus(o.usage)
        return total


class ProposeInput(BaseModel):
    job_id: str
    meta: MetaModelConfig
    meta_price: Price | None
    stage: StageSpec
    task_description: str
    demos: list[FewShotExample]
    existing: list[str]
    n: int = Field(ge=0)
    duplicate_retry_limit: int
    seed: int
    history: list[tuple[str, float]] = Field(default_factory=list)
    failed_examples: list[FewShotExample] = Field(default_factory=list)  # shown when no demo was bootstrapped
    max_cost_usd: float | None = None  # no meta-model call starts that could exceed these
    max_tokens: int | None = None
    proposer: ProposerSettings = Field(default_factory=ProposerSettings)  # mode, effort, batch size, spec
    reference_inputs: list[str] = Field(default_factory=list)  # the reference corpus (reference_pool inputs)


class ProposeOutput(BaseModel):
    instructions: list[str]
    usage: Usage
    duplicates_rejected: int = 0
    failures: int = 0


class SuggestInput(BaseModel):
    space: list[int]
    history: list[tuple[list[int], float, int]]  # (params, mean score, n)
    tpe: TPESettings
    seed: int
    k: int
    exclude: list[list[int]] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _flat_settings_of_older_workers(cls, data: Any) -> Any:
        """Workflows recorded before the settings became one model sent them as flat fields: still served."""
        if isinstance(data, dict) and "tpe" not in data:
            names = set(TPESettings.model_fields)
            settings = {k: v for k, v in data.items() if k in names}
            data = {**{k: v for k, v in data.items() if k not in names}, "tpe": settings}
        return data


class SuggestOutput(BaseModel):
    configs: list[list[int]]


class EvaluateBatchInput(BaseModel):
    """Evaluations that run together in one activity and share `concurrency` rollout slots: when one
    finishes, its slots go to the others at once, so no evaluation leaves slots idle in its last wave."""

    job_id: str
    label: str  # e.g. "iteration-0003"
    items: list[EvaluateInput]  # each with its own target, candidate, seeds and allowance
    concurrency: int = Field(ge=1)  # rollouts in flight over all items (the job's max_concurrent)
    max_parallel: int = Field(ge=1)  # items whose rollouts may be in flight at once (max_parallel_trials)
    # Among the job's batches in flight on one worker at once, a lower number gets freed slots first (the
    # iteration: an older one is never held back by the next).
    priority: int = 0
    # Where a lost attempt on another worker stopped (its last heartbeat), when the batch is started again on
    # a new worker: used when this activity has no heartbeat of its own yet.
    resume: BatchProgress | None = None
    # Signal the workflow (BATCH_DRAINING_SIGNAL) once the rollouts still to start fit in one wave of
    # `concurrency`: an overlapped search then launches the next iteration on the scores so far.
    notify_draining: bool = False


BATCH_DRAINING_SIGNAL = "batch_draining"


class BatchDraining(BaseModel):
    """A batch is near its end (one wave of rollouts left to start): its items' scores so far (item label
    -> seed -> score)."""

    label: str  # the batch's, e.g. "iteration-0003"
    scores: dict[str, dict[int, float]]


class EvaluateBatchOutput(BaseModel):
    outputs: list[EvaluateOutput]  # in the order of `items`


class EvaluationProgress(BaseModel):
    """An evaluation attempt's heartbeat: what is done and spent. A retried attempt resumes from it, so no
    finished seed runs twice and the budget allowance counts what earlier attempts spent."""

    label: str
    total: int
    done: int = 0
    finished: list[SeedOutcome] = Field(default_factory=list)  # over all attempts
    lost: Usage = Field(default_factory=Usage)  # earlier attempts' spend on seeds they did not finish
    attempt_committed: Usage = Field(default_factory=Usage)  # this attempt: settled + reserved LLM usage
    attempt_finished: Usage = Field(default_factory=Usage)  # this attempt: usage of the seeds it finished

    def next_attempt(self) -> EvaluationProgress:
        """Where the next attempt starts: what this one committed beyond its finished seeds is lost."""
        unfinished = self.attempt_committed.minus(self.attempt_finished).at_least_zero()
        return EvaluationProgress(
            label=self.label, total=self.total, done=len(self.finished), finished=self.finished,
            lost=self.lost.plus(unfinished),
        )  # fmt: skip

    def spent(self) -> Usage:
        total = self.lost
        for outcome in self.finished:
            total = total.plus(outcome.usage)
        return total


class BatchProgress(BaseModel):
    """A batch evaluation attempt's heartbeat: each item's progress, in the order of the items."""

    items: list[EvaluationProgress]
