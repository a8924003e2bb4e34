"""The two-stage banking77 pipeline app (router -> classifier) over real HTTP, with the real interceptor and
the simulated LLM: each stage's call is mapped to its stage (by the URL's stage segment, or by its baseline
instruction), gets that stage's prompt, and the app that renders the candidate itself from
`prompt_template.prompt_metadata.pipeline_modules` sends exactly what the interceptor would (it passes
through); the rollout payload carries the candidate as the public pipeline apps read it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mipro.activity_models import RolloutTarget
from mipro.config import JobConfig, load_config_file
from mipro.interceptor.app import create_app as create_interceptor
from mipro.interceptor.registry import Registry, Upstream
from mipro.rollout_protocol import auth_headers, rollout_payload
from mipro.serving import BackgroundServer
from mipro.taskapps.banking77.data import Banking77Data
from mipro.taskapps.banking77_pipeline import CLASSIFIER, ROUTER, create_app, domain_of
from mipro.taskapps.banking77_pipeline.prompts import (
    CLASSIFIER_SYSTEM,
    ROUTER_SYSTEM,
    candidate_stages,
    parse_domain,
    render_candidate,
)
from mipro.taskapps.urls import stage_chat_url
from mipro.types import ChatMessage, CompiledCandidate, FewShotExample, StagePrompt
from tests.conftest import REPO, TASK_APP_KEY

SEED = 4140  # a train row: "card_arrival"-like queries are grouped, this one is scattered


def config(llm_url: str = "http://127.0.0.1:1") -> JobConfig:
    return load_config_file(
        REPO / "configs" / "banking77_pipeline.toml",
        [f'policy.inference_url="{llm_url}/v1"', f'mipro.meta.inference_url="{llm_url}/v1"'],
    )


def classifier_demo() -> FewShotExample:
    call = {
        "type": "function",
        "function": {"name": "banking77_classify", "arguments": '{"intent": "card_arrival"}'},
    }
    return FewShotExample(
        seed=1,
        stage_id=CLASSIFIER,
        input="Customer Query: my card has not come yet\n\nRouted to: card_delivery\n\nIntents:\n1. x",
        answer=ChatMessage(role="assistant", content=None, tool_calls=[call]),
        score=1.0,
    )


def router_demo() -> FewShotExample:
    answer = ChatMessage(role="assistant", content="card_delivery")
    return FewShotExample(
        seed=2, stage_id=ROUTER, input="Customer Query: where is my new card", answer=answer, score=1.0
    )


CANDIDATE = CompiledCandidate(
    stages=[
        StagePrompt(stage_id=ROUTER, instruction="ROUTE the query to its category.", demos=[router_demo()]),
        StagePrompt(stage_id=CLASSIFIER, instruction="CLASSIFY the routed query.", demos=[classifier_demo()]),
    ]
)


@pytest.fixture(scope="module")
def interceptor() -> Iterator[tuple[Registry, BackgroundServer]]:
    registry = Registry()
    with BackgroundServer(create_interceptor(registry)) as server:
        yield registry, server


def rollout(
    data: Banking77Data,
    llm: BackgroundServer,
    interceptor: tuple[Registry, BackgroundServer],
    cid: str,
    with_candidate: bool = True,
    **app_options: bool,
) -> tuple[dict[str, Any], list[Any]]:
    """One rollout of CANDIDATE through the app and the interceptor: the app's answer and the calls the
    interceptor recorded."""
    registry, server = interceptor
    cfg = config(llm.url)
    upstream = Upstream(base_url=f"{llm.url}/v1", model="sim-small")
    version = registry.register(CANDIDATE, cfg.stages(), upstream, caller_key=TASK_APP_KEY)
    url = f"{server.url}/v1/{version}?cid={cid}"
    target = RolloutTarget.from_config(cfg)
    payload = rollout_payload(
        target, SEED, "run-1", cid, url, candidate=CANDIDATE if with_candidate else None
    )
    app = create_app(data, api_key=TASK_APP_KEY, **app_options)
    try:
        with BackgroundServer(app) as task_app:
            r = httpx.post(
                f"{task_app.url}/rollout", json=payload, headers=auth_headers(TASK_APP_KEY), timeout=30
            )
        assert r.status_code == 200, r.text
        return r.json(), registry.take_records(version, cid)
    finally:
        registry.unregister(version)


def sent(calls: list[Any]) -> list[list[dict[str, Any]]]:
    return [[m.as_openai() for m in call.sent_messages] for call in calls]


@pytest.mark.parametrize("stage_urls", [True, False])
@pytest.mark.parametrize("read_prompt_template", [True, False])
def test_each_call_gets_its_stages_prompt_however_the_app_calls(
    banking77_data: Banking77Data,
    simllm: BackgroundServer,
    interceptor,
    stage_urls: bool,
    read_prompt_template: bool,
) -> None:
    answer, calls = rollout(
        banking77_data,
        simllm,
        interceptor,
        f"trace_{stage_urls}_{read_prompt_template}",
        stage_urls=stage_urls,
        read_prompt_template=read_prompt_template,
    )
    assert [c.stage_id for c in calls] == [ROUTER, CLASSIFIER] and all(c.error is None for c in calls)
    router, classifier = sent(calls)
    assert router[0]["content"] == "ROUTE the query to its category."
    assert [m["role"] for m in router] == ["system", "user", "assistant", "user"], "the router's demo"
    assert router[1]["content"] == "Customer Query: where is my new card"
    assert classifier[0]["content"] == "CLASSIFY the routed query."
    assert [m["role"] for m in classifier] == ["system", "user", "assistant", "tool", "user"]
    received = calls[0].request_messages[0].content
    assert received == ("ROUTE the query to its category." if read_prompt_template else ROUTER_SYSTEM)
    metadata = answer["pipeline_metadata"]
    assert [m["stage_id"] for m in metadata["modules"]] == [ROUTER, CLASSIFIER]
    assert answer["metrics"]["mean_return"] in (0.0, 1.0)
    assert metadata["final_intent"] == answer["trajectories"][0]["steps"][0]["info"]["predicted_intent"]


def test_the_app_rendering_the_candidate_sends_what_the_interceptor_would(
    banking77_data: Banking77Data, simllm: BackgroundServer, interceptor
) -> None:
    """Idempotence: the same messages reach the LLM whether the app or the interceptor applies the prompt."""
    _, by_interceptor = rollout(banking77_data, simllm, interceptor, "trace_i", read_prompt_template=False)
    _, by_app = rollout(banking77_data, simllm, interceptor, "trace_a", read_prompt_template=True)
    _, by_baseline = rollout(
        banking77_data, simllm, interceptor, "trace_b", stage_urls=False, with_candidate=False
    )
    assert sent(by_app) == sent(by_interceptor) == sent(by_baseline)


def test_the_payload_carries_the_candidate_as_pipeline_modules() -> None:
    target = RolloutTarget.from_config(config())
    plain = rollout_payload(target, 1, "r", "c", "http://x/v1/v?cid=c")
    assert "prompt_metadata" not in plain["policy"]["config"]["prompt_template"], "without the candidate"
    template = rollout_payload(target, 1, "r", "c", "http://x/v1/v?cid=c", candidate=CANDIDATE)["policy"][
        "config"
    ]["prompt_template"]
    assert template["sections"] == plain["policy"]["config"]["prompt_template"]["sections"], (
        "baseline patterns"
    )
    modules = template["prompt_metadata"]["pipeline_modules"]
    assert template["metadata"]["pipeline_modules"] == modules, "both of the reference's spellings"
    assert [(m["name"], m["module_id"]) for m in modules] == [(ROUTER, ROUTER), (CLASSIFIER, CLASSIFIER)]
    router, classifier = modules
    assert router["instruction_text"] == "ROUTE the query to its category."
    assert router["stages"][0]["baseline_instruction"] == ROUTER_SYSTEM
    [shot] = classifier["few_shots"]
    assert (shot["input"], shot["output"]) == ("my card has not come yet", "card_arrival"), "query and label"
    assert (shot["input_text"], shot["output_text"]) == (shot["input"], shot["output"])
    assert FewShotExample.model_validate(shot["demo"]) == classifier_demo()
    assert router["few_shots"][0]["output"] == "card_delivery"
    json.dumps(template)  # JSON all the way


def test_the_app_reads_the_public_apps_module_shape_too() -> None:
    """synth-ai's pipeline apps send one module per step: {name, instruction_text, few_shots}."""
    module = {"name": "router", "instruction_text": "Public router text.", "few_shots": [{"input": "q"}]}
    public = {"prompt_template": {"prompt_metadata": {"pipeline_modules": [module]}}}
    stages = candidate_stages(public)
    assert set(stages) == {ROUTER}
    messages = [
        {"role": "system", "content": ROUTER_SYSTEM},
        {"role": "user", "content": "Customer Query: q"},
    ]
    assert render_candidate(messages, stages[ROUTER])[0]["content"] == "Public router text."
    assert render_candidate(messages, None) == messages
    assert candidate_stages({}) == {} and candidate_stages({"prompt_template": {"metadata": {}}}) == {}


