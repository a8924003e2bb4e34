"""The interceptor over real HTTP: substitution, usage records, auth, unknown versions, retries, size cap."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from mipro.config import Price
from mipro.interceptor.app import create_app
from mipro.interceptor.registry import Registry, Upstream
from mipro.serving import BackgroundServer
from mipro.types import ChatMessage, CompiledCandidate, FewShotExample, StagePrompt, StageSpec, Usage

BASELINE = "You are a classifier. Answer with one label."
STAGES = [StageSpec(baseline_instruction=BASELINE)]


def prompt_tokens(body: dict[str, Any]) -> int:
    """A realistic count: about four characters per token."""
    return len(json.dumps(body["messages"])) // 4


class FakeUpstream:
    """An OpenAI-compatible upstream that records requests and can fail the first N calls."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_next: list[int] = []
        self.app = FastAPI()
        self.app.post("/v1/chat/completions")(self.chat)

    async def chat(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.requests.append({"body": body, "auth": request.headers.get("authorization")})
        if self.fail_next:
            status = self.fail_next.pop(0)
            return JSONResponse({"error": "busy"}, status_code=status, headers={"Retry-After": "0"})
        return JSONResponse(
            {
                "id": "x",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "card_arrival"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": prompt_tokens(body), "completion_tokens": 4},
            }
        )


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[FakeUpstream, BackgroundServer]]:
    fake = FakeUpstream()
    with BackgroundServer(fake.app) as server:
        yield fake, server


@pytest.fixture(scope="module")
def interceptor() -> Iterator[tuple[Registry, BackgroundServer]]:
    registry = Registry()
    with BackgroundServer(create_app(registry)) as server:
        yield registry, server


def candidate(instruction: str, demos: int = 0) -> CompiledCandidate:
    examples = [
        FewShotExample(
            seed=i,
            stage_id="default",
            input=f"Query {i}",
            score=1.0,
            answer=ChatMessage(role="assistant", content=f"label_{i}"),
        )
        for i in range(demos)
    ]
    return CompiledCandidate(
        stages=[StagePrompt(stage_id="default", instruction=instruction, demos=examples)]
    )


def chat_body() -> dict[str, Any]:
    return {
        "model": "whatever",
        "messages": [
            {"role": "system", "content": BASELINE},
            {"role": "user", "content": "Customer Query: where is my card"},
        ],
        "max_tokens": 16,
    }


def register(registry: Registry, upstream_url: str, key: str | None = "k1", demos: int = 0) -> str:
    up = Upstream(
        base_url=f"{upstream_url}/v1",
        model="real-model",
        api_key="provider-secret",
        price=Price(input_per_mtok=1.0, output_per_mtok=2.0),
        max_attempts=3,
    )
    return registry.register(candidate("Better instruction.", demos), STAGES, up, caller_key=key)


def test_substitutes_candidate_and_records_usage(upstream, interceptor) -> None:
    fake, up_server = upstream
    registry, server = interceptor
    version = register(registry, up_server.url, demos=2)
    r = httpx.post(
        f"{server.url}/v1/{version}/chat/completions?cid=trace_a",
        json=chat_body(),
        headers={"X-API-Key": "k1"},
    )
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "card_arrival"
    sent = fake.requests[-1]
    assert sent["body"]["model"] == "real-model"
    assert sent["auth"] == "Bearer provider-secret"
    messages = sent["body"]["messages"]
    assert messages[0]["content"] == "Better instruction."
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    records = registry.take_records(version, "trace_a")
    tokens = prompt_tokens(sent["body"])
    assert len(records) == 1 and records[0].usage.prompt_tokens == tokens
    assert records[0].usage.cost_usd == pytest.approx((tokens * 1.0 + 4 * 2.0) / 1e6)
    assert records[0].request_messages[0].content == BASELINE
    assert registry.take_records(version, "trace_a") == []


def test_malformed_cid_url_variant_is_tolerated(upstream, interceptor) -> None:
    _, up_server = upstream
    registry, server = interceptor
    version = register(registry, up_server.url)
    r = httpx.post(
        f"{server.url}/v1/{version}?cid=trace_b/chat/completions",
        json=chat_body(),
        headers={"Authorization": "Bearer k1"},
    )
    assert r.status_code == 200
    assert len(registry.take_records(version, "trace_b")) == 1


def test_unknown_version_and_bad_key_are_refused(upstream, interceptor) -> None:
    fake, up_server = upstream
    registry, server = interceptor
    before = len(fake.requests)
    version = register(registry, up_server.url)
    assert (
        httpx.post(
            f"{server.url}/v1/nope-123/chat/completions", json=chat_body(), headers={"X-API-Key": "k1"}
        ).status_code
        == 404
    )
    assert httpx.post(f"{server.url}/v1/{version}/chat/completions", json=chat_body()).status_code == 401
    assert (
        httpx.post(
            f"{server.url}/v1/{version}/chat/completions", json=chat_body(), headers={"X-API-Key": "wrong"}
        ).status_code
        == 401
    )
    registry.unregister(version)
    assert (
        httpx.post(
            f"{server.url}/v1/{version}/chat/completions", json=chat_body(), headers={"X-API-Key": "k1"}
        ).status_code
        == 404
    )
    assert len(fake.requests) == before, "nothing refused may reach the upstream"


