"""The interceptor's registry: which candidate versions may be served right now, and what their calls cost.

An evaluation activity registers its candidate under a fresh, unguessable version id, hands that URL to the
task app, and unregisters when done. Nothing else is ever served: the interceptor is never an open proxy.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from mipro.config import Price
from mipro.pricing import price_for
from mipro.types import ChatMessage, CompiledCandidate, ErrorKind, StageSpec, Usage


class Upstream(BaseModel):
    """Where the policy calls go: any OpenAI-compatible base URL. The key comes from the worker's
    environment, never from a job payload. `price` is the job's price of the model, else the built-in
    default for it (mipro/pricing.py), else None (calls cost 0)."""

    base_url: str
    model: str
    api_key: str | None = None
    price: Price | None = None
    timeout_seconds: float = 120.0
    max_attempts: int = 4
    # Request fields set on every call (a stage's own temperature / max_completion_tokens)
    body_overrides: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _default_price(self) -> Upstream:
        if self.price is None:
            self.price = price_for(self.model)
        return self


class CallRecord(BaseModel):
    """One intercepted LLM call, kept under its correlation id."""

    stage_id: str
    request_messages: list[ChatMessage]
    sent_messages: list[ChatMessage]
    answer: ChatMessage | None
    usage: Usage
    latency_ms: float
    error: str | None = None
    error_kind: ErrorKind | None = None  # llm_error (upstream failed), transform, budget


@dataclass
class Registration:
    candidate: CompiledCandidate
    stages: list[StageSpec]
    upstream: Upstream
    caller_key: str | None
    allowance: Usage | None = None  # hard cap on cost (cost_usd) and tokens (prompt_tokens) for this version
    spent: Usage = field(default_factory=Usage)  # settled calls
    reserved: Usage = field(default_factory=Usage)  # upper estimates of the calls in flight
    records: dict[str, list[CallRecord]] = field(default_factory=dict)
    stage_upstreams: dict[str, Upstream] = field(default_factory=dict)  # stages with a policy of their own

    def upstream_for(self, stage_id: str) -> Upstream:
        """Where a call of this stage goes: the stage's own policy, else the job's."""
        return self.stage_upstreams.get(stage_id, self.upstream)


class Registry:
    """Thread-safe map version id -> registration. Version ids are `<content hash>-<random token>`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: dict[str, Registration] = {}

    def register(
        self,
        candidate: CompiledCandidate,
        stages: list[StageSpec],
        upstream: Upstream,
        caller_key: str | None,
        allowance: Usage | None = None,
        stage_upstreams: dict[str, Upstream] | None = None,
    ) -> str:
        version_id = f"{candidate.content_hash[:12]}-{secrets.token_hex(8)}"
        registration = Registration(
            candidate, stages, upstream, caller_key, allowance, stage_upstreams=stage_upstreams or {}
        )
        with self._lock:
            self._versions[version_id] = registration
        return version_id

    def reserve(self, version_id: str, estimate: Usage) -> Literal["ok", "wait", "refuse"]:
        """Reserve an upper estimate of a call against the version's allowance.

        "refuse" only when what is already *spent* plus this call could break the allowance; "wait" when
        only other calls' reservations stand in the way (they settle at their real, smaller, usage), so
        the outcome does not depend on how calls happen to overlap.
        """
        with self._lock:
            reg = self._versions.get(version_id)
            if reg is None:
                return "refuse"
            if reg.allowance is not None:
                if _exceeds(reg.spent.plus(estimate), reg.allowance):
                    return "refuse"
                if _exceeds(reg.spent.plus(reg.reserved).plus(estimate), reg.allowance):
                    return "wait"
            reg.reserved = reg.reserved.plus(estimate)
            return "ok"

    def settle(self, version_id: str, estimate: Usage, actual: Usage) -> None:
        """Replace a reservation by what the call really used."""
        with self._lock:
            reg = self._versions.get(version_id)
            if reg is not None:
                reg.reserved = reg.reserved.minus(estimate)
                reg.spent = reg.spent.plus(actual)

    def committed(self, version_id: str) -> Usage:
        """Settled plus reserved usage of a version: an upper bound of what its calls have spent."""
        with self._lock:
            reg = self._versions.get(version_id)
            return Usage() if reg is None else reg.spent.plus(reg.reserved)

    def unregister(self, version_id: str) -> None:
        with self._lock:
            self._versions.pop(version_id, None)

    def get(self, version_id: str) -> Registration | None:
        with self._lock:
            return self._versions.get(version_id)

    def record(self, version_id: str, correlation_id: str, call: CallRecord) -> None:
        with self._lock:
            reg = self._versions.get(version_id)
            if reg is not None:
                reg.records.setdefault(correlation_id, []).append(call)

    def take_records(self, version_id: str, correlation_id: str) -> list[CallRecord]:
        """Remove and return the calls made under a correlation id (a retried rollout starts clean)."""
        with self._lock:
            reg = self._versions.get(version_id)
            return [] if reg is None else reg.records.pop(correlation_id, [])

    def __len__(self) -> int:
        with self._lock:
            return len(self._versions)


def _exceeds(usage: Usage, cap: Usage) -> bool:
    """Whether usage breaks a cap (cost_usd: USD, prompt_tokens: total tokens; 0 means no cap)."""
    return (cap.cost_usd > 0 and usage.cost_usd > cap.cost_usd) or (
        cap.prompt_tokens > 0 and usage.total_tokens > cap.prompt_tokens
    )
