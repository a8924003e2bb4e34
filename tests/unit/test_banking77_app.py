"""The banking77 example task app over real HTTP: a fake OpenAI-compatible upstream and the app, each served
by BackgroundServer on loopback. Data: the shared banking77 copy (never copied into the repo)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from mipro.serving import BackgroundServer
from mipro.taskapps.banking77 import data as data_mod
from mipro.taskapps.banking77.app import create_app
from mipro.taskapps.banking77.data import Banking77Data, load_banking77
from mipro.taskapps.banking77.prompts import SYSTEM_PATTERN
from mipro.taskapps.urls import cid_from_url, normalize_chat_url

SHARED = Path(__file__).resolve().parents[2].parent / "shared/datasets/banking77"
KEY = "sk_env_test_key"
TRIAL = "pl-abc-i0001-t0002-s0"
CID = f"trace_{TRIAL}"
QUERY_RE = re.compile(r"^Customer Query: (.*?)\n\nAvailable Intents:\n", re.S)


class FakeLLM:
    """OpenAI-compatible upstream; answers from `answers` (query -> intent) and records every request."""

    def __init__(self) -> None:
        self.answers: dict[str, str] = {}
        self.mode = "tool"  # tool | content | wrong_tool | error | garbage | hang
        self.requests: list[dict[str, Any]] = []
        self.got_request = threading.Event()
        self.saw_disconnect = threading.Event()

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        match = QUERY_RE.match(body["messages"][1]["content"])
        intent = self.answers.get(match.group(1) if match else "", "no_such_intent")
        name = "other_tool" if self.mode == "wrong_tool" else "banking77_classify"
        fn = {"name": name, "arguments": json.dumps({"intent": intent})}
        message: dict[str, Any] = {"role": "assistant", "content": f"{intent} is my answer"}
        if self.mode != "content":
            message = {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "function": fn}]}
        usage = {"prompt_tokens": 900, "completion_tokens": 5, "total_tokens": 905}
        return {"object": "chat.completion", "choices": [{"index": 0, "message": message}], "usage": usage}

    async def _hang(self, request: Request) -> Response:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        self.saw_disconnect.set()
        return Response(status_code=499)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{path:path}")
        async def chat(path: str, request: Request) -> Any:
            body = await request.json()
            url, headers = request.url, dict(request.headers)
            self.requests.append({"path": url.path, "query": url.query, "headers": headers, "body": body})
            self.got_request.set()
            if self.mode == "hang":
                return await self._hang(request)
            if self.mode == "error":
                return JSONResponse({"error": {"message": "upstream exploded"}}, status_code=500)
            if self.mode == "garbage":
                return PlainTextResponse("this is not json")
            return self._completion(body)

        return app


@pytest.fixture(scope="module")
def data() -> Banking77Data:
    return load_banking77(SHARED)


@pytest.fixture(scope="module")
def fake_server() -> Iterator[tuple[FakeLLM, BackgroundServer]]:
    fake = FakeLLM()
    with BackgroundServer(fake.app()) as server:
        yield fake, server


@pytest.fixture
def fake(fake_server: tuple[FakeLLM, BackgroundServer]) -> FakeLLM:
    fake_server[0].reset()
    return fake_server[0]


@pytest.fixture
def llm_url(fake_server: tuple[FakeLLM, BackgroundServer]) -> str:
    return f"{fake_server[1].url}/api/interceptor/v1/{TRIAL}?cid={CID}"


@pytest.fixture
def app_url(data: Banking77Data) -> Iterator[str]:
    """A fresh task app per test (fresh stats), keyed, failing seed 13."""
    with BackgroundServer(create_app(data, api_key=KEY, fail_seeds={13})) as server:
        yield server.url


def rollout_body(seed: int, inference_url: str, split: str | None = None, **policy: Any) -> dict[str, Any]:
    """A Gen B superset request, as our service (and synth's backend) sends it, plus an unknown key."""
    config = {"model": "openai/gpt-oss-20b", "provider": "groq", "inference_url": inference_url}
    config |= {"temperature": 0.0, "max_completion_tokens": 128, **policy}
    env = {"env_name": "banking77", "seed": seed, "config": {"split": split} if split else {}}
    extras = {"mode": "eval", "ops": ["agent", "env"], "record": {"trajectories": True}, "future_key": 1}
    policy_spec = {"policy_name": "banking77-mipro", "config": config}
    return {"run_id": f"prompt-learning-{seed}-0123abcd", "env": env, "policy": policy_spec, **extras}


def post_rollout(app_url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    headers = {"X-API-Key": KEY} if headers is None else headers
    return httpx.post(f"{app_url}/rollout", json=body, headers=headers, timeout=30)


def get(app_url: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.get(f"{app_url}{path}", headers=kw.pop("headers", {"X-API-Key": KEY}), timeout=10, **kw)


GOOD_HEADERS = [{"X-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"}, {"X-API-Keys": f"sk_other,{KEY}"}]


@pytest.mark.parametrize("headers", GOOD_HEADERS)
def test_health_accepts_the_key_in_any_synth_header(app_url: str, headers: dict[str, str]) -> None:
    r = get(app_url, "/health", headers=headers)
    assert r.status_code == 200
    assert r.json()["healthy"] is True and r.json()["auth"]["required"] is True


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "sk_env_wrong"}, {"Authorization": "Bearer nope"}])
def test_missing_or_wrong_key_is_400_unauthorised(app_url: str, headers: dict[str, str]) -> None:
    rollout = post_rollout(app_url, rollout_body(0, "http://127.0.0.1:9/v1"), headers=headers)
    for r in (get(app_url, "/health", headers=headers), get(app_url, "/task_info", headers=headers), rollout):
        assert r.status_code == 400
        assert r.json()["detail"]["error"]["code"] == "unauthorised"
    assert get(app_url, "/", headers=headers).json() == {"status": "ok", "service": "banking77"}
    assert get(app_url, "/stats", headers=headers).status_code == 200


