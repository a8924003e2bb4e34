"""Bad input never crashes anything.

- A malformed config (TOML, JSON or dict; overrides included) is refused with MIPROConfigurationError naming
  the field: no other exception type escapes `parse_config` / `load_config_file`, and whatever they accept
  survives the trip through a Temporal payload unchanged.
- A malformed task-app answer has no reward: `parse_reward` never raises and returns None or a finite float.
- A malformed LLM answer is a 502 with a clear message from the real interceptor (after its retries), never a
  500; a malformed request to the interceptor is a 4xx and never reaches the upstream.
- Through a real job: a task app answering garbage for every bootstrap seed.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import socket
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from mipro.config import JobConfig, load_config_file, parse_config
from mipro.errors import MIPROConfigurationError
from mipro.interceptor.app import MAX_BODY_BYTES, create_app
from mipro.interceptor.registry import Registry, Upstream
from mipro.job_models import EventsQuery
from mipro.rollout_protocol import parse_reward
from mipro.serving import BackgroundServer
from mipro.starter import jobs
from mipro.taskapps.banking77.app import create_app as create_banking77
from mipro.taskapps.banking77.data import Banking77Data
from mipro.types import CompiledCandidate, StagePrompt, StageSpec
from mipro.worker import WorkerOptions, running_worker
from mipro.workflows.mipro_workflow import MiproWorkflow
from tests.conftest import REPO, SMALL_JOB, TASK_APP_KEY, job_config

CONFIG_FILE = REPO / "configs" / "banking77.toml"
GOOD: dict[str, Any] = tomllib.loads(CONFIG_FILE.read_text())
PL = "prompt_learning"


def doc_with(mutate: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    """A deep copy of the example config with `mutate` applied to its `[prompt_learning]` table."""
    doc = copy.deepcopy(GOOD)
    mutate(doc[PL])
    return doc


def put(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = body
        for key in parents:
            node = node[key]
        node[last] = value

    return mutate


def drop(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = body
        for key in parents:
            node = node[key]
        del node[last]

    return mutate


def refused(call: Callable[[], object]) -> MIPROConfigurationError:
    """Run `call`; it must raise MIPROConfigurationError (any other exception fails the test as is)."""
    with pytest.raises(MIPROConfigurationError) as info:
        call()
    return info.value


def survives_a_temporal_payload(config: JobConfig) -> None:
    """Whatever the parser accepts, the workflow input carries unchanged (inf/nan would come back as null)."""
    converter = pydantic_data_converter.payload_converter
    [back] = converter.from_payloads(converter.to_payloads([config]), [JobConfig])
    assert back == config


def test_the_example_config_is_valid() -> None:
    survives_a_temporal_payload(parse_config(copy.deepcopy(GOOD)))


# ---- malformed configs (dicts) -------------------------------------------------------------------------

POOL = GOOD[PL]["mipro"]["online_pool"]
CONFIG_CASES: list[tuple[str, Callable[[dict[str, Any]], object], str]] = [
    # wrong types
    ("batch_size str", put("mipro.batch_size", "big"), "prompt_learning.mipro.batch_size"),
    ("num_iterations float", put("mipro.num_iterations", 1.5), "prompt_learning.mipro.num_iterations"),
    ("pool str", put("mipro.online_pool", "1,2,3"), "prompt_learning.mipro.online_pool"),
    ("pool item str", put("mipro.online_pool", [1, "x", *POOL]), "prompt_learning.mipro.online_pool.1"),
    ("messages str", put("initial_prompt.messages", "hi"), "prompt_learning.initial_prompt.messages"),
    ("role unknown", put("initial_prompt.messages", [{"role": "robot", "pattern": "x"}]), "messages.0.role"),
    ("temperature str", put("policy.temperature", "hot"), "prompt_learning.policy.temperature"),
    ("budget str", put("termination", {"max_spend_usd": "ten"}), "prompt_learning.termination.max_spend_usd"),
    ("tpe int", put("mipro.tpe", 3), "prompt_learning.mipro.tpe"),
    (
        "stage int text",
        put("mipro.stages", [{"baseline_instruction": 5}]),
        "mipro.stages.0.baseline_instruction",
    ),
    ("task_app_url int", put("task_app_url", 5), "prompt_learning.task_app_url"),
    ("pricing list", put("pricing", [1]), "prompt_learning.pricing"),
    (
        "wildcards list",
        put("initial_prompt.wildcards", ["query"]),
        "prompt_learning.initial_prompt.wildcards",
    ),
    ("algorithm", put("algorithm", "gepa"), "prompt_learning.algorithm"),
    # sections of the wrong shape: the legacy-key shim must not crash on them
    ("mipro str", put("mipro", "abc"), "prompt_learning.mipro"),
    ("mipro int", put("mipro", 5), "prompt_learning.mipro"),
    ("mipro list", put("mipro", [1, 2]), "prompt_learning.mipro"),
    ("meta str", put("mipro.meta", "sim-meta"), "prompt_learning.mipro.meta"),
    (
        "policy str with flat meta keys",
        lambda b: (put("policy", "gpt")(b), drop("mipro.meta")(b), put("mipro.meta_model", "m")(b)),
        "prompt_learning.policy",
    ),
    # missing sections and fields
    ("no mipro", drop("mipro"), "prompt_learning.mipro"),
    ("no policy", drop("policy"), "prompt_learning.policy"),
    # (initial_prompt may go: the baseline is then gathered from the task app)
    ("no task_app_url", drop("task_app_url"), "prompt_learning.task_app_url"),
    ("no meta", drop("mipro.meta"), "prompt_learning.mipro.meta"),
    ("no test_pool", drop("mipro.test_pool"), "prompt_learning.mipro.test_pool"),  # val_seeds may go: online
    ("no policy model", drop("policy.model"), "prompt_learning.policy.model"),
    ("empty everything", lambda b: b.clear(), "prompt_learning.mipro"),
    # negative and out-of-range numbers
    ("batch_size -1", put("mipro.batch_size", -1), "prompt_learning.mipro.batch_size"),
    ("max_concurrent 0", put("mipro.max_concurrent", 0), "prompt_learning.mipro.max_concurrent"),
    ("retries -1", put("mipro.rollout_retries", -1), "prompt_learning.mipro.rollout_retries"),
    ("timeout -5", put("mipro.rollout_timeout_seconds", -5), "prompt_learning.mipro.rollout_timeout_seconds"),
    ("spend -1", put("termination", {"max_spend_usd": -1}), "prompt_learning.termination.max_spend_usd"),
    ("price -0.1", put("pricing.sim-meta.input_per_mtok", -0.1), "pricing.sim-meta.input_per_mtok"),
    ("temperature -0.5", put("policy.temperature", -0.5), "prompt_learning.policy.temperature"),
    ("gamma 1.5", put("mipro.tpe.gamma", 1.5), "prompt_learning.mipro.tpe.gamma"),
    ("threshold nan", put("mipro.few_shot_score_threshold", math.nan), "mipro.few_shot_score_threshold"),
    # numbers no Temporal timeout or JSON payload can carry: the job would be stuck, not refused
    ("timeout inf", put("mipro.rollout_timeout_seconds", math.inf), "mipro.rollout_timeout_seconds"),
    ("timeout 1e300", put("mipro.rollout_timeout_seconds", 1e300), "mipro.rollout_timeout_seconds"),
    ("price inf", put("pricing.sim-meta.input_per_mtok", math.inf), "pricing.sim-meta.input_per_mtok"),
    ("prior_weight inf", put("mipro.tpe.prior_weight", math.inf), "prompt_learning.mipro.tpe.prior_weight"),
    # empty and overlapping pools
    ("empty online_pool", put("mipro.online_pool", []), "prompt_learning.mipro.online_pool"),
    ("empty test_pool", put("mipro.test_pool", []), "prompt_learning.mipro.test_pool"),
    (
        "empty bootstrap",
        put("mipro.bootstrap_train_seeds", []),
        "prompt_learning.mipro.bootstrap_train_seeds",
    ),
    ("test overlaps val", put("mipro.test_pool", GOOD[PL]["mipro"]["val_seeds"][:3]), "overlaps val_seeds"),
    ("test overlaps online", put("mipro.test_pool", [POOL[0], 10**6]), "overlaps online_pool"),
    ("batch over pool", put("mipro.batch_size", len(POOL) + 1), "batch_size"),
    # unknown keys
    ("unknown mipro key", put("mipro.batchsize", 8), "prompt_learning.mipro.batchsize"),
    ("unknown top key", put("algo", "mipro"), "prompt_learning.algo"),
    ("unknown tpe key", put("mipro.tpe.gama", 0.2), "prompt_learning.mipro.tpe.gama"),
    ("unknown meta key", put("mipro.meta.modle", "x"), "prompt_learning.mipro.meta.modle"),
    ("unknown message key", put("initial_prompt.messages", [{"role": "system", "text": "x"}]), "messages.0"),
    # cross-field rules
    (
        "stage not in prompt",
        put("mipro.stages", [{"baseline_instruction": "nowhere"}]),
        "baseline_instruction",
    ),
    (
        "budget without prices",
        lambda b: (put("termination", {"max_spend_usd": 1.0})(b), b.pop("pricing")),
        "pricing",
    ),
]


@pytest.mark.parametrize(("mutate", "field"), [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES])
def test_malformed_config_is_refused_naming_the_field(mutate: Callable[..., object], field: str) -> None:
    error = refused(lambda: parse_config(doc_with(mutate)))
    assert field in str(error), f"the message names {field!r}: {error}"
    assert error.problems and all(f.startswith("prompt_learning") for f, _, _ in error.problems)


@pytest.mark.parametrize(
    "raw", [[1, 2], "prompt_learning", None, 7, {PL: 5}, {PL: [1]}, {PL: None}], ids=repr
)
def test_a_document_that_is_not_a_table_is_refused(raw: Any) -> None:
    error = refused(lambda: parse_config(raw))
    assert "prompt_learning" in str(error)


# ---- malformed config files and overrides --------------------------------------------------------------

FILE_CASES: list[tuple[str, str, bytes]] = [
    ("toml syntax", "bad.toml", b"[prompt_learning\nalgorithm = 'mipro'\n"),
    ("toml duplicate key", "dup.toml", b"[prompt_learning]\na = 1\na = 2\n"),
    ("not utf-8", "latin.toml", b"[prompt_learning]\ntask_app_id = '\xe9t\xe9'\n"),
    ("binary garbage", "garbage.toml", bytes(range(256)) * 4),
    ("utf-16 with BOM", "utf16.toml", "[prompt_learning]\nalgorithm = 'mipro'\n".encode("utf-16")),
    ("empty file", "empty.toml", b""),
    ("json syntax", "bad.json", b'{"prompt_learning": {'),
    ("json list", "list.json", b"[1, 2]"),
    ("json null", "null.json", b"null"),
    ("json string", "string.json", b'"prompt_learning"'),
    ("json number", "number.json", b"42"),
    ("json not utf-8", "latin.json", b'{"prompt_learning": "\xe9"}'),
]


@pytest.mark.parametrize(("name", "content"), [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES])
def test_malformed_config_file_is_refused(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    error = refused(lambda: load_config_file(path))
    assert error.problems and (str(path) in str(error) or "prompt_learning" in str(error))


def test_missing_file_and_directory_are_refused_naming_the_path(tmp_path: Path) -> None:
    for path in (tmp_path / "nope.toml", tmp_path):
        error = refused(lambda p=path: load_config_file(p))
        assert str(path) in str(error)


OVERRIDE_CASES: list[tuple[str, str]] = [
    ("mipro.batch_size=abc", "prompt_learning.mipro.batch_size"),
    ("mipro.batch_size=-3", "prompt_learning.mipro.batch_size"),
    ("mipro.online_pool=[]", "prompt_learning.mipro.online_pool"),
    ("mipro.no_such_knob=1", "prompt_learning.mipro.no_such_knob"),
    ("no equals sign", "no equals sign"),
    ("mipro.batch_size.deeper=1", "mipro.batch_size"),  # descends through a number
    ("initial_prompt.messages.0.role=user", "initial_prompt.messages"),  # descends through a list
    ("task_app_url.x.y=1", "task_app_url"),  # descends through a string
    ("mipro.rollout_timeout_seconds=inf", "prompt_learning.mipro.rollout_timeout_seconds"),
]


@pytest.mark.parametrize(("override", "field"), OVERRIDE_CASES, ids=[c[0] for c in OVERRIDE_CASES])
def test_malformed_override_is_refused_naming_the_field(override: str, field: str) -> None:
    error = refused(lambda: load_config_file(CONFIG_FILE, [override]))
    assert field in str(error), str(error)


# ---- the same, generated -------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def dotted_paths(node: Any, prefix: str = "") -> list[str]:
    paths = []
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else key
            paths.append(path)
            paths += dotted_paths(value, path)
    return paths


PATHS = dotted_paths(GOOD[PL])
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(path=st.sampled_from(PATHS), value=json_values)
def test_any_value_anywhere_is_accepted_or_refused_cleanly(path: str, value: Any) -> None:
    doc = doc_with(put(path, value))
    try:
        config = parse_config(doc)
    except MIPROConfigurationError as error:
        assert error.problems
        return
    survives_a_temporal_payload(config)


@FAST
@given(path=st.sampled_from(PATHS), extra=st.lists(st.sampled_from(PATHS), max_size=3))
def test_any_missing_fields_are_refused_cleanly(path: str, extra: list[str]) -> None:
    doc = copy.deepcopy(GOOD)
    for p in [path, *extra]:
        *parents, last = p.split(".")
        node: Any = doc[PL]
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    try:
        parse_config(doc)
    except MIPROConfigurationError as error:
        assert error.problems


@FAST
@given(override=st.text(max_size=40))
def test_any_override_is_accepted_or_refused_cleanly(override: str) -> None:
    try:
        load_config_file(CONFIG_FILE, [override])
    except MIPROConfigurationError as error:
        assert error.problems


@FAST
@given(content=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_file_content_is_refused_cleanly(
    content: bytes, tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("cfg", numbered=True)
    for name in ("c.toml", "c.json"):
        (directory / name).write_bytes(content)
        refused(lambda n=name: load_config_file(directory / n))


# ---- malformed task-app responses ----------------------------------------------------------------------

REWARD_KEYS = [
    "outcome_reward",
    "outcome_score",
    "outcome_objectives",
    "mean_return",
    "reward_mean",
    "episode_returns",
    "episode_rewards",
]
metrics_like = st.dictionaries(st.sampled_from(REWARD_KEYS), json_values, max_size=4)
step_like = st.dictionaries(st.just("reward"), json_values) | json_values
trajectory_like = st.fixed_dictionaries({}, optional={"steps": st.lists(step_like, max_size=3)}) | json_values
reward_like = st.fixed_dictionaries(
    {},
    optional={
        "metrics": metrics_like,
        "reward_info": metrics_like,
        "success_status": json_values | st.sampled_from(["success", "failure", "OK"]),
        "trajectories": st.lists(trajectory_like, max_size=2),
    },
)


def assert_reward_or_none(body: Any) -> None:
    reward = parse_reward(body)
    assert reward is None or (type(reward) is float and math.isfinite(reward)), reward


@settings(max_examples=500, deadline=None)
@given(body=json_values | reward_like)
def test_parse_reward_never_raises_and_is_finite_or_none(body: Any) -> None:
    assert_reward_or_none(body)


NO_REWARD = [
    None,
    "1.0",
    [1.0],
    {},
    {"metrics": {}},
    {"metrics": None},
    {"metrics": "1.0"},
    {"metrics": {"outcome_reward": "1.0"}},
    {"metrics": {"outcome_score": True}},
    {"metrics": {"outcome_reward": math.nan}},
    {"metrics": {"outcome_reward": math.inf}},
    {"metrics": {"outcome_objectives": [1.0]}},
    {"metrics": {"episode_returns": []}},
    {"metrics": {"episode_returns": [1.0, "x"]}},
    {"metrics": {"episode_returns": 1}},  # a number where a list belongs
    {"metrics": {"episode_returns": True}},
    {"metrics": {"episode_rewards": 0.5}},
    {"metrics": {"episode_returns": "10"}},
    {"metrics": {"episode_returns": [1e308, 1e308]}},  # the mean overflows to inf
    {"metrics": {"outcome_reward": 1.0}, "success_status": "failure"},
    {"trajectories": "x"},
    {"trajectories": [{"steps": [{"reward": "1"}]}]},
    {"trajectories": [{"steps": [{}]}]},
    {"trajectories": [{"steps": "abc"}]},
]


@pytest.mark.parametrize("body", NO_REWARD, ids=lambda b: json.dumps(b)[:60])
def test_a_response_without_a_numeric_reward_has_none(body: Any) -> None:
    assert parse_reward(body) is None


def test_well_formed_rewards_are_read() -> None:
    assert parse_reward({"metrics": {"outcome_reward": 1}}) == 1.0
    assert parse_reward({"reward_info": {"outcome_objectives": {"reward": 0.25}}}) == 0.25
    assert parse_reward({"metrics": {"episode_returns": [0.0, 1.0]}}) == 0.5
    assert parse_reward({"trajectories": [{"steps": [{"reward": 0.0}, {"reward": 1.0}]}]}) == 1.0


# ---- malformed LLM answers through the real interceptor ------------------------------------------------

BASELINE = "You are a classifier. Answer with one label."
CHAT = {
    "model": "whatever",
    "messages": [{"role": "system", "content": BASELINE}, {"role": "user", "content": "where is my card"}],
}
ATTEMPTS = 3


class ScriptedUpstream:
    """An OpenAI-compatible upstream answering every call with `body` (raw bytes, status 200)."""

    def __init__(self) -> None:
        self.body = b""
        self.calls = 0
        self.app = FastAPI()
        self.app.post("/v1/chat/completions")(self.chat)

    async def chat(self, request: Request) -> Response:
        self.calls += 1
        return Response(self.body, status_code=200, media_type="application/json")


@pytest.fixture(scope="module")
def proxied() -> Iterator[tuple[ScriptedUpstream, Registry, str, str]]:
    """The real interceptor in front of a scripted upstream; yields (upstream, registry, version url, key)."""
    upstream, registry = ScriptedUpstream(), Registry()
    # While the interceptor answers 500 (the bugs these tests catch), Starlette sends the 500 and then
    # re-raises, so uvicorn formats the traceback on its thread while pytest formats the failure on this one:
    # CPython 3.11.7 races there ("SystemError: AST constructor recursion depth mismatch", fixed in 3.11.8).
    # (Set after the servers exist: creating a uvicorn Config re-enables its loggers.)
    uvicorn_errors = logging.getLogger("uvicorn.error")
    with BackgroundServer(upstream.app) as up, BackgroundServer(create_app(registry)) as interceptor:
        uvicorn_errors.disabled = True
        candidate = CompiledCandidate(stages=[StagePrompt(stage_id="default", instruction="Better.")])
        version = registry.register(
            candidate,
            [StageSpec(baseline_instruction=BASELINE)],
            Upstream(base_url=f"{up.url}/v1", model="m", max_attempts=ATTEMPTS),
            caller_key="k",
        )
        yield upstream, registry, f"{interceptor.url}/v1/{version}", version
    uvicorn_errors.disabled = False


def completion(message: Any, usage: Any = None) -> bytes:
    body: dict[str, Any] = {"object": "chat.completion", "choices": [{"index": 0, "message": message}]}
    if usage is not None:
        body["usage"] = usage
    return json.dumps(body).encode()


OK_MESSAGE = {"role": "assistant", "content": "card_arrival"}
MALFORMED_ANSWERS: list[tuple[str, bytes]] = [
    ("garbage", b"<html>502 Bad Gateway</html>"),
    ("partial json", completion(OK_MESSAGE)[:40]),
    ("empty body", b""),
    ("not utf-8", b'{"choices": "\xff\xfe"}'),
    ("json list", b"[1, 2]"),
    ("json null", b"null"),
    ("no choices", b'{"object": "chat.completion"}'),
    ("empty choices", b'{"choices": []}'),
    ("choices a string", b'{"choices": "card_arrival"}'),
    ("choice a string", b'{"choices": ["card_arrival"]}'),
    ("message a string", completion("card_arrival")),
    ("message without role", completion({"content": "card_arrival"})),
    ("role a number", completion({"role": 5, "content": "card_arrival"})),
    ("content a number", completion({"role": "assistant", "content": 7})),
    ("tool_calls a string", completion({"role": "assistant", "content": None, "tool_calls": "x"})),
    ("tool_calls of strings", completion({"role": "assistant", "content": None, "tool_calls": ["x"]})),
]


@pytest.mark.parametrize("body", [c[1] for c in MALFORMED_ANSWERS], ids=[c[0] for c in MALFORMED_ANSWERS])
def test_malformed_llm_answer_is_a_clear_502_after_retries(proxied, body: bytes) -> None:  # noqa: ANN001
    upstream, registry, url, version = proxied
    upstream.body, upstream.calls = body, 0
    r = httpx.post(f"{url}/chat/completions?cid=bad", json=CHAT, headers={"X-API-Key": "k"}, timeout=30)
    assert r.status_code == 502, r.text
    error = r.json()["error"]
    assert error["code"] == "upstream_failed" and "malformed" in error["message"]
    assert upstream.calls == ATTEMPTS, "retried up to the limit, not beyond"
    [record] = registry.take_records(version, "bad")
    assert record.answer is None and record.error, "recorded as an LLM failure (the activity says llm_error)"


BAD_USAGE: list[tuple[str, Any]] = [
    ("tokens a word", {"prompt_tokens": "many", "completion_tokens": 1}),
    ("tokens a list", {"prompt_tokens": [1], "completion_tokens": 1}),
    ("tokens too large for an int", {"prompt_tokens": 1e400}),
    ("tokens negative", {"prompt_tokens": -500, "completion_tokens": -1}),
    ("usage a list", [1, 2]),
    ("usage a string", "lots"),
]


@pytest.mark.parametrize("usage", [c[1] for c in BAD_USAGE], ids=[c[0] for c in BAD_USAGE])
def test_malformed_usage_never_breaks_the_interceptor(proxied, usage: Any) -> None:  # noqa: ANN001
    """The answer itself is fine: pass it on (200) or refuse it (502), never 500; never negative usage."""
    upstream, registry, url, version = proxied
    body = completion(OK_MESSAGE).decode()[:-1] + f', "usage": {json.dumps(usage)}}}'
    upstream.body = body.replace("Infinity", "1e400").encode()
    r = httpx.post(f"{url}/chat/completions?cid=usage", json=CHAT, headers={"X-API-Key": "k"}, timeout=30)
    assert r.status_code in (200, 502), f"{r.status_code}: {r.text[:200]}"
    for record in registry.take_records(version, "usage"):
        assert record.usage.prompt_tokens >= 0 and record.usage.completion_tokens >= 0
        assert record.usage.cost_usd >= 0


# ---- malformed requests to the interceptor -------------------------------------------------------------

MALFORMED_REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("not json", {"content": b"hello"}),
    ("not utf-8", {"content": b'{"messages": "\xff"}'}),
    ("json list", {"json": [CHAT]}),
    ("json string", {"json": "messages"}),
    ("no messages", {"json": {"model": "m"}}),
    ("messages a string", {"json": {"messages": "hi"}}),
    ("messages null", {"json": {"messages": None}}),
    ("messages empty", {"json": {"messages": []}}),
    ("messages of numbers", {"json": {"messages": [1, 2]}}),
    ("role a number", {"json": {"messages": [{"role": 5, "content": BASELINE}]}}),
    ("content a dict", {"json": {"messages": [{"role": "system", "content": {"a": 1}}]}}),
    ("tool_calls a string", {"json": {"messages": [{"role": "assistant", "tool_calls": "x"}]}}),
    ("baseline missing", {"json": {"messages": [{"role": "user", "content": "hi"}]}}),
    ("too large", {"content": b'{"messages": ["' + b"x" * (MAX_BODY_BYTES + 10) + b'"]}'}),
    ("max_tokens a word", {"json": {**CHAT, "max_tokens": "lots"}}),
    ("max_tokens a list", {"json": {**CHAT, "max_tokens": [16]}}),
    (
        "max_completion_tokens 1e400",
        {"content": json.dumps(CHAT)[:-1].encode() + b', "max_completion_tokens": 1e400}'},
    ),
]


@pytest.mark.parametrize("kwargs", [c[1] for c in MALFORMED_REQUESTS], ids=[c[0] for c in MALFORMED_REQUESTS])
def test_malformed_request_is_a_4xx_and_never_reaches_the_upstream(proxied, kwargs: dict[str, Any]) -> None:  # noqa: ANN001
    upstream, _, url, _ = proxied
    upstream.body, upstream.calls = completion(OK_MESSAGE), 0
    r = httpx.post(f"{url}/chat/completions?cid=req", headers={"X-API-Key": "k"}, timeout=30, **kwargs)
    assert 400 <= r.status_code < 500, f"{r.status_code}: {r.text[:200]}"
    assert r.json()["error"]["code"] and r.json()["error"]["message"]
    assert upstream.calls == 0


def test_huge_chunked_request_without_a_length_is_413(proxied) -> None:  # noqa: ANN001
    upstream, _, url, _ = proxied
    upstream.calls = 0

    def chunks() -> Iterator[bytes]:
        yield b'{"messages": ['
        for _ in range(MAX_BODY_BYTES // 10_000 + 2):
            yield b'{"role": "user", "content": "' + b"x" * 10_000 + b'"},'
        yield b'{"role": "system", "content": "x"}]}'

    r = httpx.post(f"{url}/chat/completions?cid=c", content=chunks(), headers={"X-API-Key": "k"}, timeout=30)
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    assert upstream.calls == 0


def test_garbage_content_length_is_a_4xx(proxied) -> None:  # noqa: ANN001
    _, _, url, _ = proxied
    parsed = httpx.URL(url)
    request = (
        f"POST {parsed.path}/chat/completions?cid=c HTTP/1.1\r\nHost: {parsed.host}\r\n"
        "X-API-Key: k\r\nContent-Type: application/json\r\nContent-Length: lots\r\n\r\n{}"
    ).encode()
    with socket.create_connection((parsed.host, parsed.port), timeout=10) as sock:
        sock.sendall(request)
        status_line = sock.recv(4096).split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 4"), status_line


def test_unknown_version_and_wrong_key_are_refused(proxied) -> None:  # noqa: ANN001
    upstream, _, url, _ = proxied
    upstream.calls = 0
    base = url.rsplit("/", 1)[0]
    assert (
        httpx.post(f"{base}/nope/chat/completions", json=CHAT, headers={"X-API-Key": "k"}).status_code == 404
    )
    assert httpx.post(f"{url}/chat/completions", json=CHAT, headers={"X-API-Key": "wrong"}).status_code == 401
    assert httpx.post(f"{url}/chat/completions", json=CHAT).status_code == 401
    assert upstream.calls == 0


# ---- through a real job --------------------------------------------------------------------------------


async def test_garbage_for_every_bootstrap_seed_runs_zero_shot_and_reports_it(
    temporal_env: WorkflowEnvironment,
    simllm: BackgroundServer,
    banking77_data: Banking77Data,
    task_queue: str,
) -> None:
    """Decision: the job completes. Every bootstrap rollout is a counted `bad_json` failure (no score, no
    demo), the search runs on instructions alone (one demo set: the empty one) with the validation, online
    and test seeds, which are healthy, and the result says what happened. Failing the job would throw away a
    search that can still help; pretending the failures were zeros would poison the baseline."""
    probe = job_config("http://unused", simllm.url, SMALL_JOB)
    bootstrap = set(probe.mipro.bootstrap_train_seeds)
    app = create_banking77(banking77_data, api_key=TASK_APP_KEY, garbage_seeds=bootstrap)
    with BackgroundServer(app) as server:
        # No workflow re-runs: this counts the activity layer's attempts (re-runs: test_outages.py).
        overrides = [*SMALL_JOB, "mipro.rollout_retries=1", "mipro.rerun_delays_seconds=[]"]
        config = job_config(server.url, simllm.url, overrides)
        client = temporal_env.client
        async with running_worker(client, WorkerOptions(task_queue=task_queue)):
            handle = await jobs.start_job(client, config, task_queue=task_queue)
            result = await handle.result()
            events = await handle.query(MiproWorkflow.events, EventsQuery(limit=5000))
        stats = app.state.stats

    assert result.status == "succeeded"
    assert result.stop_reason in (None, "search_space_exhausted"), (
        f"stopped early: {result.stop_reason} (spent ${result.costs.total.cost_usd:.4f} of "
        f"${config.termination.max_spend_usd}; errors {result.errors_by_kind})"
    )
    assert result.errors_by_kind == {"bad_json": len(bootstrap)}, (
        "each bootstrap rollout failed once, counted"
    )
    assert result.rollout_errors == len(bootstrap)
    assert {s: stats.attempts_by_seed[s] for s in bootstrap} == {s: 2 for s in bootstrap}, "retried once each"
    assert stats.injected == {"garbage": 2 * len(bootstrap)}
    [boot] = [e for e in events if e.type == "mipro.bootstrap.progress"]
    assert boot.data["demos"] == 0 and boot.data["baseline_score"] is None
    assert boot.data["baseline_validation_score"] is not None
    assert all(c.demo_counts == [0] for c in result.attempted_candidates), (
        "no demo came from a failed rollout"
    )
    max_instructions = config.mipro.max_instructions
    assert 1 <= result.total_trials <= max_instructions, "instructions x the one (empty) demo set"
    assert result.best_test_score is not None and result.baseline_test_score is not None


INF = float("inf")


@pytest.mark.parametrize(
    ("path", "value"),
    [("env_config.split", INF), ("policy.passed_through", [1, INF]), ("initial_prompt.metadata", {"x": INF})],
)
def test_free_form_values_must_be_finite_json(path: str, value: Any) -> None:
    """Free-form sections travel to the task app as JSON: inf and nan are refused with the field named
    (hypothesis found `env_config.split = inf` accepted, then unable to cross a Temporal payload)."""
    with pytest.raises(MIPROConfigurationError) as caught:
        parse_config(doc_with(put(path, value)))
    assert path in str(caught.value) and "finite" in str(caught.value)
