"""Forwarding a chat completion to the OpenAI-compatible upstream, with bounded retries.

429 (honouring Retry-After, capped), 5xx, timeouts, connection errors and malformed bodies are retried up
to `max_attempts`; then the caller gets a clear error instead of a half answer.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import httpx

from mipro.interceptor.registry import Upstream
from mipro.retry_after import retry_after_seconds


class UpstreamError(RuntimeError):
    def __init__(self, message: str, status_code: int = 502) -> None:
        super().__init__(message)
        self.status_code = status_code


def _retry_delay(response: httpx.Response | None, attempt: int) -> float:
    waited = retry_after_seconds(response.headers.get("retry-after")) if response is not None else None
    return waited if waited is not None else min(0.2 * 2**attempt, 5.0)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"non-finite number {text}")
    return value


def _reject(text: str) -> float:
    raise ValueError(f"non-finite number {text}")


def _valid_tool_call(call: Any) -> bool:
    function = call.get("function") if isinstance(call, dict) else None
    return (
        isinstance(function, dict)
        and isinstance(function.get("name"), str)
        and isinstance(function.get("arguments", ""), str | dict)
    )


def _valid_completion(body: Any) -> bool:
    """A chat completion whose first choice carries an assistant message we can read."""
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list) or not body["choices"]:
        return False
    first = body["choices"][0]
    message = first.get("message") if isinstance(first, dict) else None
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        return False
    if not isinstance(message.get("content"), str | None):
        return False
    calls = message.get("tool_calls")
    return calls is None or (isinstance(calls, list) and all(_valid_tool_call(c) for c in calls))


async def forward_chat(client: httpx.AsyncClient, upstream: Upstream, body: dict[str, Any]) -> dict[str, Any]:
    """POST body to {base_url}/chat/completions and return a valid completion, retrying transient failures."""
    url = upstream.base_url.rstrip("/") + "/chat/completions"
    headers = {"Authorization": f"Bearer {upstream.api_key}"} if upstream.api_key else {}
    last = "no attempt made"
    for attempt in range(upstream.max_attempts):
        response: httpx.Response | None = None
        try:
            response = await client.post(url, json=body, headers=headers, timeout=upstream.timeout_seconds)
        except httpx.TimeoutException:
            last = "upstream timed out"
        except httpx.TransportError as exc:
            last = f"upstream connection failed: {type(exc).__name__}"
        if response is not None:
            if 400 <= response.status_code < 500 and response.status_code != 429:
                raise UpstreamError(
                    f"upstream refused the request: {response.status_code} {response.text[:300]}",
                    status_code=response.status_code,
                )
            if response.status_code < 400:
                try:
                    data = json.loads(response.content, parse_float=_finite, parse_constant=_reject)
                except ValueError:
                    data = None
                if _valid_completion(data):
                    return data
                last = "upstream returned a malformed completion"
            else:
                last = f"upstream returned {response.status_code}"
        if attempt + 1 < upstream.max_attempts:
            await asyncio.sleep(_retry_delay(response, attempt))
    raise UpstreamError(f"{last} after {upstream.max_attempts} attempts")
