"""The interceptor in front of a provider over real HTTP: streamed (SSE) and plain completions and the
provider's error responses come back unchanged, byte for byte, and budgets hold for streamed calls.

The provider is a small FastAPI app on 127.0.0.1 whose behaviour the registered model name chooses (the
interceptor sends the upstream's model name): SSE chunks with and without a usage chunk (OpenAI's
`stream_options.include_usage`, Groq's `x_groq.usage`), split tool-call deltas, a stream that breaks off or
never finishes or stalls until it is hung up on, refusals and rate limits with their own bodies, a plain
completion formatted oddly. It records the exact bytes it sent, so the tests compare what the caller got
with what the provider said.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from mipro.config import Price
from mipro.interceptor.app import create_app
from mipro.interceptor.registry import Registry, Upstream
from mipro.pricing import DEFAULT_PRICING
from mipro.serving import BackgroundServer
from mipro.types import CompiledCandidate, StagePrompt, StageSpec, Usage

BASELINE = "You are a classifier. Answer with one label."
STAGES = [StageSpec(baseline_instruction=BASELINE)]
PRICE = Price(input_per_mtok=1.0, output_per_mtok=2.0)
ERROR_400 = b'{\n  "error": {\n    "message": "Invalid value for \'temperature\'.",\n    "type": "invalid_request_error",\n    "param": "temperature",\n    "code": null\n  }\n}\n'  # noqa: E501
ERROR_429 = b'{"error":{"message":"Rate limit reached for model in organization org-x on tokens per min (TPM)","type":"tokens","code":"rate_limit_exceeded"}}'  # noqa: E501
PLAIN = b'{ "id" : "chatcmpl-1",  "object":"chat.completion", "choices":[{"index":0,"message":{"role":"assistant","content":"card_arrival"},"finish_reason":"stop"}],\n "usage":{"prompt_tokens":40,"completion_tokens":3,"total_tokens":43}, "system_fingerprint":"fp_x" }'  # noqa: E501


def sse(chunk: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


def delta_chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return {"id": "chatcmpl-s", "object": "chat.completion.chunk", "model": "m", "choices": [choice], **extra}


class Provider:
    """An OpenAI-compatible provider; the request's model name picks what it answers."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.sent: list[bytes] = []  # the bytes of each answer, as sent
        self.gap_seconds = 0.0
        self.hung_up = threading.Event()  # set when the interceptor closes a stalled stream ("sse-stalled")
        self.app = FastAPI()
        self.app.post("/v1/chat/completions")(self.chat)
        self.app.post("/openai/v1/chat/completions")(self.chat)  # Groq's path shape

    def _events(self, model: str, body: dict[str, Any]) -> list[bytes]:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        usage = {"prompt_tokens": 57, "completion_tokens": 5, "total_tokens": 62}
        words = [delta_chunk({"role": "assistant", "content": ""})]
        words += [delta_chunk({"content": w}) for w in ("card", "_", "arrival")]
        if model == "sse-tools-repeated-name":  # llama.cpp's server: the name in every delta
            call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "classify"}}
            words = [
                delta_chunk({"role": "assistant", "content": None, "tool_calls": [call]}),
                *(
                    delta_chunk({"tool_calls": [{**call, "function": {"name": "classify", "arguments": a}}]})
                    for a in ('{"intent": ', '"card_arrival"}')
                ),
            ]
        if model == "sse-tools":
            call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "classify"}}
            words = [
                delta_chunk({"role": "assistant", "content": None, "tool_calls": [call]}),
                delta_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"inte'}}]}),
                delta_chunk(
                    {"tool_calls": [{"index": 0, "function": {"arguments": 'nt": "card_arrival"}'}}]}
                ),
            ]
        events = [sse(c) for c in words]
        if model == "sse-unfinished":
            return events
        finish = "tool_calls" if model.startswith("sse-tools") else "stop"
        if model == "sse-groq":
            events.append(sse(delta_chunk({}, finish, x_groq={"id": "req_1", "usage": usage})))
        else:
            events.append(sse(delta_chunk({}, finish)))
        if include_usage:
            events.append(
                sse({"id": "chatcmpl-s", "object": "chat.completion.chunk", "choices": [], "usage": usage})
            )
        events.append(b": keep-alive comment\r\n\r\n")  # comments and CRLF framing pass through too
        events.append(b"data: [DONE]\n\n")
        return events

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append({"body": body, "auth": request.headers.get("authorization")})
        model = body["model"]
        if model == "error-400":
            self.sent.append(ERROR_400)
            return Response(ERROR_400, status_code=400, media_type="application/json")
        if model == "error-429":
            self.sent.append(ERROR_429)
            return Response(ERROR_429, 429, headers={"retry-after": "0"}, media_type="application/json")
        if model == "error-503-text":
            self.sent.append(b"upstream overloaded\n")
            return Response(b"upstream overloaded\n", status_code=503, media_type="text/plain")
        if model == "plain" or not body.get("stream"):
            self.sent.append(PLAIN)
            return Response(PLAIN, media_type="application/json")
        events = self._events(model, body)
        if model == "sse-stalled":
            events = events[:1]  # the first event, then nothing until the interceptor hangs up
        self.sent.append(b"".join(events))

        async def stalled() -> AsyncIterator[bytes]:
            yield events[0]
            try:
                await asyncio.Event().wait()  # only the interceptor hanging up ends it
            finally:
                self.hung_up.set()

        async def stream() -> AsyncIterator[bytes]:
            for i, event in enumerate(events):
                if model == "sse-broken" and i == 2:
                    raise RuntimeError("provider crashed mid-stream")  # uvicorn aborts the connection
                # Events split at odd places: the reader must not depend on chunk boundaries.
                half = len(event) // 2
                yield event[:half]
                await asyncio.sleep(self.gap_seconds)
                yield event[half:]

        body_iterator = stalled() if model == "sse-stalled" else stream()
        return StreamingResponse(body_iterator, media_type="text/event-stream; charset=utf-8")