@pytest.mark.parametrize(
    ("content", "domain"),
    [
        ("card_delivery", "card_delivery"),
        ("Category: top_ups", "top_ups"),
        ("I would send this to the transfers team.", "transfers"),
        ("no idea", None),
    ],
)
def test_the_router_answer_names_a_domain_or_none(content: str, domain: str | None) -> None:
    response = {"choices": [{"message": {"role": "assistant", "content": content}}]}
    assert parse_domain(response, ["card_delivery", "top_ups", "transfers"]) == domain


def test_stage_urls_and_the_domain_map() -> None:
    assert stage_chat_url("http://h/v1/abc/chat/completions?cid=t", "router") == (
        "http://h/v1/abc/stage/router/chat/completions?cid=t"
    )
    assert stage_chat_url("http://h/v1/chat/completions", "a b") == "http://h/v1/stage/a%20b/chat/completions"
    assert domain_of("card_arrival") == "card_delivery" and domain_of("not_a_banking77_intent") == "general"


def test_task_info_describes_the_pipeline(banking77_data: Banking77Data) -> None:
    with BackgroundServer(create_app(banking77_data, api_key=TASK_APP_KEY)) as app:
        info = httpx.get(f"{app.url}/task_info", headers=auth_headers(TASK_APP_KEY)).json()["taskset"]
        instance = httpx.get(f"{app.url}/task_info?seed=3", headers=auth_headers(TASK_APP_KEY)).json()
    assert sum(len(v) for v in info["domains"].values()) == len(banking77_data.labels) == 77
    assert "route each banking customer query" in info["description"]
    pipeline = instance["task_metadata"]["pipeline"]
    assert pipeline["stages"] == [ROUTER, CLASSIFIER] and pipeline["edges"] == [[ROUTER, CLASSIFIER]]
    assert pipeline["baseline_messages"][CLASSIFIER][0]["pattern"] == CLASSIFIER_SYSTEM
