"""The interceptor: an OpenAI-compatible endpoint that substitutes the candidate prompt into LLM calls.

URL handed to the task app: `{base}/v1/{version_id}?cid={correlation_id}`. Accepted:
`POST /v1/{version_id}/chat/completions?cid=…`, the malformed `POST /v1/{version_id}?cid=…/chat/completions`,
and `GET /health`. Only registered versions are served, the caller's key is checked, bodies are capped.

Stages: a multi-stage task app may name the stage of a call in its URL,
`POST /v1/{version_id}/stage/{stage_id}/chat/completions?cid=…` (also without `/chat/completions`, and with
`/v1/chat/completions`): that stage's prompt is applied, and its calls are recorded under it. A call without
a stage segment is mapped to the first stage whose baseline instruction its messages hold (then to the
first whose candidate instruction they hold). A stage segment naming no stage of the job is a transform
failure (422), as is a call whose messages hold neither the stage's baseline nor its candidate instruction.

What the upstream answers goes back unchanged: a completion's bytes, a `stream: true` call's Server-Sent
Events as they arrive, and a provider's error response (status code, body, content type, Retry-After) once
retries are used up or for a refusal that no retry changes; the header `x-mipro-upstream-attempts` says how
many attempts it took. Only failures without a provider response (timeouts, connection errors, malformed
completions) are the interceptor's own `502 upstream_failed`.

Budget: every call reserves an upper estimate first and settles at the usage the provider reports. A
streamed call's usage is the one its stream carries (sent when the request has `stream_options:
{include_usage: true}`, and by Groq always); a stream without one, or one that broke off, is charged the
reservation: the upper estimate (prompt bytes, and the completion's cap).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from mipro.budget import price_usd
from mipro.compile import (
    TransformApplicationError,
    compile_messages,
    compile_stage_messages,
    stage_of,
)
from mipro.interceptor.registry import CallRecord, Registration, Registry, Upstream
from mipro.interceptor.streaming import StreamReader
from mipro.interceptor.upstream import (
    UpstreamError,
    is_event_stream,
    open_stream,
    parse_json,
    send_chat,
    valid_message,
)
from mipro.types import ChatMessage, ErrorKind, Usage

MAX_BODY_BYTES = 2 * 1024 * 1024
log = structlog.get_logger("interceptor")


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"code": code, "message": message}})


def _caller_key(request: Request) -> str | None:
    if key := request.headers.get("x-api-key"):
        return key
    auth = request.headers.get("authorization", "")
    return auth[7:] if auth.lower().startswith("bearer ") else None


def _correlation_id(request: Request) -> str:
    raw = request.query_params.get("cid") or request.query_params.get("trace_correlation_id") or ""
    return raw.split("/", 1)[0]


def _count(value: Any) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**9
    return value if ok else None


def _usage(upstream: Upstream, body: dict[str, Any], fallback: Usage) -> Usage:
    """The call's usage as the upstream reports it; if the report is unreadable, the upper estimate."""
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    prompt, completion = _count(usage.get("prompt_tokens", 0)), _count(usage.get("completion_tokens", 0))
    if prompt is None or completion is None:
        return fallback
    pricing = {upstream.model: upstream.price} if upstream.price else {}
    cost = price_usd(pricing, upstream.model, prompt, completion)
    return Usage(calls=1, prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost)


def _upper_estimate(upstream: Upstream, body: dict[str, Any]) -> Usage:
    """An upper bound of a call's usage: byte-level BPE tokenizers never emit more tokens than there are
    bytes, so the prompt's UTF-8 size (plus a per-message allowance) bounds its tokens; the completion is
    bounded by its cap."""
    size = len(json.dumps(body.get("messages", []), ensure_ascii=False).encode())
    size += len(json.dumps(body.get("tools", []), ensure_ascii=False).encode())
    prompt = size + 8 * len(body.get("messages", [])) + 16
    completion = int(body.get("max_completion_tokens") or body.get("max_tokens") or 1024)
    pricing = {upstream.model: upstream.price} if upstream.price else {}
    cost = price_usd(pricing, upstream.model, prompt, completion)
    return Usage(calls=1, prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost)