def test_serves_nothing_but_registered_versions_and_health(interceptor) -> None:
    _, server = interceptor
    assert httpx.get(f"{server.url}/health").status_code == 200
    for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect", "/v1/models"):
        assert httpx.get(server.url + path).status_code in (404, 405), path


def test_oversized_body_is_refused(upstream, interceptor) -> None:
    _, up_server = upstream
    registry, server = interceptor
    version = register(registry, up_server.url)
    body = chat_body()
    body["messages"][1]["content"] = "x" * (3 * 1024 * 1024)
    r = httpx.post(f"{server.url}/v1/{version}/chat/completions", json=body, headers={"X-API-Key": "k1"})
    assert r.status_code == 413


def test_transient_upstream_failures_are_retried(upstream, interceptor) -> None:
    fake, up_server = upstream
    registry, server = interceptor
    version = register(registry, up_server.url)
    fake.fail_next = [429, 503]
    before = len(fake.requests)
    r = httpx.post(
        f"{server.url}/v1/{version}/chat/completions?cid=c", json=chat_body(), headers={"X-API-Key": "k1"}
    )
    assert r.status_code == 200
    assert len(fake.requests) - before == 3


def test_persistent_upstream_failure_passes_the_providers_last_answer_on(upstream, interceptor) -> None:
    fake, up_server = upstream
    registry, server = interceptor
    version = register(registry, up_server.url)
    fake.fail_next = [500, 500, 500]
    r = httpx.post(
        f"{server.url}/v1/{version}/chat/completions?cid=d", json=chat_body(), headers={"X-API-Key": "k1"}
    )
    # The provider's own status and body, unchanged, after the attempts; the header says how many.
    assert r.status_code == 500 and r.json() == {"error": "busy"}
    assert r.headers["x-mipro-upstream-attempts"] == "3"
    records = registry.take_records(version, "d")
    assert records[0].error and "after 3 attempts" in records[0].error and records[0].answer is None