@pytest.fixture(scope="module")
def provider() -> Iterator[tuple[Provider, BackgroundServer]]:
    fake = Provider()
    with BackgroundServer(fake.app) as server:
        yield fake, server


@pytest.fixture(scope="module")
def interceptor() -> Iterator[tuple[Registry, BackgroundServer]]:
    registry = Registry()
    with BackgroundServer(create_app(registry)) as server:
        yield registry, server


def register(
    registry: Registry,
    base_url: str,
    model: str,
    allowance: Usage | None = None,
    price: Price | None = PRICE,
) -> str:
    upstream = Upstream(base_url=base_url, model=model, api_key="sk-provider", price=price, max_attempts=2)
    candidate = CompiledCandidate(stages=[StagePrompt(stage_id="default", instruction="Better instruction.")])
    return registry.register(candidate, STAGES, upstream, caller_key=None, allowance=allowance)


def chat_body(stream: bool = True, include_usage: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "whatever",
        "messages": [
            {"role": "system", "content": BASELINE},
            {"role": "user", "content": "Customer Query: where is my card"},
        ],
        "max_tokens": 16,
        "stream": stream,
    }
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    return body


def post_raw(url: str, body: dict[str, Any]) -> tuple[httpx.Response, bytes]:
    with httpx.stream("POST", url, json=body, timeout=30) as response:
        return response, b"".join(response.iter_raw())