def _failed_call(
    kind: ErrorKind,
    error: str,
    stage_id: str = "",
    incoming: list[ChatMessage] | None = None,
    sent: list[ChatMessage] | None = None,
    latency_ms: float = 0.0,
) -> CallRecord:
    return CallRecord(
        stage_id=stage_id,
        request_messages=incoming or [],
        sent_messages=sent or [],
        answer=None,
        usage=Usage(),
        latency_ms=latency_ms,
        error=error,
        error_kind=kind,
    )


async def _reserve(app: FastAPI, registry: Registry, version_id: str, estimate: Usage) -> str:
    """Reserve budget for a call, waiting while only other in-flight calls' reservations stand in the way."""
    async with app.state.budget_changed:
        while (verdict := registry.reserve(version_id, estimate)) == "wait":
            await app.state.budget_changed.wait()
    return verdict


def _substitute(
    reg: Registration, messages: list[ChatMessage], stage_id: str | None = None
) -> tuple[str, list[ChatMessage]]:
    """The call's stage and the messages to send: the stage the URL names, else the one its messages show.
    A version with no stages (a job gathering its baseline from the app's calls) sends them unchanged."""
    if not reg.stages:
        return stage_id or "default", messages
    if stage_id is not None:
        spec = next((s for s in reg.stages if s.stage_id == stage_id), None)
        if spec is None:
            known = ", ".join(repr(s.stage_id) for s in reg.stages)
            raise TransformApplicationError(
                f"stage {stage_id!r} (named in the call's URL) is not a stage of this job; stages: {known}"
            )
        return stage_id, compile_stage_messages(messages, spec, reg.candidate)
    stage = stage_of(messages, reg.stages, reg.candidate)
    stage_id = stage.stage_id if stage else reg.stages[0].stage_id
    return stage_id, compile_messages(messages, reg.stages, reg.candidate)


def create_app(registry: Registry) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        app.state.http = httpx.AsyncClient(limits=httpx.Limits(max_connections=512))
        app.state.budget_changed = asyncio.Condition()
        app.state.tasks = set()
        yield
        await app.state.http.aclose()

    # No /docs, /redoc or /openapi.json: an LLM proxy serves registered versions and health, nothing else.
    app = FastAPI(
        title="MIPRO interceptor", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.registry = registry

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"healthy": True, "service": "mipro-interceptor", "registered_versions": len(registry)}

    @app.post("/v1/{version_id}")
    @app.post("/v1/{version_id}/chat/completions")
    @app.post("/v1/{version_id}/v1/chat/completions")
    async def chat(version_id: str, request: Request) -> Response:
        return await _handle_chat(app, registry, version_id, request)

    @app.post("/v1/{version_id}/stage/{stage_id}")
    @app.post("/v1/{version_id}/stage/{stage_id}/chat/completions")
    @app.post("/v1/{version_id}/stage/{stage_id}/v1/chat/completions")
    async def stage_chat(version_id: str, stage_id: str, request: Request) -> Response:
        return await _handle_chat(app, registry, version_id, request, stage_id)

    return app


async def _read_body(request: Request) -> dict[str, Any] | JSONResponse:
    declared = request.headers.get("content-length")
    if declared and int(declared) > MAX_BODY_BYTES:
        return _error(413, "too_large", f"request body over {MAX_BODY_BYTES} bytes")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        return _error(413, "too_large", f"request body over {MAX_BODY_BYTES} bytes")
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "bad_json", "request body is not JSON")
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return _error(400, "bad_request", "body must be a chat completion request with `messages`")
    for key in ("max_tokens", "max_completion_tokens"):
        value = body.get(key)
        if value is not None and (_count(value) is None or value < 1):
            return _error(400, "bad_request", f"`{key}` must be a positive integer")
    return body