def test_prompt_without_the_baseline_is_a_transform_error(upstream, interceptor) -> None:
    _, up_server = upstream
    registry, server = interceptor
    version = register(registry, up_server.url)
    body = chat_body()
    body["messages"][0]["content"] = "Something else entirely."
    r = httpx.post(f"{server.url}/v1/{version}/chat/completions", json=body, headers={"X-API-Key": "k1"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "transform_failed"


def test_allowance_is_a_hard_cap(upstream, interceptor) -> None:
    fake, up_server = upstream
    registry, server = interceptor
    up = Upstream(
        base_url=f"{up_server.url}/v1",
        model="real-model",
        price=Price(input_per_mtok=1000.0, output_per_mtok=1000.0),
        max_attempts=1,
    )
    allowance = Usage(cost_usd=0.5)  # a call costs ~$0.03 and is reserved at its upper bound, ~$0.15
    version = registry.register(
        candidate("Better instruction."), STAGES, up, caller_key=None, allowance=allowance
    )
    statuses = [
        httpx.post(f"{server.url}/v1/{version}/chat/completions?cid=b{i}", json=chat_body()).status_code
        for i in range(20)
    ]
    assert 200 in statuses and statuses[-1] == 402
    spent = sum(r.usage.cost_usd for i in range(20) for r in registry.take_records(version, f"b{i}"))
    assert 0 < spent <= allowance.cost_usd
    refused = registry.take_records(version, "b19")
    assert refused == []  # records were taken above; the refusal was recorded with a budget error


# Two stages whose calls carry the same system text: only the stage segment in the URL tells them apart.
SHARED = "You are a careful assistant. Answer with one label."
TWO_STAGES = [
    StageSpec(stage_id="first", baseline_instruction=SHARED),
    StageSpec(stage_id="second", baseline_instruction=SHARED),
]


def register_two(registry: Registry, upstream_url: str) -> str:
    up = Upstream(base_url=f"{upstream_url}/v1", model="real-model", max_attempts=1)
    demo = FewShotExample(
        seed=1,
        stage_id="second",
        input="Query 1",
        score=1.0,
        answer=ChatMessage(role="assistant", content="x"),
    )
    candidate = CompiledCandidate(
        stages=[
            StagePrompt(stage_id="first", instruction="FIRST instruction."),
            StagePrompt(stage_id="second", instruction="SECOND instruction.", demos=[demo]),
        ]
    )
    return registry.register(candidate, TWO_STAGES, up, caller_key="k1")


def shared_body() -> dict[str, Any]:
    body = chat_body()
    body["messages"][0]["content"] = SHARED
    return body


@pytest.mark.parametrize(
    "path",
    [
        "/stage/second/chat/completions?cid=trace_s",
        "/stage/second/v1/chat/completions?cid=trace_s",
        "/stage/second?cid=trace_s/chat/completions",
    ],
)
def test_a_stage_segment_in_the_url_picks_the_stage(upstream, interceptor, path: str) -> None:
    fake, up_server = upstream
    registry, server = interceptor
    version = register_two(registry, up_server.url)
    r = httpx.post(f"{server.url}/v1/{version}{path}", json=shared_body(), headers={"X-API-Key": "k1"})
    assert r.status_code == 200
    sent = fake.requests[-1]["body"]["messages"]
    assert sent[0]["content"] == "SECOND instruction." and [m["content"] for m in sent[1:3]] == [
        "Query 1",
        "x",
    ]
    [record] = registry.take_records(version, "trace_s")
    assert record.stage_id == "second"


def test_without_a_stage_segment_the_first_stage_holding_the_baseline_is_used(upstream, interceptor) -> None:
    fake, up_server = upstream
    registry, server = interceptor
    version = register_two(registry, up_server.url)
    r = httpx.post(
        f"{server.url}/v1/{version}/chat/completions?cid=trace_m",
        json=shared_body(),
        headers={"X-API-Key": "k1"},
    )
    assert (
        r.status_code == 200 and fake.requests[-1]["body"]["messages"][0]["content"] == "FIRST instruction."
    )
    assert [c.stage_id for c in registry.take_records(version, "trace_m")] == ["first"]


def test_a_stage_segment_naming_no_stage_or_a_call_without_its_baseline_is_a_transform_error(
    upstream, interceptor
) -> None:
    _, up_server = upstream
    registry, server = interceptor
    version = register_two(registry, up_server.url)
    url = f"{server.url}/v1/{version}/stage/third/chat/completions?cid=trace_u"
    r = httpx.post(url, json=shared_body(), headers={"X-API-Key": "k1"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "transform_failed"
    assert "'third'" in r.json()["error"]["message"] and "'first', 'second'" in r.json()["error"]["message"]
    [record] = registry.take_records(version, "trace_u")
    assert record.error_kind == "transform" and record.stage_id == "third"
    body = shared_body()
    body["messages"][0]["content"] = "Something else entirely."
    url = f"{server.url}/v1/{version}/stage/second/chat/completions?cid=trace_v"
    r = httpx.post(url, json=body, headers={"X-API-Key": "k1"})
    assert r.status_code == 422 and "stage 'second'" in r.json()["error"]["message"]


def test_a_stage_segment_still_needs_a_registered_version_and_the_key(upstream, interceptor) -> None:
    _, up_server = upstream
    registry, server = interceptor
    version = register_two(registry, up_server.url)
    r = httpx.post(
        f"{server.url}/v1/nope/stage/first/chat/completions", json=shared_body(), headers={"X-API-Key": "k1"}
    )
    assert r.status_code == 404
    r = httpx.post(f"{server.url}/v1/{version}/stage/first/chat/completions", json=shared_body())
    assert r.status_code == 401


def test_a_stage_with_its_own_policy_is_sent_to_its_model_at_its_price(upstream, interceptor) -> None:
    """The second stage's calls go to its own upstream (another server, model, key and price) with its
    temperature; the first stage's to the job's."""
    fake, up_server = upstream
    registry, server = interceptor
    own = FakeUpstream()
    with BackgroundServer(own.app) as own_server:
        job = Upstream(base_url=f"{up_server.url}/v1", model="real-model", api_key="job-key", max_attempts=1)
        second = Upstream(
            base_url=f"{own_server.url}/v1",
            model="second-model",
            api_key="second-key",
            price=Price(input_per_mtok=1000.0, output_per_mtok=0.0),
            max_attempts=1,
            body_overrides={"temperature": 0.7},
        )
        candidate = CompiledCandidate(
            stages=[
                StagePrompt(stage_id="first", instruction="F."),
                StagePrompt(stage_id="second", instruction="S."),
            ]
        )
        version = registry.register(
            candidate, TWO_STAGES, job, caller_key="k1", stage_upstreams={"second": second}
        )
        before = len(fake.requests)
        for stage in ("first", "second"):
            r = httpx.post(
                f"{server.url}/v1/{version}/stage/{stage}/chat/completions?cid=trace_p",
                json=shared_body(),
                headers={"X-API-Key": "k1"},
            )
            assert r.status_code == 200
    [to_job] = fake.requests[before:]
    [to_own] = own.requests
    assert (to_job["body"]["model"], to_job["auth"]) == ("real-model", "Bearer job-key")
    assert "temperature" not in to_job["body"]
    assert (to_own["body"]["model"], to_own["auth"], to_own["body"]["temperature"]) == (
        "second-model",
        "Bearer second-key",
        0.7,
    )
    first, second_call = registry.take_records(version, "trace_p")
    assert first.usage.cost_usd == 0.0 and second_call.usage.cost_usd > 0.0, "each at its model's price"