def test_stream_is_relayed_byte_for_byte_with_usage_from_the_final_chunk(provider, interceptor) -> None:
    fake, up = provider
    registry, server = interceptor
    version = register(registry, f"{up.url}/v1", "sse-content")
    response, raw = post_raw(
        f"{server.url}/v1/{version}/chat/completions?cid=s1", chat_body(include_usage=True)
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert raw == fake.sent[-1], "the caller gets exactly the provider's bytes"
    sent = fake.requests[-1]
    assert sent["body"]["stream"] is True and sent["body"]["stream_options"] == {"include_usage": True}
    assert sent["body"]["messages"][0]["content"] == "Better instruction."  # substituted, as unstreamed
    assert sent["auth"] == "Bearer sk-provider"
    [record] = registry.take_records(version, "s1")
    assert record.error is None and record.answer is not None
    assert record.answer.role == "assistant" and record.answer.content == "card_arrival"
    assert (record.usage.prompt_tokens, record.usage.completion_tokens) == (57, 5)
    assert record.usage.cost_usd == pytest.approx((57 * 1.0 + 5 * 2.0) / 1e6)
    assert registry.committed(version) == record.usage, "the reservation was replaced by the real usage"


@pytest.mark.parametrize("model", ["sse-tools", "sse-tools-repeated-name"])
def test_stream_tool_call_deltas_are_joined_into_the_recorded_answer(provider, interceptor, model) -> None:
    fake, up = provider
    registry, server = interceptor
    version = register(registry, f"{up.url}/v1", model)
    response, raw = post_raw(
        f"{server.url}/v1/{version}/chat/completions?cid=t1", chat_body(include_usage=True)
    )
    assert response.status_code == 200 and raw == fake.sent[-1]
    [record] = registry.take_records(version, "t1")
    assert record.error is None and record.answer is not None and record.answer.content is None
    assert record.answer.tool_calls == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "classify", "arguments": '{"intent": "card_arrival"}'},
        }
    ]


def test_groq_usage_in_x_groq_is_read(provider, interceptor) -> None:
    fake, up = provider
    registry, server = interceptor
    version = register(registry, f"{up.url}/openai/v1", "sse-groq")  # Groq's base URL shape
    response, raw = post_raw(f"{server.url}/v1/{version}/chat/completions?cid=g1", chat_body())
    assert response.status_code == 200 and raw == fake.sent[-1]
    [record] = registry.take_records(version, "g1")
    assert (record.usage.prompt_tokens, record.usage.completion_tokens) == (57, 5)


def test_stream_without_usage_is_charged_the_upper_estimate(provider, interceptor) -> None:
    fake, up = provider
    registry, server = interceptor
    version = register(registry, f"{up.url}/v1", "sse-content")
    response, raw = post_raw(f"{server.url}/v1/{version}/chat/completions?cid=n1", chat_body())
    assert response.status_code == 200 and raw == fake.sent[-1]
    assert b'"usage"' not in raw, "the caller did not ask for usage and gets none: nothing added"
    [record] = registry.take_records(version, "n1")
    assert record.error is None and record.answer is not None and record.answer.content == "card_arrival"
    # The reservation: prompt bounded by its UTF-8 size, completion by max_tokens (16).
    assert record.usage.completion_tokens == 16
    assert record.usage.prompt_tokens > 57, "more than the real count: an upper bound"
    assert record.usage.cost_usd == pytest.approx((record.usage.prompt_tokens + 2 * 16) / 1e6)


def test_stream_is_relayed_as_it_arrives(provider, interceptor) -> None:
    fake, up = provider
    registry, server = interceptor
    version = register(registry, f"{up.url}/v1", "sse-content")
    fake.gap_seconds = 0.15  # 6 events x 2 halves: the provider takes ~0.9 s in all
    try:
        started = time.perf_counter()
        with httpx.stream(
            "POST", f"{server.url}/v1/{version}/chat/completions?cid=a1", json=chat_body(), timeout=30
        ) as response:
            chunks = response.iter_raw()
            first = next(chunks)
            first_at = time.perf_counter() - started
            rest = b"".join(chunks)
        total = time.perf_counter() - started
    finally:
        fake.gap_seconds = 0.0
    assert first and first + rest == fake.sent[-1]
    assert total > 0.8 and first_at < total - 0.5, f"first bytes at {first_at:.2f} s of {total:.2f} s"
    registry.take_records(version, "a1")


