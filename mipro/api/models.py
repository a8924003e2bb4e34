"""Request and response bodies of the REST API (the workflow's own models are reused where they fit)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from mipro.api import examples
from mipro.job_models import CandidateSummary, Event, OptimizationResult, Progress
from mipro.types import ChatMessage

# stopped_on_errors: the job ended early because rollouts kept failing; it has a result (no test scores)
ApiJobStatus = Literal[
    "created",
    "running",
    "paused",
    "succeeded",
    "stopped_on_errors",
    "cancelled",
    "failed",
    "terminated",
    "timed_out",
]
CONFIG_NAME = r"^[A-Za-z0-9_.-]{1,64}$"

EXAMPLE_CONFIG: dict[str, Any] = {
    "prompt_learning": {
        "algorithm": "mipro",
        "task_app_url": "http://127.0.0.1:8102",
        "task_app_api_key_env": "ENVIRONMENT_API_KEY",
        "initial_prompt": {
            "messages": [
                {"role": "system", "pattern": "You are an expert banking assistant...", "order": 0},
                {"role": "user", "pattern": "Customer Query: {query}\n\nClassify this query.", "order": 1},
            ]
        },
        "policy": {
            "model": "sim-small",
            "provider": "simulated",
            "inference_url": "http://127.0.0.1:8300/v1",
        },
        "mipro": {
            "batch_size": 4,
            "bootstrap_train_seeds": [0, 1, 2, 3],
            "online_pool": [10, 11, 12, 13, 14, 15, 16, 17],
            "val_seeds": [20, 21],
            "test_pool": [30, 31],
            "meta": {
                "model": "sim-meta",
                "provider": "simulated",
                "inference_url": "http://127.0.0.1:8300/v1",
            },
        },
    }
}


class CreateJobRequest(BaseModel):
    """Exactly one of `config_body` and `config_name`."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,  # the body is what the document says: no 0 for false, no "8" for 8
        json_schema_extra={
            # what _one_config checks, so that the document says it too
            "anyOf": [
                {
                    "required": ["config_body"],
                    "properties": {"config_body": {"type": "object"}, "config_name": {"type": "null"}},
                },
                {
                    "required": ["config_name"],
                    "properties": {"config_name": {"type": "string"}, "config_body": {"type": "null"}},
                },
            ],
            "examples": [
                {
                    "algorithm": "mipro",
                    "config_body": EXAMPLE_CONFIG,
                    "overrides": {"mipro.batch_size": 8},
                    "metadata": {"team": "support"},
                    "auto_start": True,
                }
            ],
        },
    )

    algorithm: Literal["mipro"] = "mipro"
    config_name: str | None = Field(
        default=None, pattern=CONFIG_NAME, description="a config saved with POST /configs"
    )
    config_body: dict[str, JsonValue] | None = Field(
        default=None, description="the config document: `{prompt_learning: {...}}` as in configs/*.toml"
    )
    overrides: dict[str, JsonValue] = Field(
        default_factory=dict, description="dotted paths relative to prompt_learning, as in `--set`"
    )
    metadata: dict[str, str | int | float | bool | None] = Field(default_factory=dict, max_length=50)
    auto_start: bool = Field(default=True, description="false: the job waits for POST /jobs/{id}/start")

    @model_validator(mode="after")
    def _one_config(self) -> CreateJobRequest:
        if (self.config_body is None) == (self.config_name is None):
            raise ValueError("give exactly one of config_body and config_name")
        return self


class JobError(BaseModel):
    type: str = Field(examples=["TaskAppHealthCheckFailed"])
    message: str


class Job(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.JOB]})

    job_id: str = Field(examples=["pl_0123456789abcdef"])
    algorithm: Literal["mipro"] = "mipro"
    status: ApiJobStatus
    org: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    best_score: float | None = Field(default=None, description="best validation score so far")
    trials: int | None = None
    spend_usd: float | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    error: JobError | None = Field(default=None, description="why a failed job failed")
    notices: list[str] = Field(default_factory=list, description="what was changed in the request, and why")
    progress: Progress | None = Field(
        default=None, description="live progress (GET /jobs/{id} of a live job)"
    )


class JobList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.JOB_LIST]})

    jobs: list[Job]
    limit: int
    offset: int
    has_more: bool


class EventsPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.EVENTS_PAGE]})

    events: list[Event]
    next_since_seq: int = Field(description="pass as since_seq to get the events after these")
    has_more: bool


class CandidatesPage(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.CANDIDATES_PAGE]})

    candidates: list[CandidateSummary]
    total: int
    limit: int
    offset: int


class JobResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.JOB_RESULT]})

    job_id: str
    status: ApiJobStatus
    simulated_llm: bool = Field(description="true: scores come from the simulated LLM, not a real model")
    best_messages: list[ChatMessage] = Field(description="the best prompt, ready to send to the model")
    result: OptimizationResult


class SaveConfigRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"name": "banking77-example", "config_body": EXAMPLE_CONFIG}]},
    )

    name: str = Field(pattern=CONFIG_NAME, examples=["banking77-example"])
    config_body: dict[str, JsonValue] = Field(json_schema_extra={"examples": [EXAMPLE_CONFIG]})


class SavedConfig(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "banking77-example", "created_at": examples.CREATED, "config_body": EXAMPLE_CONFIG}
            ]
        }
    )

    name: str
    created_at: datetime
    config_body: dict[str, Any]
    notices: list[str] = Field(default_factory=list)


class SavedConfigList(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.SAVED_CONFIG_LIST]})

    configs: list[str]


class Health(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.HEALTH]})

    status: Literal["ok"] = "ok"
    temporal: str = Field(examples=["127.0.0.1:7233/default"])
    task_queue: str