def test_no_configured_key_means_open(data: Banking77Data) -> None:
    with BackgroundServer(create_app(data)) as server:
        r = httpx.get(f"{server.url}/health")
    assert r.status_code == 200 and r.json()["auth"]["required"] is False


def test_task_info_info_and_done(app_url: str, data: Banking77Data) -> None:
    taskset = get(app_url, "/task_info").json()["taskset"]
    assert taskset["num_labels"] == 77 and taskset["sizes"] == {"train": 10003, "test": 3080}
    one = get(app_url, "/task_info", params={"seed": 10003 + 2}).json()
    assert set(one) >= {"task", "environment", "dataset", "rubric", "inference", "limits", "task_metadata"}
    assert one["dataset"]["index"] == 2 and one["task_metadata"]["query"] == data.train[2].text
    assert one["rubric"]["outcome"]["criteria"][0]["id"] == "intent_accuracy"
    many = get(app_url, "/task_info", params=[("seeds", 0), ("seeds", 1)]).json()
    assert [m["dataset"]["index"] for m in many] == [0, 1]
    info = get(app_url, "/info").json()
    assert info["service"]["task"]["id"] == "banking77" and info["rubrics"]["events"]["criteria"]
    done = httpx.post(f"{app_url}/done", headers={"X-API-Key": KEY})
    assert done.json() == {"ok": True, "service": "banking77"}


