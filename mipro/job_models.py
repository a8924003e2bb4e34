"""The workflow's input, carried state, queries and result."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from mipro.budget import Counters, Spend
from mipro.config import JobConfig
from mipro.types import CandidateChoice, ChatMessage, FewShotExample, Usage

Phase = Literal["starting", "health_check", "bootstrap", "proposal", "search", "final_eval", "done"]
# stopped_on_errors: the job ended early because rollouts kept failing (max_consecutive_errors or
# max_error_rate);
# it returns the best candidate found, without a final test evaluation against a failing app.
JobStatus = Literal["running", "succeeded", "stopped_on_errors", "cancelled", "terminated", "failed"]


class Event(BaseModel):
    seq: int
    type: str
    level: Literal["info", "warning", "error"] = "info"
    message: str
    data: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime


class TrialRecord(BaseModel):
    trial: int
    iteration: int
    choice: CandidateChoice
    candidate_hash: str
    seeds: list[int]
    minibatch_score: float | None  # mean over successful rollouts; None if all failed
    paired_lift: float | None  # mean(candidate - baseline) on the same seeds
    n: int
    errors: int
    elapsed_seconds: float = 0.0  # since the job started, when the trial was recorded
    spend_usd: float = 0.0  # cumulative spend of the job when the trial was recorded


class ValidationRecord(BaseModel):
    """A promotion: one candidate evaluated on the validation seeds."""

    after_trials: int
    key: str
    score: float
    incumbent: bool  # it became the best so far
    elapsed_seconds: float
    spend_usd: float


class CandidateSummary(BaseModel):
    """A candidate tried, with what is known of it."""

    key: str
    choice: CandidateChoice
    candidate_hash: str
    demo_counts: list[int]
    minibatch_score: float | None
    minibatch_n: int
    paired_lift: float | None
    validation_score: float | None = None
    test_score: float | None = None


class JobState(BaseModel):
    """Everything the workflow knows. Carried across continue-as-new; rebuilt by replay otherwise."""

    phase: Phase = "starting"
    started_at: datetime | None = None
    iteration: int = 0
    task_description: str = ""
    task_app_data_source: str | None = None  # what the task app said it serves, at the health check
    simulated_llm: bool | None = None  # what the policy's /v1/models said, at the health check
    instructions: list[list[str]] = Field(default_factory=list)  # per stage
    demo_pool: list[list[FewShotExample]] = Field(default_factory=list)  # per stage
    demo_sets: list[list[list[int]]] = Field(default_factory=list)  # per stage: indices into demo_pool
    # per stage, when no demo was bootstrapped: a few of the baseline's low-scoring rollouts, for the proposer
    failed_examples: list[list[FewShotExample]] = Field(default_factory=list)
    # per stage: the reference corpus, the inputs (query parts) of the baseline's rollouts on reference_pool
    reference_inputs: list[list[str]] = Field(default_factory=list)
    baseline_bootstrap_score: float | None = None
    trials: list[TrialRecord] = Field(default_factory=list)
    online_cache: dict[str, dict[int, float]] = Field(default_factory=dict)  # candidate hash -> seed -> score
    validation: dict[str, float] = Field(default_factory=dict)  # candidate key -> validation mean
    # candidate key -> {seed: score} on the validation seeds it scored: promotions compare paired seeds
    validation_seeds: dict[str, dict[int, float]] = Field(default_factory=dict)
    validations: list[ValidationRecord] = Field(default_factory=list)
    best_key: str | None = None
    spend: Spend = Field(default_factory=Spend)
    counters: Counters = Field(default_factory=Counters)
    events: list[Event] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)  # also emitted as events of level "warning"
    next_seq: int = 1
    stop_reason: str | None = None
    paused: bool = False
    waiting_for_task_app: bool = False  # the task app failed its health check mid-job: waiting, pause-like
    failing_seeds: list[str] = Field(default_factory=list)  # "pool:seed" failing every re-run, app answering
    rollout_estimate: Usage | None = None  # mean usage of one baseline rollout, measured at bootstrap
    runs: int = 1  # workflow runs so far (continue-as-new starts a new one)
    regenerated: list[int] = Field(default_factory=list)  # iterations at which instructions were re-proposed
    start_requested: bool = False  # a job created with auto_start = false waits for the `start` update
    # A promotion is due: its validation runs beside the next iteration's trials (or alone after the last)
    promotion_due: bool = False


class ActivityQueues(BaseModel):
    """Where a job's activities run: task queues of their own (workers serving only rollouts, or only
    proposals, e.g. rate-limited per queue), or None for the workflow's own queue."""

    rollouts: str | None = None  # the task app: health checks and evaluations (needs the interceptor)
    proposals: str | None = None  # the meta-model


