"""The simulated LLM as an OpenAI-compatible FastAPI app.

POST /v1/chat/completions (and /chat/completions), GET /v1/models, GET /health. Every response is
labelled as simulated: the header `X-Simulated-LLM: true`, `model` = "simulated/<model>" and
`system_fingerprint` = "simulated".
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from mipro.simllm.classifier import decide, request_key, roll_key, temperature_of
from mipro.simllm.dspy_meta import dspy_meta_answer
from mipro.simllm.faults import AttemptCounter, choose_fault, fault_response, latency_s
from mipro.simllm.formats import answer_message, completion_text
from mipro.simllm.meta import meta_answer
from mipro.simllm.prompt import prompt_chars, read_prompt
from mipro.simllm.settings import SimLLMSettings

SIMULATED_HEADER = "X-Simulated-LLM"
MODEL_PREFIX = "simulated/"
UNKNOWN_LABEL = "unknown"


class SimulatedHeader:
    """ASGI middleware adding `X-Simulated-LLM: true` to every HTTP response (receive is untouched)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_labelled(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((SIMULATED_HEADER.lower().encode(), b"true"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_labelled)


def model_name(requested: object, settings: SimLLMSettings) -> str:
    name = requested if isinstance(requested, str) and requested.strip() else settings.default_model
    return name if name.startswith(MODEL_PREFIX) else MODEL_PREFIX + name


def _bad_request(message: str) -> JSONResponse:
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
    return JSONResponse({"error": error}, status_code=400)


def _answer(body: dict[str, Any], settings: SimLLMSettings, key: str) -> tuple[dict[str, Any], str]:
    """The assistant message and finish reason: meta-model text, or the classifier's label."""
    messages, temperature = body["messages"], temperature_of(body)
    meta = meta_answer(messages, temperature)
    if meta is None:
        meta = dspy_meta_answer(messages, temperature)
    if meta is not None:
        return {"role": "assistant", "content": meta}, "stop"
    view = read_prompt(messages, body.get("tools"), body.get("response_format"))
    decision = decide(view, settings, roll_key(view.query, settings.seed, temperature))
    return answer_message(body, decision.label if decision else UNKNOWN_LABEL, key)


def completion(body: dict[str, Any], settings: SimLLMSettings) -> dict[str, Any]:
    """The chat.completion object answering a (valid) request body. Pure but for `created`."""
    key = request_key(body, settings.seed)
    message, finish = _answer(body, settings, key)
    prompt_tokens = math.ceil(prompt_chars(body["messages"], body.get("tools")) / 4)
    completion_tokens = max(1, math.ceil(len(completion_text(message)) / 4))
    return {
        "id": f"chatcmpl-sim-{key}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_name(body.get("model"), settings),
        "system_fingerprint": "simulated",
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


async def _hang(request: Request, seconds: float, poll_s: float = 0.05) -> None:
    """Sleep `seconds` (past any client timeout), or until the client hangs up."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            return
        await asyncio.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))


def _validate(body: object) -> str | None:
    if not isinstance(body, dict):
        return "the request body must be a JSON object"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty list"
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        return "every message must be an object with a 'role'"
    if body.get("stream"):
        return "streaming is not supported by the simulated LLM; send stream=false"
    return None


def create_app(settings: SimLLMSettings | None = None) -> FastAPI:
    """The simulated LLM app, with its own attempt counter (for deterministic fault injection)."""
    settings = settings or SimLLMSettings()
    attempts = AttemptCounter()
    app = FastAPI(title="Simulated LLM (OpenAI-compatible)", version="1.0")
    app.state.settings = settings

    app.add_middleware(SimulatedHeader)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "simulated": True, "model": model_name(None, settings)}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        model = {"id": model_name(None, settings), "object": "model", "created": 0, "owned_by": "simulated"}
        return {"object": "list", "data": [model]}

    async def chat_completions(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _bad_request("the request body is not valid JSON")
        problem = _validate(body)
        if problem is not None:
            return _bad_request(problem)
        key = request_key(body, settings.seed)
        attempt = attempts.next(key)
        delay = latency_s(settings, key, attempt)
        if delay > 0:
            await asyncio.sleep(delay)
        fault = choose_fault(settings, key, attempt)
        if fault == "hang":
            await _hang(request, settings.hang_s)
        elif fault is not None:
            return fault_response(fault, settings)
        return JSONResponse(completion(body, settings))

    for path in ("/v1/chat/completions", "/chat/completions"):
        app.add_api_route(path, chat_completions, methods=["POST"])
    return app