def test_rollout_happy_path(app_url: str, fake: FakeLLM, llm_url: str, data: Banking77Data) -> None:
    fake.answers[data.train[0].text] = "card_arrival"
    r = post_rollout(app_url, rollout_body(0, llm_url), headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["run_id"] == "prompt-learning-0-0123abcd"
    metrics = {"episode_returns": [1.0], "mean_return": 1.0, "num_steps": 1, "num_episodes": 1}
    assert out["metrics"] == {
        **metrics,
        "outcome_score": 1.0,
        "events_score": 1.0,
        "details": {"correct": True},
    }
    assert out["trace_correlation_id"] == CID
    assert out["pipeline_metadata"] == {"trace_correlation_id": CID, "inference_url": llm_url}
    traj = out["trajectories"][0]
    assert (traj["env_id"], traj["policy_id"], traj["length"]) == (
        "banking77::train::0",
        "banking77-mipro",
        1,
    )
    assert traj["inference_url"] == llm_url
    step = traj["steps"][0]
    assert step["reward"] == 1.0 and step["done"] is True
    assert step["tool_calls"][0]["function"]["name"] == "banking77_classify"
    info = step["info"]
    assert info["expected_intent"] == info["predicted_intent"] == "card_arrival" and info["correct"] is True
    assert info["response_json"]["choices"][0]["message"]["tool_calls"]

    [sent] = fake.requests
    assert sent["path"] == f"/api/interceptor/v1/{TRIAL}/chat/completions"
    assert sent["query"] == f"cid={CID}"
    assert sent["headers"]["x-api-key"] == KEY  # the inbound (Bearer) key, forwarded as X-API-Key
    body = sent["body"]
    assert body["messages"] == info["messages"]
    system, user = body["messages"]
    assert system == {"role": "system", "content": SYSTEM_PATTERN}
    intents = "\n".join(f"{i}. {label}" for i, label in enumerate(data.labels, 1))
    assert user["content"] == (
        f"Customer Query: {data.train[0].text}\n\nAvailable Intents:\n{intents}\n\n"
        "Classify this query into one of the above banking intents using the tool call."
    )
    assert len(data.labels) == 77 and intents.count("\n") == 76 and "77. " in user["content"]
    assert body["tools"][0]["function"]["name"] == "banking77_classify"
    assert body["tools"][0]["function"]["parameters"]["required"] == ["intent"]
    assert body["tool_choice"] == "required"
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("openai/gpt-oss-20b", 0.0, 128)


def test_wrong_answer_scores_zero(app_url: str, fake: FakeLLM, llm_url: str, data: Banking77Data) -> None:
    fake.answers[data.train[1].text] = "card_linking"
    fake.answers[data.train[2].text] = " Card Arrival "
    wrong = post_rollout(app_url, rollout_body(1, llm_url, trace_correlation_id="trace_explicit")).json()
    assert wrong["metrics"]["mean_return"] == 0.0 and wrong["metrics"]["details"] == {"correct": False}
    assert wrong["trajectories"][0]["steps"][0]["info"]["predicted_intent"] == "card_linking"
    assert wrong["trace_correlation_id"] == "trace_explicit"
    loose = post_rollout(app_url, rollout_body(2, llm_url)).json()
    assert loose["metrics"]["outcome_score"] == 1.0
    fake.mode = "content"  # no tool call: the first token of the content is the answer
    fake.answers[data.train[3].text] = "card_arrival"
    out = post_rollout(app_url, rollout_body(3, llm_url)).json()
    assert out["trajectories"][0]["steps"][0]["info"]["predicted_intent"] == "card_arrival"
    assert out["metrics"]["mean_return"] == 1.0


def test_seed_modulo_split_length(app_url: str, fake: FakeLLM, llm_url: str, data: Banking77Data) -> None:
    out = post_rollout(app_url, rollout_body(len(data.test) + 5, llm_url, split="test")).json()
    assert out["trajectories"][0]["env_id"] == "banking77::test::5"
    assert out["trajectories"][0]["steps"][0]["info"]["expected_intent"] == data.test[5].label
    out = post_rollout(app_url, rollout_body(2 * len(data.train) + 7, llm_url)).json()
    assert out["trajectories"][0]["env_id"] == "banking77::train::7"
    queries = [QUERY_RE.match(r["body"]["messages"][1]["content"]).group(1) for r in fake.requests]
    assert queries == [data.test[5].text, data.train[7].text]


LLM_FAILURES = [("error", "upstream_http_error"), ("garbage", "upstream_bad_json")]


@pytest.mark.parametrize(("mode", "code"), [*LLM_FAILURES, ("wrong_tool", "upstream_invalid_output")])
def test_llm_failure_is_502(app_url: str, fake: FakeLLM, llm_url: str, mode: str, code: str) -> None:
    fake.mode = mode
    r = post_rollout(app_url, rollout_body(4, llm_url))
    assert r.status_code == 502
    assert r.json()["detail"]["error"]["code"] == code
    assert get(app_url, "/stats").json()["failed"] == 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_upstream_bad_policy_and_provider_hosts(app_url: str) -> None:
    r = post_rollout(app_url, rollout_body(0, f"http://127.0.0.1:{_closed_port()}/v1/x?cid=c"))
    assert r.status_code == 502 and r.json()["detail"]["error"]["code"] == "upstream_unreachable"
    r = post_rollout(app_url, rollout_body(0, "https://api.openai.com/v1"))
    assert r.status_code == 502 and r.json()["detail"]["error"]["code"] == "direct_provider_url"
    r = post_rollout(app_url, rollout_body(0, "", model=""))
    assert r.status_code == 400 and r.json()["detail"]["error"]["missing"] == ["model", "inference_url"]
    r = post_rollout(app_url, rollout_body(0, "http://127.0.0.1:9/v1", split="validation"))
    assert r.status_code == 400 and r.json()["detail"]["error"]["code"] == "unknown_split"


def test_fail_seeds_answer_500_without_calling_the_llm(app_url: str, fake: FakeLLM, llm_url: str) -> None:
    r = post_rollout(app_url, rollout_body(13, llm_url))
    assert r.status_code == 500 and r.json()["detail"]["error"]["code"] == "injected_failure"
    assert fake.requests == []
    assert post_rollout(app_url, rollout_body(14, llm_url)).status_code == 200
    stats = get(app_url, "/stats", headers={}).json()
    assert stats == {
        "started": 2,
        "completed": 1,
        "failed": 1,
        "cancelled": 0,
        "in_flight": 0,
        "max_in_flight": 1,
        "seeds": [13, 14],
        "attempts_by_seed": {"13": 1, "14": 1},
        "injected": {"fail": 1},
    }


def test_close_seeds_drop_the_connection_mid_response(
    data: Banking77Data, fake: FakeLLM, llm_url: str
) -> None:
    with BackgroundServer(create_app(data, api_key=KEY, close_seeds={21})) as server:
        for _ in range(2):  # a fresh connection each time, and the app keeps serving after a drop
            with pytest.raises(httpx.RemoteProtocolError):
                post_rollout(server.url, rollout_body(21, llm_url))
        assert post_rollout(server.url, rollout_body(22, llm_url)).status_code == 200
        stats = get(server.url, "/stats").json()
    assert len(fake.requests) == 1, "only the healthy seed reached the LLM"
    assert stats["attempts_by_seed"] == {"21": 2, "22": 1} and stats["injected"] == {"close": 2}
    assert (stats["started"], stats["completed"], stats["failed"]) == (3, 1, 2)


def test_close_seeds_fail_before_any_byte_of_a_reward(data: Banking77Data, llm_url: str) -> None:
    """The client gets a status line and part of a body, never a complete response."""
    with (
        BackgroundServer(create_app(data, api_key=KEY, close_seeds={21})) as server,
        httpx.Client(timeout=10) as client,
        client.stream(
            "POST", f"{server.url}/rollout", json=rollout_body(21, llm_url), headers={"X-API-Key": KEY}
        ) as response,
    ):
        assert response.status_code == 200 and response.headers["content-length"] == "4096"
        with pytest.raises(httpx.RemoteProtocolError):
            response.read()


def test_garbage_seeds_answer_200_with_a_non_json_body(
    data: Banking77Data, fake: FakeLLM, llm_url: str
) -> None:
    with BackgroundServer(create_app(data, api_key=KEY, garbage_seeds={31})) as server:
        r = post_rollout(server.url, rollout_body(31, llm_url))
        stats = get(server.url, "/stats").json()
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        r.json()
    assert fake.requests == []
    assert stats["injected"] == {"garbage": 1} and stats["attempts_by_seed"] == {"31": 1}
    assert (stats["started"], stats["completed"], stats["failed"]) == (1, 0, 1)


def test_hang_seeds_are_counted_as_injected_and_cancelled(data: Banking77Data, llm_url: str) -> None:
    app = create_app(data, api_key=KEY, hang_seeds={41})
    with BackgroundServer(app) as server:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                f"{server.url}/rollout",
                json=rollout_body(41, llm_url),
                headers={"X-API-Key": KEY},
                timeout=0.5,
            )
        for _ in range(200):
            if app.state.stats.cancelled:
                break
            time.sleep(0.02)
        stats = get(server.url, "/stats").json()
    assert (
        stats["injected"] == {"hang": 1}
        and stats["cancelled"] == 1
        and stats["attempts_by_seed"] == {"41": 1}
    )