async def _handle_chat(
    app: FastAPI, registry: Registry, version_id: str, request: Request, stage_id: str | None = None
) -> Response:
    reg = registry.get(version_id)
    if reg is None:
        return _error(404, "unknown_version", "this version is not registered for an evaluation")
    if reg.caller_key and _caller_key(request) != reg.caller_key:
        return _error(401, "unauthorised", "missing or wrong API key for this version")
    body = await _read_body(request)
    if isinstance(body, JSONResponse):
        return body
    cid = _correlation_id(request)
    try:
        incoming = [ChatMessage.model_validate(m) for m in body["messages"]]
        stage_id, messages = _substitute(reg, incoming, stage_id)
    except (TransformApplicationError, ValueError) as exc:
        log.warning("transform_failed", version=version_id, cid=cid, stage=stage_id, error=str(exc))
        failed = _failed_call("transform", f"transform_failed: {exc}", stage_id or "")
        registry.record(version_id, cid, failed)
        return _error(422, "transform_failed", str(exc))
    upstream = reg.upstream_for(stage_id)
    messages_out = [m.as_openai() for m in messages]
    out = {**body, **upstream.body_overrides, "model": upstream.model, "messages": messages_out}
    estimate = _upper_estimate(upstream, out)
    if await _reserve(app, registry, version_id, estimate) != "ok":
        message = "budget_exhausted: this call could exceed the evaluation's budget allowance"
        registry.record(version_id, cid, _failed_call("budget", message, stage_id, incoming, messages))
        return _error(402, "budget_exhausted", message)
    call = _Call(app, registry, version_id, cid, upstream, estimate, stage_id, incoming, messages)
    if body.get("stream") is True:
        return await _stream_chat(call, out)
    try:
        completion = await send_chat(app.state.http, upstream, out)
    except UpstreamError as exc:
        return await _upstream_failed(call, exc)
    message = ChatMessage.model_validate(completion.data["choices"][0]["message"])
    await call.finish(_usage(upstream, completion.data, estimate), message)
    raw = completion.raw
    return Response(
        content=raw.content,
        status_code=raw.status_code,
        media_type=raw.content_type or "application/json",
        headers=_attempts(completion.attempts),
    )


def _attempts(attempts: int) -> dict[str, str]:
    return {"x-mipro-upstream-attempts": str(attempts)}


class _Call:
    """One forwarded call: its reservation, settled once, and its record."""

    def __init__(
        self,
        app: FastAPI,
        registry: Registry,
        version_id: str,
        cid: str,
        upstream: Upstream,
        estimate: Usage,
        stage_id: str,
        incoming: list[ChatMessage],
        sent: list[ChatMessage],
    ) -> None:
        self.app, self.registry, self.version_id, self.cid = app, registry, version_id, cid
        self.upstream, self.estimate = upstream, estimate
        self.stage_id, self.incoming, self.sent = stage_id, incoming, sent
        self.started = time.perf_counter()
        self._settled = False

    def settle_now(self, usage: Usage, answer: ChatMessage | None, error: str | None = None) -> None:
        """Settle and record synchronously (safe in a `finally` of a cancelled stream); wake waiters."""
        if self._settled:
            return
        self._settled = True
        self.registry.settle(self.version_id, self.estimate, usage)
        self.registry.record(
            self.version_id,
            self.cid,
            CallRecord(
                stage_id=self.stage_id,
                request_messages=self.incoming,
                sent_messages=self.sent,
                answer=None if error else answer,
                usage=usage,
                latency_ms=(time.perf_counter() - self.started) * 1000,
                error=error,
                error_kind="llm_error" if error else None,
            ),
        )
        task = asyncio.get_running_loop().create_task(_notify(self.app))
        self.app.state.tasks.add(task)
        task.add_done_callback(self.app.state.tasks.discard)

    async def finish(self, usage: Usage, answer: ChatMessage | None, error: str | None = None) -> None:
        self.settle_now(usage, answer, error)
        await asyncio.sleep(0)  # let the waiters' notification run


