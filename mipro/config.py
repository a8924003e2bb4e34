"""Job configuration: pydantic models, TOML/JSON loading, dotted overrides, and errors that name the field.

The file shape follows synth-ai's prompt-learning TOML (`[prompt_learning]`, `initial_prompt`, `policy`,
`mipro` with its seed pools, `tpe`, termination). Everything is validated before a workflow starts.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    NonNegativeFloat,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mipro import reference_config
from mipro.compile import baseline_span
from mipro.errors import MIPROConfigurationError
from mipro.pipeline import ModuleSpec, module_stages, pipeline_problems
from mipro.proposer.profile import EFFORT, OUTPUT_TOKENS, meta_defaults
from mipro.proposer.spec import load_spec_path, metaprompt_problems, spec_size_problem
from mipro.providers import inherited_upstream, with_provider_defaults
from mipro.tpe import TPESettings
from mipro.types import StageSpec

_FIXES: dict[str, str] = {
    "missing": "add it to the config",
    "greater_than_equal": "use a larger value",
    "less_than_equal": "use a smaller value",
    "greater_than": "use a larger value",
    "extra_forbidden": "remove it or check its spelling",
    "finite_number": "use a finite number (JSON has no inf or nan)",
}


# A job carries its whole trial history across continue-as-new and returns it in its result, both Temporal
# payloads capped at 2 MiB; at ~0.5 KiB per trial (benchmarks/results/scale.md), 3,000 trials keep a margin.
MAX_TRIALS_PER_JOB = 3000


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class MessagePattern(Strict):
    role: Literal["system", "user", "assistant"]
    pattern: str = Field(min_length=1)
    order: int = 0


class InitialPrompt(Strict):
    id: str | None = None
    name: str | None = None
    messages: list[MessagePattern] = Field(min_length=1)
    wildcards: dict[str, Literal["REQUIRED", "OPTIONAL"]] = Field(default_factory=dict)
    metadata: dict[str, JsonValue] = Field(default_factory=dict)

    def ordered(self) -> list[MessagePattern]:
        return sorted(self.messages, key=lambda m: m.order)


class PolicyConfig(BaseModel):
    """The policy model the task app's calls are sent to. Unknown keys pass through to the task app."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    __pydantic_extra__: dict[str, JsonValue] = Field(init=False)  # passed on to the task app as JSON

    model: str = Field(min_length=1)
    provider: str = Field(default="openai", pattern=r"^[a-z0-9][a-z0-9._-]*$")
    inference_url: str = Field(
        min_length=1, description="OpenAI-compatible base URL the interceptor forwards to"
    )
    api_key_env: str | None = None
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_completion_tokens: int = Field(default=512, ge=1)
    policy_name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _provider_defaults(cls, data: Any) -> Any:
        """`provider` is case-insensitive; openai and groq without `inference_url` get their base URL and
        key variable (mipro/providers.py)."""
        return with_provider_defaults(data)