def test_cli_accepts_every_fault_knob() -> None:
    from mipro.taskapps.banking77.__main__ import parse_args

    args = parse_args(
        ["--fail-seeds", "1,2", "--hang-seeds", "3", "--close-seeds", "4, 5", "--garbage-seeds", "6"]
    )
    assert (args.fail_seeds, args.hang_seeds, args.close_seeds, args.garbage_seeds) == (
        {1, 2},
        {3},
        {4, 5},
        {6},
    )
    assert parse_args([]).close_seeds == set()
    with pytest.raises(SystemExit):
        parse_args(["--close-seeds", "x"])


async def _poll(url: str, until: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while True:
            stats = (await client.get(url)).json()
            if until(stats) or time.monotonic() > deadline:
                return stats
            await asyncio.sleep(0.02)


async def test_client_cancel_mid_llm_call_counts_cancelled(app_url: str, fake: FakeLLM, llm_url: str) -> None:
    fake.mode = "hang"
    async with httpx.AsyncClient(timeout=30) as client:
        body, headers = rollout_body(4, llm_url), {"X-API-Key": KEY}
        call = asyncio.create_task(client.post(f"{app_url}/rollout", json=body, headers=headers))
        assert await asyncio.to_thread(fake.got_request.wait, 10), "the LLM call never reached the upstream"
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    stats = await _poll(f"{app_url}/stats", lambda s: s["cancelled"] == 1)
    assert stats == {
        "started": 1,
        "completed": 0,
        "failed": 0,
        "cancelled": 1,
        "in_flight": 0,
        "max_in_flight": 1,
        "seeds": [4],
        "attempts_by_seed": {"4": 1},
        "injected": {},
    }
    assert await asyncio.to_thread(fake.saw_disconnect.wait, 10), "the upstream call was not aborted"


URL_CASES = [
    ("http://h/v1/abc?cid=x", "http://h/v1/abc/chat/completions?cid=x"),
    (
        "http://h/api/interceptor/v1/pl-1?cid=trace_pl-1",
        "http://h/api/interceptor/v1/pl-1/chat/completions?cid=trace_pl-1",
    ),
    ("http://h/v1", "http://h/v1/chat/completions"),
    (" http://h/v1/ ", "http://h/v1/chat/completions"),
    ("http://h/v1/chat/completions", "http://h/v1/chat/completions"),
    ("http://h/v1/chat/completions?cid=x", "http://h/v1/chat/completions?cid=x"),
    ("http://h/v1/completions", "http://h/v1/chat/completions"),
    ("http://h:8000", "http://h:8000/v1/chat/completions"),
    ("http://h/proxy?cid=x&a=1", "http://h/proxy/v1/chat/completions?cid=x&a=1"),
    ("http://h/v1/abc?cid=x/chat/completions", "http://h/v1/abc/chat/completions?cid=x"),
    ("http://h/v1/abc?cid=x/v1/chat/completions", "http://h/v1/abc/chat/completions?cid=x"),
    ("http://h?cid=x/v1/chat/completions", "http://h/v1/chat/completions?cid=x"),
]


@pytest.mark.parametrize(("raw", "expected"), URL_CASES)
def test_normalize_chat_url(raw: str, expected: str) -> None:
    assert normalize_chat_url(raw) == expected


def test_cid_from_url() -> None:
    assert cid_from_url("http://h/v1/abc?cid=x/chat/completions") == "x"
    assert cid_from_url("http://h/v1/abc?trace_correlation_id=t") == "t"
    assert cid_from_url("http://h/v1/abc") is None
    with pytest.raises(ValueError):
        normalize_chat_url("  ")


def test_loader_reads_the_shared_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BANKING77_DATA_DIR", str(SHARED))
    loaded = load_banking77(cache_dir=tmp_path, allow_download=False)
    assert (len(loaded.train), len(loaded.test), len(loaded.labels)) == (10003, 3080, 77)
    assert loaded.labels[0] == "card_arrival" and loaded.source == f"dir:{SHARED}"
    monkeypatch.delenv("BANKING77_DATA_DIR")  # no env var: the shared copy beside the checkout
    monkeypatch.delenv("MIPRO_DATASETS_DIR", raising=False)
    assert load_banking77(cache_dir=tmp_path, allow_download=False).source == f"dir:{SHARED}"
    with pytest.raises(FileNotFoundError):
        load_banking77(SHARED / "missing")


def no_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Neither BANKING77_DATA_DIR nor a shared copy (the shared datasets dir is an empty one)."""
    monkeypatch.delenv("BANKING77_DATA_DIR", raising=False)
    monkeypatch.setenv("MIPRO_DATASETS_DIR", str(tmp_path / "no-datasets"))


def test_fallback_when_no_dir_and_no_download(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    no_data_dir(monkeypatch, tmp_path)

    def offline(*_a: Any, **_k: Any) -> Path:
        raise httpx.ConnectError("no network in this test")

    monkeypatch.setattr(data_mod, "download", offline)
    loaded = load_banking77(cache_dir=tmp_path / "cache")
    assert loaded.is_fallback and loaded.source.startswith("fallback") and "NOT Banking77" in loaded.source
    assert len(loaded.labels) == 12 and all(re.fullmatch(r"[a-z0-9_]+", label) for label in loaded.labels)
    per_label = Counter(row.label for row in loaded.train + loaded.test)
    assert set(per_label.values()) == {25} and len(per_label) == 12 and len(loaded.test) == 84
    assert load_banking77(cache_dir=tmp_path / "c2", allow_download=False).is_fallback


def test_fallback_set_is_not_banking77(data: Banking77Data) -> None:
    ours = data_mod.load_fallback()
    theirs = {row.text.lower() for row in data.train + data.test}
    assert not [row.text for row in ours.train + ours.test if row.text.lower() in theirs]


def test_download_then_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    static = FastAPI()

    @static.get("/banking_data/{name}")
    async def serve(name: str) -> Response:
        return PlainTextResponse((SHARED / name).read_text(encoding="utf-8"))

    no_data_dir(monkeypatch, tmp_path / "elsewhere")
    with BackgroundServer(static) as server:
        monkeypatch.setattr(data_mod, "DOWNLOAD_BASE_URL", f"{server.url}/banking_data")
        first = load_banking77(cache_dir=tmp_path)
    assert first.source.startswith("download:") and len(first.train) == 10003
    second = load_banking77(cache_dir=tmp_path, allow_download=False)
    assert second.source == f"cache:{tmp_path}" and second.labels == first.labels


def test_app_runs_on_the_fallback_set(fake: FakeLLM, llm_url: str) -> None:
    fallback = data_mod.load_fallback()
    fake.answers[fallback.train[0].text] = fallback.train[0].label
    with BackgroundServer(create_app(fallback)) as server:
        out = httpx.post(f"{server.url}/rollout", json=rollout_body(0, llm_url), timeout=30).json()
    assert out["metrics"]["mean_return"] == 1.0
    assert "12. " in fake.requests[0]["body"]["messages"][1]["content"]