async def _notify(app: FastAPI) -> None:
    async with app.state.budget_changed:
        app.state.budget_changed.notify_all()


async def _upstream_failed(call: _Call, exc: UpstreamError) -> Response:
    """The provider's own error response, unchanged, when it sent one; else our 502."""
    await call.finish(Usage(), None, str(exc))
    log.warning("upstream_failed", version=call.version_id, cid=call.cid, error=str(exc))
    if exc.response is None:
        return _error(502, "upstream_failed", str(exc))
    headers = _attempts(exc.attempts)
    if exc.response.retry_after:
        headers["retry-after"] = exc.response.retry_after
    return Response(
        content=exc.response.content,
        status_code=exc.response.status_code,
        media_type=exc.response.content_type,
        headers=headers,
    )


async def _close(response: httpx.Response) -> None:
    with contextlib.suppress(Exception):  # closing a broken upstream connection may fail: nothing to do
        await asyncio.shield(response.aclose())


async def _stream_chat(call: _Call, out: dict[str, Any]) -> Response:
    """Relay a `stream: true` call's events unchanged as they arrive, reading them on the way."""
    try:
        response = await open_stream(call.app.state.http, call.upstream, out)
    except UpstreamError as exc:
        return await _upstream_failed(call, exc)
    if not is_event_stream(response):
        return await _unstreamed_answer(call, response)
    reader = StreamReader()

    async def relay() -> AsyncIterator[bytes]:
        outcome: str | None = "the caller went away before the stream ended"
        try:
            async for chunk in response.aiter_bytes():
                reader.feed(chunk)
                yield chunk
            outcome = None
        except httpx.HTTPError as exc:
            outcome = f"upstream stream broke off after {reader.bytes} bytes: {type(exc).__name__}"
            raise
        finally:
            reader.close()
            _settle_stream(call, reader, outcome)
            await _close(response)

    return StreamingResponse(
        relay(),
        status_code=response.status_code,
        media_type=response.headers.get("content-type"),
        headers=_attempts(1),
    )


def _settle_stream(call: _Call, reader: StreamReader, broke: str | None) -> None:
    message = reader.message()
    error = broke or reader.error
    if error is None and not reader.finished:
        error = "upstream stream ended before it finished (no [DONE], no finish_reason)"
    if error is None and message is None:
        error = "upstream stream carried no assistant message"
    usage = _usage(call.upstream, {"usage": reader.usage}, call.estimate) if reader.usage else call.estimate
    if reader.usage is None:
        log.info("stream_usage_estimated", version=call.version_id, cid=call.cid, usage=usage.model_dump())
    if error:
        log.warning("upstream_stream_failed", version=call.version_id, cid=call.cid, error=error)
    answer = ChatMessage.model_validate(message) if message else None
    call.settle_now(usage, answer, error)


async def _unstreamed_answer(call: _Call, response: httpx.Response) -> Response:
    """A provider that answered a stream request with one JSON completion: relayed as it is."""
    try:
        content = await response.aread()
    except httpx.HTTPError as exc:
        await _close(response)
        failure = UpstreamError(f"upstream connection failed: {type(exc).__name__}")
        return await _upstream_failed(call, failure)
    await _close(response)
    data = parse_json(content)
    choices = data.get("choices") if isinstance(data, dict) else None
    first = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    if not valid_message(first.get("message")):
        return await _upstream_failed(call, UpstreamError("upstream returned a malformed completion"))
    await call.finish(
        _usage(call.upstream, data, call.estimate), ChatMessage.model_validate(first["message"])
    )
    return Response(
        content=content,
        status_code=response.status_code,
        media_type=response.headers.get("content-type"),
        headers=_attempts(1),
    )