class MetaModelConfig(Strict):
    """The meta-model that proposes instructions; `provider` openai or groq without an `inference_url`
    gets that provider's base URL and key variable, as the policy does."""

    model: str = Field(min_length=1)
    provider: str = Field(default="openai", pattern=r"^[a-z0-9][a-z0-9._-]*$")
    inference_url: str = Field(min_length=1)
    api_key_env: str | None = None
    temperature: float = Field(default=0.8, ge=0.0, le=2.0)
    max_tokens: int = Field(default=1024, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _provider_defaults(cls, data: Any) -> Any:
        return with_provider_defaults(data)


class TPEConfig(TPESettings):
    """`mipro.tpe`: the settings the TPE runs with (`mipro.tpe.TPESettings`, one model with one set of
    bounds), refusing unknown keys. `categorical_alpha` is accepted as the name of `alpha`."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _categorical_alpha_is_alpha(cls, data: Any) -> Any:
        if isinstance(data, dict) and "categorical_alpha" in data:
            if "alpha" in data:
                raise ValueError("set one of alpha and categorical_alpha (the same setting), not both")
            data = {("alpha" if k == "categorical_alpha" else k): v for k, v in data.items()}
        return data


class TerminationConfig(Strict):
    max_spend_usd: float | None = Field(default=None, gt=0)
    max_rollout_spend_usd: float | None = Field(default=None, gt=0)
    max_proposal_spend_usd: float | None = Field(default=None, gt=0)
    max_token_limit: int | None = Field(default=None, gt=0)
    max_duration_minutes: float | None = Field(default=None, gt=0)
    max_trials_allowed: int | None = Field(default=None, gt=0)
    max_error_rate: float | None = Field(default=None, gt=0, le=1)
    max_consecutive_errors: int | None = Field(default=None, gt=0)


class Price(Strict):
    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)


# `parallel_risk`: how hard a job may push the task app and the LLM, as defaults for the keys it does not set.
PARALLEL_RISK: dict[str, dict[str, int]] = {
    "LOW": {"max_concurrent": 8, "max_parallel_trials": 1, "rollout_retries": 1},
    "MEDIUM": {"max_concurrent": 20, "max_parallel_trials": 4, "rollout_retries": 2},
    "HIGH": {"max_concurrent": 48, "max_parallel_trials": 8, "rollout_retries": 3},
}


class AdaptivePoolConfig(Strict):
    """`mipro.adaptive_pool`: the online pool concentrates on the seeds that discriminate between candidates
    and grows when their scores tie (`mipro/adaptive_pool.py`). NONE: fixed blocks. A table without
    `level` is LOW, as in the reference; `adaptive_pool = "HIGH"` is accepted for the table."""

    level: Literal["NONE", "LOW", "MODERATE", "HIGH"] = "LOW"

    @model_validator(mode="before")
    @classmethod
    def _level_any_case(cls, data: Any) -> Any:
        if isinstance(data, str):
            data = {"level": data}
        if isinstance(data, dict) and isinstance(data.get("level"), str):
            data = {**data, "level": data["level"].strip().upper()}
        return data


class MiproSettings(Strict):
    env_name: str = "banking77"
    seed: int = 0
    num_iterations: int = Field(default=20, ge=1)
    num_evaluations_per_iteration: int = Field(default=5, ge=1)
    batch_size: int = Field(default=32, ge=1)
    max_concurrent: int = Field(default=20, ge=1)
    max_parallel_trials: int = Field(default=4, ge=1)
    # Launch each iteration while the previous one is still draining (the TPE then suggests without the
    # previous iteration's results); the two share `max_concurrent` on one worker they are pinned to.
    overlap_iterations: bool = False
    # How long a batch pinned to a worker waits to be taken before that worker counts as gone (and the batch
    # resumes on another, from the lost attempt's last heartbeat).
    pinned_start_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    max_demo_set_size: int = Field(default=4, ge=0)
    max_demo_sets: int = Field(default=8, ge=1)
    few_shot_score_threshold: float = Field(default=0.8, ge=0.0, le=1.0)
    max_instructions: int = Field(default=6, ge=1)
    max_instruction_sets: int = Field(default=128, ge=1)  # instructions per stage, re-proposals included
    duplicate_retry_limit: int = Field(default=10, ge=0)
    generate_at_iterations: list[int] = Field(default_factory=list)
    instructions_per_batch: int = Field(default=1, ge=1)
    proposer_mode: Literal["dspy", "synth", "gepa-ai"] = "dspy"
    proposer_effort: Literal["LOW_CONTEXT", "LOW", "MEDIUM", "HIGH"] | None = None
    proposer_output_tokens: Literal["RAPID", "FAST", "SLOW"] | None = None
    # The synth / gepa-ai proposer's system spec (a table or text; `spec_path`: a JSON/TOML/markdown file read
    # when the config file is loaded), its cut, and a custom meta-prompt template (mipro/proposer/spec.py).
    spec: dict[str, JsonValue] | str | None = Field(default=None, validate_default=True)
    spec_path: str | None = None
    spec_max_tokens: int = Field(default=5000, ge=1)
    metaprompt: str | None = None
    # Defaults of every stage's transform (a stage may set its own match and case_sensitive); strict: a
    # candidate whose instruction cannot be placed fails the job instead of failing only those rollouts.
    transform_strict: bool = False
    transform_case_sensitive: bool = True
    transform_match_mode: Literal["exact", "substring"] = "substring"
    parallel_risk: Literal["LOW", "MEDIUM", "HIGH"] | None = None  # see PARALLEL_RISK
    validate_every_iterations: int = Field(default=1, ge=1)
    task_description: str | None = None
    instruction_candidates: list[str] = Field(default_factory=list)
    rollout_timeout_seconds: float = Field(default=120.0, gt=0, le=86_400)
    rollout_retries: int = Field(default=2, ge=0)
    # Failed rollouts (transient errors) run again after these pauses, each after a health check that waits
    # out an outage; a seed still failing after the last is an error. About a minute: outlasts a restart.
    rerun_delays_seconds: list[NonNegativeFloat] = Field(default=[2.0, 5.0, 15.0, 40.0], max_length=20)
    outage_poll_max_seconds: float = Field(default=60.0, gt=0, le=3600)  # health checks while waiting
    continue_as_new_every_trials: int = Field(default=200, ge=1)
    # Iteration 0 tries each instruction with the full-size demo set before the TPE takes over.
    informative_first_iteration: bool = True
    # Every N-th trial re-runs the leader (the next promotion's pick) on the new block; 0: never.
    reevaluate_every_trials: int = Field(default=5, ge=0)
    adaptive_pool: AdaptivePoolConfig = Field(default_factory=lambda: AdaptivePoolConfig(level="NONE"))
    bootstrap_train_seeds: list[int] = Field(min_length=1)
    online_pool: list[int] = Field(min_length=1)
    val_seeds: list[int] = Field(default_factory=list)  # empty: the online pool (the reference's default)
    test_pool: list[int] = Field(min_length=1)
    reference_pool: list[int] = Field(default_factory=list)
    meta: MetaModelConfig
    tpe: TPEConfig = Field(default_factory=TPEConfig)
    stages: list[StageSpec] = Field(default_factory=list)
    # A pipeline: modules of stages with edges (mipro/pipeline.py), read into the flat stage list
    modules: list[ModuleSpec] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _risk_and_transform_defaults(cls, data: Any) -> Any:
        """`parallel_risk` fills the parallelism and retry settings not given; `transform_*` the stages'."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        risk = data.get("parallel_risk")
        if isinstance(risk, str) and risk.upper() in PARALLEL_RISK:
            data["parallel_risk"] = risk = risk.upper()
            for key, value in PARALLEL_RISK[risk].items():
                data.setdefault(key, value)
        stages = data.get("stages")
        if isinstance(stages, list):
            defaults = {
                "match": data.get("transform_match_mode", "substring"),
                "case_sensitive": data.get("transform_case_sensitive", True),
            }
            data["stages"] = [{**defaults, **s} if isinstance(s, dict) else s for s in stages]
        modules = data.get("modules")
        if isinstance(modules, list):
            defaults = {
                "match": data.get("transform_match_mode", "substring"),
                "case_sensitive": data.get("transform_case_sensitive", True),
            }
            data["modules"] = [
                {**m, "stages": [{**defaults, **s} if isinstance(s, dict) else s for s in m["stages"]]}
                if isinstance(m, dict) and isinstance(m.get("stages"), list)
                else m
                for m in modules
            ]
        return data

    @model_validator(mode="after")
    def _check_pipeline(self) -> MiproSettings:
        if problems := pipeline_problems(self.modules, self.stages):
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="before")
    @classmethod
    def _proposer_levels(cls, data: Any) -> Any:
        """Levels in any case; `proposer_effort` / `proposer_output_tokens` fill the meta-model's temperature
        and max_tokens where `meta` sets none (mipro/proposer/profile.py)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for key in ("proposer_effort", "proposer_output_tokens", "proposer_mode"):
            if isinstance(data.get(key), str):
                data[key] = data[key].lower() if key == "proposer_mode" else data[key].upper()
        effort, tokens = data.get("proposer_effort"), data.get("proposer_output_tokens")
        if isinstance(data.get("meta"), dict) and (effort in EFFORT or tokens in OUTPUT_TOKENS):
            levels = (effort if effort in EFFORT else None, tokens if tokens in OUTPUT_TOKENS else None)
            data["meta"] = {**meta_defaults(*levels), **data["meta"]}
        return data

    @field_validator("spec_path")
    @classmethod
    def _spec_path_is_read_from_files(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError(
                "spec_path is read when a config file is loaded (mipro start; relative to the file): in a "
                "config sent as JSON (the REST API), put the spec itself in mipro.spec"
            )
        return value

    @field_validator("spec", "metaprompt")
    @classmethod
    def _synth_grounding(cls, value: Any, info: ValidationInfo) -> Any:
        """synth / gepa-ai need a spec; spec and metaprompt are theirs only; a metaprompt's placeholders."""
        mode = info.data.get("proposer_mode")
        if mode not in ("synth", "gepa-ai"):
            if value is not None:
                raise ValueError(
                    f'read by the synth proposer only: set proposer_mode = "synth" (or "gepa-ai"), or '
                    f"remove {info.field_name}"
                )
        elif info.field_name == "spec" and not value:
            raise ValueError(
                f"proposer_mode {mode!r} is grounded in a system spec: set mipro.spec (a table or text) or "
                "mipro.spec_path (a JSON, TOML or markdown file)"
            )
        elif info.field_name == "spec" and (problem := spec_size_problem(value)):
            raise ValueError(problem)
        elif info.field_name == "metaprompt" and value and (problems := metaprompt_problems(value)):
            raise ValueError("; ".join(problems))
        return value

    @model_validator(mode="after")
    def _check_pools(self) -> MiproSettings:
        if not self.val_seeds:
            self.val_seeds = list(self.online_pool)
        held_out = set(self.test_pool)
        for name in ("bootstrap_train_seeds", "online_pool", "val_seeds"):
            overlap = held_out & set(getattr(self, name))
            if overlap:
                raise ValueError(
                    f"test_pool overlaps {name} on seeds {sorted(overlap)[:5]}: held-out test seeds must "
                    "not be used for bootstrapping, search or validation"
                )
        reference = set(self.reference_pool)
        for name in ("bootstrap_train_seeds", "online_pool", "test_pool"):
            if overlap := reference & set(getattr(self, name)):
                raise ValueError(
                    f"reference_pool overlaps {name} on seeds {sorted(overlap)[:5]}: the meta-model's "
                    "reference corpus must not be seeds the search or the test scores"
                )
        if self.batch_size > len(self.online_pool):
            raise ValueError(
                f"batch_size ({self.batch_size}) is larger than online_pool ({len(self.online_pool)} seeds): "
                "lower batch_size or add seeds to online_pool"
            )
        return self