def test_stream_that_breaks_off_is_broken_for_the_caller_and_recorded_as_an_llm_error(
    provider, interceptor
) -> None:
    _, up = provider
    registry, server = interceptor
    version = register(registry, f"{up.url}/v1", "sse-broken")
    received = b""
    with (
        pytest.raises(httpx.HTTPError),
        httpx.stream(
            "POST", f"{server.url}/v1/{version}/chat/completions?cid=b1", json=chat_body(), timeout=30
        ) as response,
    ):
        assert response.status_code == 200  # headers went out before the provider broke
        for chunk in response.iter_raw():
            received += chunk
    assert received.startswith(b"data: "), "what arrived before the break was relayed"
    [record] = wait_for_records(registry, version, "b1")
    assert record.answer is None and record.error_kind == "llm_error" and "broke off" in (record.error or "")
    assert record.usage.completion_tokens == 16, "charged the reservation: the provider may bill it"


def test_stream_that_never_finishes_is_an_llm_error(provider, interceptor) -> None:
    fake, up = provider
    registry, server = interceptor
    version = register(registry, f"{up.url}/v1", "sse-unfinished")
    response, raw = post_raw(f"{server.url}/v1/{version}/chat/completions?cid=u1", chat_body())
    assert response.status_code == 200 and raw == fake.sent[-1]
    [record] = registry.take_records(version, "u1")
    assert record.error_kind == "llm_error" and "ended before it finished" in (record.error or "")


