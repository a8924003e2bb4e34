"""Injected faults and latency of the simulated LLM, chosen deterministically.

The fault of a request is a function of (request key, seed, attempt), where attempt counts the earlier
identical requests this server saw: reruns reproduce the same faults, and a retry can succeed.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Literal

from fastapi.responses import JSONResponse, Response

from mipro.simllm.settings import SimLLMSettings
from mipro.simllm.text import unit

Fault = Literal["429", "500", "malformed", "hang"]
MAX_TRACKED_REQUESTS = 100_000
MALFORMED_BODY = '{"id": "chatcmpl-simulated", "object": "chat.completion", "choices": [{"index": 0, "mess'


class AttemptCounter:
    """How many times each request key was seen (bounded: the oldest keys are forgotten)."""

    def __init__(self, limit: int = MAX_TRACKED_REQUESTS) -> None:
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._limit = limit

    def next(self, key: str) -> int:
        attempt = self._seen.pop(key, 0)
        self._seen[key] = attempt + 1
        if len(self._seen) > self._limit:
            self._seen.popitem(last=False)
        return attempt


def choose_fault(settings: SimLLMSettings, key: str, attempt: int) -> Fault | None:
    """The fault to inject for this attempt of a request, or None."""
    roll = unit(key, settings.seed, attempt, "fault")
    for fault, rate in (
        ("429", settings.rate_429),
        ("500", settings.rate_500),
        ("malformed", settings.rate_malformed),
        ("hang", settings.rate_hang),
    ):
        if roll < rate:
            return fault  # type: ignore[return-value]
        roll -= rate
    return None


def latency_s(settings: SimLLMSettings, key: str, attempt: int) -> float:
    """The simulated latency: the base plus a deterministic jitter in [0, latency_jitter_ms)."""
    jitter = settings.latency_jitter_ms * unit(key, settings.seed, attempt, "latency")
    return (settings.latency_ms + jitter) / 1000.0


def _error(status: int, message: str, kind: str, code: str | None = None) -> dict[str, object]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def fault_response(fault: Fault, settings: SimLLMSettings) -> Response:
    """The HTTP response of a 429, 500 or malformed-body fault (a hang is handled by the caller)."""
    if fault == "429":
        body = _error(429, "Rate limit reached (simulated).", "rate_limit_error", "rate_limit_exceeded")
        headers = {
            "Retry-After": str(max(0, math.ceil(settings.retry_after_s))),
            "retry-after-ms": str(int(settings.retry_after_s * 1000)),
        }
        return JSONResponse(body, status_code=429, headers=headers)
    if fault == "500":
        body = _error(
            500, "The server had an error while processing your request (simulated).", "server_error"
        )
        return JSONResponse(body, status_code=500)
    return Response(MALFORMED_BODY, status_code=200, media_type="application/json")