PoolName = Literal["bootstrap", "online", "validation", "test"]


class ProxyModelConfig(Strict):
    """A cheaper policy model for the minibatch trials (and the baseline on their blocks). Promotions, the
    baseline's validation and the final test evaluation run on `policy.model`. Unset keys are the policy's."""

    model: str = Field(min_length=1)
    provider: str | None = None
    inference_url: str | None = None
    api_key_env: str | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)


DEFAULT_RUBRIC = (
    "You are grading one answer of an AI assistant to a task. Score how well the answer accomplishes the "
    "task the input asks for: 1 for a fully correct answer, 0 for a wrong or unusable one, in between for "
    "partly correct answers."
)
# The reference's hosted judge service (Synth's verifier API) keys: there is no such service here.
REFERENCE_JUDGE_SERVICE_KEYS = (
    "backend_base",
    "synth_verifier_id",
    "backend_rubric_id",
    "backend_event_enabled",
    "backend_outcome_enabled",
    "backend_options",
    "weight_env",
    "weight_event",
    "weight_outcome",
    "spec_path",
    "spec_max_tokens",
    "spec_context",
    "concurrency",
    "timeout",
)


class JudgeConfig(Strict):
    """`[prompt_learning.judge]`: an LLM that scores rollouts from the answer the interceptor captured
    (mipro/judge.py). `mode`: "fallback" scores a rollout whose task app sends no reward (one with a reward
    keeps it, and costs no judge call); "blend" scores `weight * judge + (1 - weight) * reward` (a rollout
    without a reward is a `no_reward` error); "judge" scores by the judge alone, the reward ignored. An
    unset `inference_url` is the policy's (with its `api_key_env`), or the provider's for openai/groq.
    The reference's `backend_model`, `backend_provider`, `backend_api_key_env` and `reward_source`
    (`judge`, `fused` = blend) are read; its hosted-judge-service keys are refused."""

    enabled: bool = True
    model: str = Field(min_length=1)
    provider: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    inference_url: str | None = Field(default=None, min_length=1)
    api_key_env: str | None = None
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=64, ge=1)
    rubric: str = Field(default=DEFAULT_RUBRIC, min_length=1)
    mode: Literal["fallback", "blend", "judge"] = "fallback"
    weight: float = Field(default=0.5, ge=0.0, le=1.0)  # the judge's share of a blended score

    @model_validator(mode="before")
    @classmethod
    def _reference_spellings(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if service := [k for k in REFERENCE_JUDGE_SERVICE_KEYS if k in data]:
            raise ValueError(
                f"{', '.join(service)}: the reference's hosted judge service is not used here; the judge is "
                "an OpenAI-compatible LLM at inference_url, instructed by rubric (blend weight: weight)"
            )
        for theirs, ours in (
            ("backend_model", "model"),
            ("backend_provider", "provider"),
            ("backend_api_key_env", "api_key_env"),
        ):
            if theirs in data:
                if ours in data and data[ours] != data[theirs]:
                    raise ValueError(f"{theirs} and {ours} are the same setting: set one of them")
                data[ours] = data.pop(theirs)
        source = data.pop("reward_source", None)
        if source is not None:
            mode = {"judge": "judge", "fused": "blend"}.get(str(source).lower())
            if mode is None:
                raise ValueError(
                    f"reward_source = {source!r}: the task app's reward alone needs no judge (remove the "
                    'judge table, or set enabled = false); "judge" and "fused" (= mode "blend") are read'
                )
            if "mode" in data and data["mode"] != mode:
                raise ValueError(f"reward_source = {source!r} and mode = {data['mode']!r} disagree: set one")
            data["mode"] = mode
        if isinstance(data.get("provider"), str):
            data["provider"] = data["provider"].strip().lower()
        return data

    def resolved(self, policy: PolicyConfig) -> JudgeConfig:
        """With its upstream filled in: its own `inference_url`, else the provider's base URL (openai,
        groq: with the provider's key variable unless `api_key_env` is set), else the policy's URL and key."""
        if self.inference_url:
            return self
        url, key_env, provider = inherited_upstream(
            None, self.api_key_env, self.provider, (policy.inference_url, policy.api_key_env, policy.provider)
        )
        return self.model_copy(update={"inference_url": url, "api_key_env": key_env, "provider": provider})


class JobConfig(Strict):
    algorithm: Literal["mipro"] = "mipro"
    task_app_url: str = Field(min_length=1)
    task_app_id: str | None = None
    task_app_api_key_env: str | None = None
    # None: the baseline is gathered from the task app's first LLM call when the job starts (its system
    # messages become the initial prompt; `with_gathered_prompt`), unless mipro.stages / modules declare it.
    initial_prompt: InitialPrompt | None = None
    policy: PolicyConfig
    env_config: dict[str, JsonValue] = Field(default_factory=dict)  # sent to the task app as JSON
    # Per seed pool, merged over env_config: e.g. [pool_env_config.test] split = "test"
    pool_env_config: dict[PoolName, dict[str, JsonValue]] = Field(default_factory=dict)
    mipro: MiproSettings
    termination: TerminationConfig = Field(default_factory=TerminationConfig)
    pricing: dict[str, Price] = Field(default_factory=dict)
    proxy_models: ProxyModelConfig | None = None
    judge: JudgeConfig | None = None  # an LLM judge scoring rollouts (JudgeConfig)

    @model_validator(mode="after")
    def _check_prompt_and_prices(self) -> JobConfig:
        prompt = [m.pattern for m in self.initial_prompt.messages] if self.initial_prompt else []
        for i, stage in enumerate(self.known_stages()):
            own = [m.content for m in stage.baseline_messages or []]
            if not (own or prompt):
                continue  # nothing to check against: the bootstrap says so if the app never sends it
            if not any(baseline_span(t, stage) for t in own or prompt):
                where = "its baseline_messages" if own else "any initial_prompt message"
                raise ValueError(
                    f"{self._stage_path(i)}.baseline_instruction is not found in {where}: "
                    "copy it verbatim from the prompt"
                )
        t = self.termination
        planned = self.mipro.num_iterations * self.mipro.num_evaluations_per_iteration
        if min(planned, t.max_trials_allowed or planned) > MAX_TRIALS_PER_JOB:
            raise ValueError(
                f"mipro.num_iterations x num_evaluations_per_iteration plans {planned} trials, more than "
                f"the {MAX_TRIALS_PER_JOB} one job can carry (its trial history must fit Temporal's 2 MiB "
                f"payload limit): lower num_iterations, or set termination.max_trials_allowed <= "
                f"{MAX_TRIALS_PER_JOB}"
            )
        own = [stage.policy.model for stage in self.known_stages() if stage.policy is not None]
        if own and self.proxy_models:
            raise ValueError(
                "proxy_models and a stage's own policy are both set: the proxy replaces the one policy "
                "model in the trials, and which stage model it should stand in for is not defined; "
                "remove proxy_models, or the stages' policy"
            )
        if t.max_spend_usd or t.max_rollout_spend_usd or t.max_proposal_spend_usd:
            proxy = [self.proxy_models.model] if self.proxy_models else []
            judge = [self.judge.model] if self.judge and self.judge.enabled else []
            for model in (self.policy.model, self.mipro.meta.model, *proxy, *judge, *own):
                if self.price_of(model) is None:
                    raise ValueError(
                        f"a USD budget is set but pricing has no entry for model {model!r}: add "
                        f'[prompt_learning.pricing."{model}"] input_per_mtok/output_per_mtok'
                    )
        return self

    @property
    def gathers_baseline(self) -> bool:
        """No initial_prompt and no declared stages: the job takes its baseline from the task app's first
        LLM call (the reference's "gather baseline messages")."""
        return self.initial_prompt is None and not self.mipro.stages and not self.mipro.modules

    def known_stages(self) -> list[StageSpec]:
        """The stages, or none yet while the baseline is still to be gathered."""
        return [] if self.gathers_baseline else self.stages()

    def with_gathered_prompt(self, system: list[str]) -> JobConfig:
        """This config with the system messages the task app sent as its initial prompt (the user turn is
        left out: it carries one seed's data)."""
        messages = [MessagePattern(role="system", pattern=text, order=i) for i, text in enumerate(system)]
        prompt = InitialPrompt(
            id="gathered", name="gathered from the task app's first LLM call", messages=messages
        )
        return self.model_copy(update={"initial_prompt": prompt})

    def price_of(self, model: str) -> Price | None:
        """The price of `model`: this job's `pricing` entry, else the built-in default (mipro/pricing.py)."""
        from mipro.pricing import price_for  # mipro.pricing builds on this module's Price

        return price_for(model, self.pricing)

    def prompt_price(self) -> Price | None:
        """The price extra prompt text of a candidate is estimated at: the job policy's, or the priciest
        (per input token) of it and the stages' own models."""
        prices = [self.price_of(self.policy.model)]
        prices += [self.price_of(s.policy.model) for s in self.known_stages() if s.policy is not None]
        known = [p for p in prices if p is not None]
        return max(known, key=lambda p: p.input_per_mtok) if known else None

    def policy_for(self, pool: PoolName) -> PolicyConfig:
        """The policy of rollouts on `pool`: the proxy model's for the online pool when one is set."""
        proxy = self.proxy_models
        if pool != "online" or proxy is None:
            return self.policy
        changes = {k: v for k, v in proxy.model_dump().items() if v is not None}
        return self.policy.model_copy(update=changes)

    def env_config_for(self, pool: PoolName) -> dict[str, JsonValue]:
        """The env config the task app gets for a rollout on a seed of `pool`."""
        return {**self.env_config, **self.pool_env_config.get(pool, {})}

    def _stage_path(self, i: int) -> str:
        """Where the i-th stage of `stages()` is written in the config."""
        if not self.mipro.modules:
            return f"mipro.stages[{i}]"
        for m, module in enumerate(self.mipro.modules):
            if i < len(module.stages):
                return f"mipro.modules[{m}].stages[{i}]"
            i -= len(module.stages)
        return "mipro.modules"

    def stages(self) -> list[StageSpec]:
        """The configured stages (the modules' stages in order, each with its module_id), or one stage whose
        instruction is the initial prompt's system message."""
        if self.mipro.modules:
            return module_stages(self.mipro.modules)
        if self.mipro.stages:
            return self.mipro.stages
        if self.initial_prompt is None:
            raise ValueError(
                "initial_prompt is not set and mipro.stages is empty: the baseline is gathered from the "
                "task app when the job starts (JobConfig.with_gathered_prompt)"
            )
        system = [m for m in self.initial_prompt.ordered() if m.role == "system"]
        if not system:
            raise ValueError(
                "initial_prompt has no system message and mipro.stages is empty: add a system message "
                "or declare [[prompt_learning.mipro.stages]] with baseline_instruction"
            )
        return [
            StageSpec(
                stage_id="default",
                baseline_instruction=system[0].pattern,
                match=self.mipro.transform_match_mode,
                case_sensitive=self.mipro.transform_case_sensitive,
            )
        ]


SECRET_NAME = re.compile(
    r"^(api_?key|authorization|bearer|token|secret|password)$|_(api_?key|key|secret|token)$"
)


def _refuse_inline_provider_keys(body: dict[str, Any]) -> None:
    """Provider keys live in the worker's environment, named by `api_key_env`; never in a job."""
    policy = body.get("policy")
    for name in policy if isinstance(policy, dict) else ():
        if SECRET_NAME.search(name.lower()):
            raise MIPROConfigurationError(
                [
                    (
                        f"prompt_learning.policy.{name}",
                        "inline provider keys are not accepted",
                        "put the key in the worker's environment and name it with policy.api_key_env",
                    )
                ]
            )


def _strip_inline_secrets(body: dict[str, Any]) -> dict[str, Any]:
    """An inline task-app key never reaches workflow history: the worker reads it from its environment."""
    _refuse_inline_provider_keys(body)
    if "task_app_api_key" in body:
        body = dict(body)
        body.pop("task_app_api_key")
        body.setdefault("task_app_api_key_env", "ENVIRONMENT_API_KEY")
    return body


# pydantic adds the member it tried to a location inside a JsonValue (`split.float`); users never wrote it.
_JSON_UNION_TAGS = {"str", "int", "float", "bool", "list", "dict"}


def _members(annotation: Any) -> list[Any]:
    """The types an annotation can be, through Optional/Union and Annotated."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [m for arg in get_args(annotation) for m in _members(arg)]
    return [annotation]


def _models(annotation: Any) -> list[type[BaseModel]]:
    return [m for m in _members(annotation) if isinstance(m, type) and issubclass(m, BaseModel)]


def _step(annotation: Any, part: str | int) -> list[Any]:
    """The annotations one location step (a field, a list index, a dict key) below `annotation`."""
    below: list[Any] = []
    for member in _members(annotation):
        origin, args = get_origin(member), get_args(member)
        if isinstance(member, type) and issubclass(member, BaseModel):
            if isinstance(part, str) and part in member.model_fields:
                below.append(member.model_fields[part].annotation)
        elif origin in (list, tuple, set, frozenset) and isinstance(part, int) and args:
            below.append(args[0])
        elif origin is dict and len(args) == 2:
            below.append(args[1])
    return below


def _valid_keys(loc: list[str | int]) -> list[str]:
    """The keys of the config model(s) at `loc` (a location below `JobConfig`)."""
    annotations: list[Any] = [JobConfig]
    for part in loc:
        annotations = [below for a in annotations for below in _step(a, part)]
    return sorted({name for a in annotations for m in _models(a) for name in m.model_fields})


def _all_keys(model: type[BaseModel], prefix: str = "") -> dict[str, str]:
    """Every key of the config's nested tables: {dotted path: last key}, e.g. "mipro.batch_size"."""
    found: dict[str, str] = {}
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        found[path] = name
        for nested in _models(field.annotation):
            found |= _all_keys(nested, f"{path}.")
    return found


def unknown_key_fix(loc: list[str | int]) -> str:
    """How to fix the unknown key at `loc`: the closest valid key of that table (`did you mean ...?`), else
    a key of that name elsewhere in the config, else the table's keys."""
    *parent, key = loc
    valid = _valid_keys(parent)
    if isinstance(key, str):
        if close := difflib.get_close_matches(key, valid, n=1, cutoff=0.6):
            return f"did you mean `{close[0]}`?"
        here = ".".join(str(p) for p in parent)
        elsewhere = {p: name for p, name in _all_keys(JobConfig).items() if p.rpartition(".")[0] != here}
        if close := difflib.get_close_matches(key, sorted(set(elsewhere.values())), n=1, cutoff=0.8):
            path = min((p for p, name in elsewhere.items() if name == close[0]), key=len)
            return f"it belongs in another table: did you mean `{path}`?"
    if valid:
        return f"remove it or check its spelling; valid keys here: {', '.join(valid)}"
    return _FIXES["extra_forbidden"]


def _error_from_validation(exc: ValidationError) -> MIPROConfigurationError:
    problems = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if p not in _JSON_UNION_TAGS]
        field = ".".join(["prompt_learning", *(str(p) for p in loc)])
        fix = unknown_key_fix(loc) if err["type"] == "extra_forbidden" else _FIXES.get(err["type"], "")
        problems.append((field, err["msg"], fix))
    return MIPROConfigurationError(problems)


