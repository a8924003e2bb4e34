"""Settings of the simulated LLM: latency, injected faults, and the behaviour of the weak model."""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

ENV_PREFIX = "SIMLLM_"
Profile = Literal["default", "hard"]

# The "hard" profile: a model whose best prompt is far from what its baseline or a random demo set
# reaches, so that an optimizer's budget decides how close it gets (see `classifier`'s docstring).
HARD_PROFILE: dict[str, object] = {
    "zero_shot_confusion": 0.65,  # a bare prompt is more often wrong ...
    "confusion_demos": 10,  # ... and it takes 10 units of understanding, not 3, to clear that
    "hints_per_demo": 1.0,  # a label the instruction gives hints for is worth one demo
    "hint_weight": 3.0,
    "distinct_demo_labels": True,  # demos repeating a label teach nothing more
    "demo_recency": 0.75,  # the first demo weighs 1/4 of the last: order matters
}


class SimLLMSettings(BaseModel):
    """Every knob of the simulated LLM. Defaults give a fault-free, instant, weak-but-teachable model.

    Faults are chosen deterministically from a hash of (request, seed, attempt), where attempt counts
    earlier identical requests, so a retried request can succeed and runs are reproducible.
    """

    profile: Profile = "default"
    default_model: str = "weak-classifier-1"
    seed: int = 0
    latency_ms: float = Field(default=0.0, ge=0)
    latency_jitter_ms: float = Field(default=0.0, ge=0)

    rate_429: float = Field(default=0.0, ge=0, le=1)
    retry_after_s: float = Field(default=1.0, ge=0)
    rate_500: float = Field(default=0.0, ge=0, le=1)
    rate_malformed: float = Field(default=0.0, ge=0, le=1)
    rate_hang: float = Field(default=0.0, ge=0, le=1)
    hang_s: float = Field(default=600.0, ge=0)

    # The weak model's scoring: label-name overlap, instruction hint overlap, nearest demo.
    name_weight: float = 1.0
    hint_weight: float = 2.0
    demo_weight: float = 3.0
    # More context is not free: chance to answer the 2nd-best label or a random demo's label.
    zero_shot_confusion: float = Field(default=0.45, ge=0, le=1)
    confusion_demos: int = Field(default=3, ge=1)
    hints_per_demo: float = Field(default=6.0, gt=0)
    context_knee_chars: int = Field(default=12000, ge=1)
    length_distraction: float = Field(default=0.2, ge=0)
    demo_knee: int = Field(default=4, ge=0)
    demo_distraction: float = Field(default=0.05, ge=0)
    max_distraction: float = Field(default=0.85, ge=0, le=1)
    # Off by default (the "hard" profile turns them on): see `mipro.simllm.classifier`.
    distinct_demo_labels: bool = False
    demo_recency: float = Field(default=0.0, ge=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _apply_profile(cls, data: Any) -> Any:
        """A profile fills in its values for every field not given explicitly."""
        if isinstance(data, dict) and data.get("profile") == "hard":
            return {**HARD_PROFILE, **data}
        return data

    @model_validator(mode="after")
    def _rates_sum(self) -> SimLLMSettings:
        total = self.rate_429 + self.rate_500 + self.rate_malformed + self.rate_hang
        if total > 1:
            raise ValueError(f"fault rates sum to {total:.3f} > 1")
        return self

    @classmethod
    def from_env(cls, **overrides: object) -> SimLLMSettings:
        """Settings from SIMLLM_<FIELD> environment variables, then explicit overrides."""
        values: dict[str, object] = {}
        for name in cls.model_fields:
            raw = os.environ.get(ENV_PREFIX + name.upper())
            if raw is not None:
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)