def wait_for_records(registry: Registry, version: str, cid: str, timeout: float = 10.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if records := registry.take_records(version, cid):
            return records
        time.sleep(0.05)
    raise AssertionError(f"no record for {cid} within {timeout} s")


def test_caller_leaving_mid_stream_releases_the_reservation(provider, interceptor, monkeypatch) -> None:
    """The provider sends one event, then nothing until it is hung up on: the call is in flight exactly
    as long as the caller stays. (Keep the iterator: `next(response.iter_raw())` drops it, and closing the
    dropped generator closes the connection at once, so the caller would already have left.)"""
    fake, up = provider
    registry, server = interceptor
    version = register(registry, f"{up.url}/v1", "sse-stalled")
    recorded = threading.Event()  # the interceptor settles the call, then records it

    def record(version_id: str, cid: str, call: Any) -> None:
        Registry.record(registry, version_id, cid, call)
        if version_id == version:
            recorded.set()

    monkeypatch.setattr(registry, "record", record)
    fake.hung_up.clear()
    with httpx.stream(
        "POST", f"{server.url}/v1/{version}/chat/completions?cid=d1", json=chat_body(), timeout=30
    ) as response:
        chunks = response.iter_raw()
        first = next(chunks)
        assert first and fake.sent[-1].startswith(first), "the first event was relayed"
        reg = registry.get(version)
        assert reg is not None and reg.reserved.calls == 1, "reserved while the caller is there"
        assert not recorded.is_set() and not fake.hung_up.is_set(), "the call goes on while the caller stays"
    assert recorded.wait(10), "the call was settled when the caller left"
    [record] = registry.take_records(version, "d1")
    assert reg.reserved == Usage(), "nothing stays reserved"
    assert record.error_kind == "llm_error" and record.answer is None
    assert record.error == "the caller went away before the stream ended"
    assert record.usage.completion_tokens == 16, "no usage seen: charged the reservation (max_tokens 16)"
    assert reg.spent == record.usage
    assert fake.hung_up.wait(10), "the provider's stream was closed, not left open"


def test_allowance_is_a_hard_cap_for_streamed_calls(provider, interceptor) -> None:
    _, up = provider
    registry, server = interceptor
    price = Price(input_per_mtok=1000.0, output_per_mtok=1000.0)
    allowance = Usage(cost_usd=0.5)  # a call reports ~$0.06 and is reserved at its upper bound, ~$0.2
    version = register(registry, f"{up.url}/v1", "sse-content", allowance=allowance, price=price)
    statuses = [
        post_raw(f"{server.url}/v1/{version}/chat/completions?cid=c{i}", chat_body(include_usage=True))[
            0
        ].status_code
        for i in range(20)
    ]
    assert 200 in statuses and statuses[-1] == 402
    spent = sum(r.usage.cost_usd for i in range(20) for r in registry.take_records(version, f"c{i}"))
    assert 0 < spent <= allowance.cost_usd
    assert registry.committed(version).cost_usd <= allowance.cost_usd


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_provider_refusal_is_passed_on_unchanged_and_not_retried(provider, interceptor, stream: bool) -> None:
    fake, up = provider
    registry, server = interceptor
    version = register(registry, f"{up.url}/v1", "error-400")
    before = len(fake.requests)
    response, raw = post_raw(f"{server.url}/v1/{version}/chat/completions?cid=e1", chat_body(stream))
    assert response.status_code == 400 and raw == ERROR_400
    assert response.headers["content-type"] == "application/json"
    assert len(fake.requests) - before == 1, "a refusal is not retried"
    [record] = registry.take_records(version, "e1")
    assert record.error_kind == "llm_error" and record.usage == Usage()
    assert registry.committed(version) == Usage(), "a refused call costs nothing"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_rate_limit_is_retried_then_passed_on_with_retry_after(provider, interceptor, stream: bool) -> None:
    fake, up = provider
    registry, server = interceptor
    version = register(registry, f"{up.url}/v1", "error-429")
    before = len(fake.requests)
    response, raw = post_raw(f"{server.url}/v1/{version}/chat/completions?cid=r1", chat_body(stream))
    assert response.status_code == 429 and raw == ERROR_429
    assert response.headers["retry-after"] == "0" and response.headers["x-mipro-upstream-attempts"] == "2"
    assert len(fake.requests) - before == 2, "retried up to max_attempts"
    [record] = registry.take_records(version, "r1")
    assert "after 2 attempts" in (record.error or "")


def test_error_body_that_is_not_json_is_passed_on(provider, interceptor) -> None:
    _, up = provider
    registry, server = interceptor
    version = register(registry, f"{up.url}/v1", "error-503-text")
    response, raw = post_raw(f"{server.url}/v1/{version}/chat/completions?cid=x1", chat_body(False))
    assert response.status_code == 503 and raw == b"upstream overloaded\n"
    assert response.headers["content-type"].startswith("text/plain")
    registry.take_records(version, "x1")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream-answered-plainly"])
def test_plain_completion_is_relayed_byte_for_byte(provider, interceptor, stream: bool) -> None:
    _, up = provider
    registry, server = interceptor
    version = register(registry, f"{up.url}/v1", "plain")
    response, raw = post_raw(f"{server.url}/v1/{version}/chat/completions?cid=p1", chat_body(stream))
    assert response.status_code == 200 and raw == PLAIN
    [record] = registry.take_records(version, "p1")
    assert record.answer is not None and record.answer.content == "card_arrival"
    assert (record.usage.prompt_tokens, record.usage.completion_tokens) == (40, 3)


def test_default_price_applies_when_the_job_prices_nothing(provider, interceptor) -> None:
    """A model the job's `pricing` does not list costs its built-in default (here Groq's llama 8B)."""
    fake, up = provider
    registry, server = interceptor
    model = "llama-3.1-8b-instant"
    upstream = Upstream(base_url=f"{up.url}/openai/v1", model=model, api_key="gsk-x")
    assert upstream.price == DEFAULT_PRICING[model]
    candidate = CompiledCandidate(stages=[StagePrompt(stage_id="default", instruction="Better instruction.")])
    version = registry.register(candidate, STAGES, upstream, caller_key=None)
    response, raw = post_raw(f"{server.url}/v1/{version}/chat/completions?cid=dp", chat_body(False))
    assert response.status_code == 200 and raw == PLAIN and fake.requests[-1]["auth"] == "Bearer gsk-x"
    [record] = registry.take_records(version, "dp")
    price = DEFAULT_PRICING[model]
    expected = (40 * price.input_per_mtok + 3 * price.output_per_mtok) / 1e6
    assert record.usage.cost_usd == pytest.approx(expected) and expected > 0