def parse_config(raw: Any) -> JobConfig:
    """Validate a config document (with or without the `prompt_learning` wrapper)."""
    if not isinstance(raw, dict):
        raise MIPROConfigurationError(
            [("prompt_learning", "the config must be a table/object", "see configs/")]
        )
    body = raw.get("prompt_learning", raw)
    if not isinstance(body, dict):
        raise MIPROConfigurationError([("prompt_learning", "must be a table", "see configs/ for examples")])
    body = _strip_inline_secrets(reference_config.translate(body))
    if refused := reference_config.refusals(body):
        raise MIPROConfigurationError(refused)
    try:
        return JobConfig.model_validate(body)
    except ValidationError as exc:
        raise _error_from_validation(exc) from None


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `key.path=value` overrides (paths relative to `prompt_learning`; values parsed as TOML)."""
    values: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise MIPROConfigurationError(
                [(item, "override must look like key.path=value", "e.g. mipro.batch_size=8")]
            )
        path, value = item.split("=", 1)
        values[path.strip()] = _parse_value(value.strip())
    return apply_values(raw, values)


def apply_values(raw: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Set `{"key.path": value}` (paths relative to `prompt_learning`) on a copy of a config document."""
    if not isinstance(raw, dict):
        raise MIPROConfigurationError(
            [("prompt_learning", "the config must be a table/object", "see configs/")]
        )
    doc = json.loads(json.dumps(raw))
    body = doc.setdefault("prompt_learning", {}) if "prompt_learning" in doc or not doc else doc
    if not isinstance(body, dict):
        raise MIPROConfigurationError([("prompt_learning", "must be a table", "see configs/ for examples")])
    for path, value in values.items():
        keys = path.removeprefix("prompt_learning.").split(".")
        if not all(keys):
            raise MIPROConfigurationError([(path, "empty key in the dotted path", "e.g. mipro.batch_size")])
        node = body
        for depth, key in enumerate(keys[:-1]):
            node = node.setdefault(key, {}) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                where = "prompt_learning." + ".".join(keys[: depth + 1])
                raise MIPROConfigurationError(
                    [(where, "is not a table, so it has no keys to set", f"check {path}")]
                )
        node[keys[-1]] = value
    return doc


def load_config_file(path: Path, overrides: list[str] | None = None) -> JobConfig:
    """Read a TOML or JSON config file, apply overrides, validate."""
    if not path.is_file():
        raise MIPROConfigurationError(
            [(str(path), "config file not found (or not a file)", "check the path")]
        )
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MIPROConfigurationError(
            [(str(path), f"not UTF-8 text: {exc}", "save the file as UTF-8")]
        ) from None
    try:
        raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise MIPROConfigurationError([(str(path), f"cannot parse: {exc}", "fix the syntax")]) from None
    return parse_config(load_spec_path(apply_overrides(raw, overrides or []), path.parent))
