"""Forwarding a chat completion to the OpenAI-compatible upstream, with bounded retries.

The upstream is any OpenAI-compatible base URL (OpenAI, Groq, vLLM, llama.cpp's server, the simulated
LLM): the call goes to `{base_url}/chat/completions` with `Authorization: Bearer <key>` when the worker has
a key for it.

429 (honouring Retry-After, capped), 5xx, timeouts, connection errors and malformed bodies are retried up
to `max_attempts`; a streamed call is retried the same way until its response starts (never after a byte
was relayed). A provider's refusal (another 4xx), or its last 429/5xx once the attempts are used up, is an
`UpstreamError` that carries the provider's response (status, body, content type, Retry-After), so the
interceptor can pass it on unchanged.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass
from typing import Any

import httpx

from mipro.interceptor.registry import Upstream
from mipro.retry_after import retry_after_seconds


@dataclass(frozen=True)
class ProviderResponse:
    """An HTTP response of the provider, as it sent it (the body decoded from its transfer encoding)."""

    status_code: int
    content: bytes
    content_type: str | None
    retry_after: str | None = None

    @classmethod
    def of(cls, response: httpx.Response) -> ProviderResponse:
        return cls(
            status_code=response.status_code,
            content=response.content,
            content_type=response.headers.get("content-type"),
            retry_after=response.headers.get("retry-after"),
        )


class UpstreamError(RuntimeError):
    """The upstream gave no usable answer. `response` is the provider's own error response, when it sent
    one (a refusal, or its last 429/5xx); None for timeouts, connection failures and malformed answers."""

    def __init__(
        self,
        message: str,
        status_code: int = 502,
        response: ProviderResponse | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.response = response
        self.attempts = attempts


@dataclass(frozen=True)
class Completion:
    """A valid non-streamed completion: the parsed body and the provider's bytes, to relay unchanged."""

    data: dict[str, Any]
    raw: ProviderResponse
    attempts: int


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


def parse_json(content: bytes) -> Any:
    """JSON with finite numbers only (NaN, Infinity and overflowing floats are refused); None if invalid."""
    try:
        return json.loads(content, parse_float=_finite, parse_constant=_reject)
    except (ValueError, RecursionError):
        return None


def _valid_tool_call(call: Any) -> bool:
    function = call.get("function") if isinstance(call, dict) else None
    return (
        isinstance(function, dict)
        and isinstance(function.get("name"), str)
        and isinstance(function.get("arguments", ""), str | dict)
    )


def valid_message(message: Any) -> bool:
    """An assistant message we can read: a role, string-or-null content, well-formed tool calls."""
    if not isinstance(message, dict) or not isinstance(message.get("role"), str):
        return False
    if not isinstance(message.get("content"), str | None):
        return False
    calls = message.get("tool_calls")
    return calls is None or (isinstance(calls, list) and all(_valid_tool_call(c) for c in calls))


def _valid_completion(body: Any) -> bool:
    """A chat completion whose first choice carries an assistant message we can read."""
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list) or not body["choices"]:
        return False
    first = body["choices"][0]
    return isinstance(first, dict) and valid_message(first.get("message"))


def _url_and_headers(upstream: Upstream) -> tuple[str, dict[str, str]]:
    url = upstream.base_url.rstrip("/") + "/chat/completions"
    headers = {"Authorization": f"Bearer {upstream.api_key}"} if upstream.api_key else {}
    return url, headers


def _refused(response: httpx.Response) -> bool:
    """A client error the provider will repeat however often it is asked: not retried."""
    return 400 <= response.status_code < 500 and response.status_code != 429


def _refusal(response: httpx.Response, attempts: int) -> UpstreamError:
    return UpstreamError(
        f"upstream refused the request: {response.status_code} {response.text[:300]}",
        status_code=response.status_code,
        response=ProviderResponse.of(response),
        attempts=attempts,
    )


def _gave_up(last: str, attempts: int, response: httpx.Response | None) -> UpstreamError:
    """After the last attempt: the provider's last error response when it was one (429/5xx)."""
    error = response if response is not None and response.status_code >= 400 else None
    return UpstreamError(
        f"{last} after {attempts} attempts",
        status_code=error.status_code if error is not None else 502,
        response=ProviderResponse.of(error) if error is not None else None,
        attempts=attempts,
    )


async def send_chat(client: httpx.AsyncClient, upstream: Upstream, body: dict[str, Any]) -> Completion:
    """POST body (not streamed) and return a valid completion with the provider's bytes, retrying
    transient failures; raise UpstreamError otherwise."""
    url, headers = _url_and_headers(upstream)
    last = "no attempt made"
    response: httpx.Response | None = None
    for attempt in range(upstream.max_attempts):
        response = None
        try:
            response = await client.post(url, json=body, headers=headers, timeout=upstream.timeout_seconds)
        except httpx.TimeoutException:
            last = "upstream timed out"
        except httpx.TransportError as exc:
            last = f"upstream connection failed: {type(exc).__name__}"
        if response is not None:
            if _refused(response):
                raise _refusal(response, attempt + 1)
            if response.status_code < 400:
                data = parse_json(response.content)
                if _valid_completion(data):
                    return Completion(data=data, raw=ProviderResponse.of(response), attempts=attempt + 1)
                last = "upstream returned a malformed completion"
            else:
                last = f"upstream returned {response.status_code}"
        if attempt + 1 < upstream.max_attempts:
            await asyncio.sleep(_retry_delay(response, attempt))
    raise _gave_up(last, upstream.max_attempts, response)


async def forward_chat(client: httpx.AsyncClient, upstream: Upstream, body: dict[str, Any]) -> dict[str, Any]:
    """POST body to {base_url}/chat/completions and return a valid completion, retrying transient failures."""
    return (await send_chat(client, upstream, body)).data


def is_event_stream(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").split(";")[0].strip().lower() == "text/event-stream"


async def open_stream(client: httpx.AsyncClient, upstream: Upstream, body: dict[str, Any]) -> httpx.Response:
    """POST a `stream: true` body and return the open 2xx response (the caller reads and closes it).

    Retries like `send_chat` while no byte has been read: 429, 5xx, timeouts and connection errors before
    the response starts. A provider that answers a stream request with a plain JSON completion is returned
    as it is (the caller tells by its content type)."""
    url, headers = _url_and_headers(upstream)
    last = "no attempt made"
    failed: httpx.Response | None = None
    for attempt in range(upstream.max_attempts):
        failed = None
        try:
            request = client.build_request(
                "POST", url, json=body, headers=headers, timeout=upstream.timeout_seconds
            )
            response = await client.send(request, stream=True)
        except httpx.TimeoutException:
            last = "upstream timed out"
        except httpx.TransportError as exc:
            last = f"upstream connection failed: {type(exc).__name__}"
        else:
            if response.status_code < 400:
                return response
            try:
                await response.aread()
            except httpx.HTTPError as exc:
                last = f"upstream connection failed: {type(exc).__name__}"
            else:
                if _refused(response):
                    raise _refusal(response, attempt + 1)
                failed, last = response, f"upstream returned {response.status_code}"
            finally:
                await response.aclose()
        if attempt + 1 < upstream.max_attempts:
            await asyncio.sleep(_retry_delay(failed, attempt))
    raise _gave_up(last, upstream.max_attempts, failed)