class MiproJobInput(BaseModel):
    job_id: str
    org: str = "default"
    config: JobConfig
    task_queues: ActivityQueues = Field(default_factory=ActivityQueues)
    state: JobState | None = None
    upsert_search_attributes: bool = True  # False when the namespace lacks them (see mipro.search_attributes)
    auto_start: bool = True  # False: the job waits for the `start` update before doing anything


class EventsQuery(BaseModel):
    since_seq: int = 0
    limit: int = Field(default=200, ge=1, le=5000)


class Progress(BaseModel):
    job_id: str
    phase: Phase
    iteration: int
    num_iterations: int
    trials_done: int
    trials_planned: int
    rollouts_done: int
    rollout_errors: int
    errors_by_kind: dict[str, int]
    baseline_score: float | None
    best_minibatch_score: float | None
    best_validation_score: float | None
    spend_usd: float
    spend_by_category: dict[str, float]
    tokens: int
    elapsed_seconds: float
    eta_seconds: float | None
    started_at: datetime | None = None  # None until the job starts (auto_start = false)
    paused: bool = False
    waiting_for_task_app: bool = False  # an outage is being waited out (resumes by itself)
    evaluations_in_flight: int = 0  # evaluation activities running (trials, baselines, validations)
    proposals_in_flight: int = 0  # meta-model proposal activities running
    stop_reason: str | None = None


class StagePayload(BaseModel):
    """One stage of a candidate, as the reference's `stage_payloads` name it."""

    module_id: str = "default"
    instruction_indices: list[int]
    demo_indices: list[int]  # into the stage's demo pool


class BestPrompt(BaseModel):
    choice: CandidateChoice
    instructions: list[str]
    messages: list[ChatMessage]  # ready to use: the initial prompt with the instruction applied and demos
    # Per stage id, that stage's ready-to-use messages (a pipeline's `messages` are its first stage's).
    stage_messages: dict[str, list[ChatMessage]] = Field(default_factory=dict)
    instruction_lines: list[str] = Field(default_factory=list)  # the instructions' non-empty lines
    demo_indices: list[list[int]] = Field(default_factory=list)  # per stage, into its demo pool
    stage_payloads: dict[str, StagePayload] = Field(default_factory=dict)
    minibatch_score: float | None = None  # its mean over the online seeds it ran on
    validation_score: float | None = None
    test_score: float | None = None  # set in the result, after the final evaluation


class OptimizationResult(BaseModel):
    job_id: str
    status: JobStatus
    stop_reason: str | None
    best: BestPrompt
    baseline_test_score: float | None
    best_test_score: float | None
    lift: float | None
    baseline_validation_score: float | None
    best_validation_score: float | None
    total_trials: int
    total_rollouts: int
    rollout_errors: int
    rerun_errors: int = 0  # failed attempts of seeds that were run again (not in rollout_errors)
    errors_by_kind: dict[str, int]
    attempted_candidates: list[CandidateSummary]
    instructions: list[list[str]]  # per stage, by index: the texts behind every candidate's choice
    trials: list[TrialRecord]
    validations: list[ValidationRecord]
    costs: Spend
    elapsed_seconds: float
    simulated_llm: bool = False
    best_minibatch_score: float | None = None  # the best candidate's (the reference's best_minibatch_score)
    optimized_candidates: list[CandidateSummary] = Field(default_factory=list)  # validated above the baseline
    instruction_lines: list[str] = Field(default_factory=list)  # the best prompt's, as in `best`
    stage_payloads: dict[str, StagePayload] = Field(default_factory=dict)
    # No account balance here: what is left of termination.max_spend_usd ("budget_remaining"), if set.
    final_balance_usd: float | None = None
    balance_type: str | None = None
    task_app_data_source: str | None = None  # which data the task app said it serves (e.g. a fallback set)
    # proxy_models: the trials ran on this model; its minibatch scores against the validation scores
    proxy_model: str | None = None
    proxy_rank_agreement: float | None = None  # Spearman over the candidates with both (None under 3)
    proxy_candidates_compared: int = 0
    warnings: list[str] = Field(default_factory=list)  # e.g. no demo bootstrapped: check the answer format
