"""The interceptor: an OpenAI-compatible endpoint that substitutes the candidate prompt into LLM calls.

URL handed to the task app: `{base}/v1/{version_id}?cid={correlation_id}`. Accepted:
`POST /v1/{version_id}/chat/completions?cid=…`, the malformed `POST /v1/{version_id}?cid=…/chat/completions`,
and `GET /health`. Only registered versions are served, the caller's key is checked, bodies are capped.
"""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import asynccontextmanager
from typing import Any

import httpx
import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from mipro.budget import price_usd
from mipro.compile import TransformApplicationError, compile_messages, locate_stage
from mipro.interceptor.registry import CallRecord, Registration, Registry
from mipro.interceptor.upstream import UpstreamError, forward_chat
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


def _usage(reg: Registration, body: dict[str, Any], fallback: Usage) -> Usage:
    """The call's usage as the upstream reports it; if the report is unreadable, the upper estimate."""
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    prompt, completion = _count(usage.get("prompt_tokens", 0)), _count(usage.get("completion_tokens", 0))
    if prompt is None or completion is None:
        return fallback
    pricing = {reg.upstream.model: reg.upstream.price} if reg.upstream.price else {}
    cost = price_usd(pricing, reg.upstream.model, prompt, completion)
    return Usage(calls=1, prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost)


def _upper_estimate(reg: Registration, body: dict[str, Any]) -> Usage:
    """An upper bound of a call's usage: byte-level BPE tokenizers never emit more tokens than there are
    bytes, so the prompt's UTF-8 size (plus a per-message allowance) bounds its tokens; the completion is
    bounded by its cap."""
    size = len(json.dumps(body.get("messages", []), ensure_ascii=False).encode())
    size += len(json.dumps(body.get("tools", []), ensure_ascii=False).encode())
    prompt = size + 8 * len(body.get("messages", [])) + 16
    completion = int(body.get("max_completion_tokens") or body.get("max_tokens") or 1024)
    pricing = {reg.upstream.model: reg.upstream.price} if reg.upstream.price else {}
    cost = price_usd(pricing, reg.upstream.model, prompt, completion)
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


async def _settle(app: FastAPI, registry: Registry, version_id: str, estimate: Usage, actual: Usage) -> None:
    registry.settle(version_id, estimate, actual)
    async with app.state.budget_changed:
        app.state.budget_changed.notify_all()


def _substitute(reg: Registration, messages: list[ChatMessage]) -> tuple[str, list[ChatMessage]]:
    stage = locate_stage(messages, reg.stages)
    stage_id = stage.stage_id if stage else reg.stages[0].stage_id
    return stage_id, compile_messages(messages, reg.stages, reg.candidate)


def create_app(registry: Registry) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        app.state.http = httpx.AsyncClient(limits=httpx.Limits(max_connections=512))
        app.state.budget_changed = asyncio.Condition()
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
    async def chat(version_id: str, request: Request) -> JSONResponse:
        return await _handle_chat(app, registry, version_id, request)

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


async def _handle_chat(app: FastAPI, registry: Registry, version_id: str, request: Request) -> JSONResponse:
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
        stage_id, messages = _substitute(reg, incoming)
    except (TransformApplicationError, ValueError) as exc:
        log.warning("transform_failed", version=version_id, cid=cid, error=str(exc))
        registry.record(version_id, cid, _failed_call("transform", f"transform_failed: {exc}"))
        return _error(422, "transform_failed", str(exc))
    out = {**body, "model": reg.upstream.model, "messages": [m.as_openai() for m in messages]}
    estimate = _upper_estimate(reg, out)
    if await _reserve(app, registry, version_id, estimate) != "ok":
        message = "budget_exhausted: this call could exceed the evaluation's budget allowance"
        registry.record(version_id, cid, _failed_call("budget", message, stage_id, incoming, messages))
        return _error(402, "budget_exhausted", message)
    started = time.perf_counter()
    try:
        answer = await forward_chat(app.state.http, reg.upstream, out)
    except UpstreamError as exc:
        await _settle(app, registry, version_id, estimate, Usage())
        latency = (time.perf_counter() - started) * 1000
        failed = _failed_call("llm_error", str(exc), stage_id, incoming, messages, latency)
        registry.record(version_id, cid, failed)
        log.warning("upstream_failed", version=version_id, cid=cid, error=str(exc))
        return _error(502, "upstream_failed", str(exc))
    latency = (time.perf_counter() - started) * 1000
    message = ChatMessage.model_validate(answer["choices"][0]["message"])
    usage = _usage(reg, answer, estimate)
    await _settle(app, registry, version_id, estimate, usage)
    registry.record(
        version_id,
        cid,
        CallRecord(
            stage_id=stage_id,
            request_messages=incoming,
            sent_messages=messages,
            answer=message,
            usage=usage,
            latency_ms=latency,
        ),
    )
    return JSONResponse(answer)
