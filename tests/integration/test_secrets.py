"""Secrets go where they are needed and nowhere else.

A real job runs against a task app that requires the task-app key and a policy and a meta upstream that each
require their own provider key (the simulated LLM behind a key-checking ASGI wrapper); the config also holds
an inline `task_app_api_key`, which must be stripped. The job succeeding shows the keys flowed where needed.
Then no key appears in any run's history, the events, progress and other queries, the result, the worker's
logs or `describe()` (memo, search attributes, static summary/details).

The worker's live interceptor is probed during the job: the task-app wrapper, while a rollout is in flight
(so its version is registered), sends it requests with no key, wrong keys, a provider key, and to an
unregistered version. All are refused and none reaches the upstream (a unique marker in the probe bodies is
never seen upstream). After the job, the versions are unregistered: refused even with the right key, and the
upstream request count does not move.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import io
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import structlog
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from mipro.config import load_config_file
from mipro.errors import MIPROConfigurationError
from mipro.job_models import EventsQuery, OptimizationResult
from mipro.logging_setup import configure_logging
from mipro.serving import BackgroundServer
from mipro.simllm.app import create_app as create_simllm
from mipro.simllm.settings import SimLLMSettings
from mipro.starter import jobs
from mipro.taskapps.banking77.app import create_app as create_banking77
from mipro.taskapps.banking77.data import Banking77Data
from mipro.worker import WorkerOptions, running_worker
from mipro.workflows.mipro_workflow import MiproWorkflow
from tests.conftest import REPO, SMALL_JOB, TASK_APP_KEY, job_config

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

POLICY_KEY_ENV = "MIPRO_TEST_POLICY_PROVIDER_KEY"
META_KEY_ENV = "MIPRO_TEST_META_PROVIDER_KEY"
POLICY_KEY = "sk-policy-" + uuid.uuid4().hex
META_KEY = "sk-meta-" + uuid.uuid4().hex
INLINE_KEY = "sk-inline-" + uuid.uuid4().hex  # written into the config file: must never be used or kept
SECRETS = {
    "task app key": TASK_APP_KEY,
    "policy key": POLICY_KEY,
    "meta key": META_KEY,
    "inline key": INLINE_KEY,
}
PROBE_MARKER = "PROBE-" + uuid.uuid4().hex
PROBED_VERSIONS = 3
JOB_TIMEOUT_S = 600  # a hang guard only; nothing is asserted about duration


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the buffered body to the wrapped app, then defers to the real connection."""
    sent = False

    async def again() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


async def _send_json(send: Send, status: int, content: dict[str, Any]) -> None:
    raw = json.dumps(content).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes

    def text(self) -> str:
        return f"{self.path}\n{json.dumps(self.headers)}\n{self.body.decode('utf-8', 'replace')}"


@dataclass
class KeyedUpstream:
    """The simulated LLM behind provider-key auth: `/<route>/v1/...` needs `Bearer <keys[route]>`.

    Records every request it sees (authorised or not); refused requests never reach the simulated LLM.
    """

    app: Any
    keys: dict[str, str]
    seen: list[Seen] = field(default_factory=list)
    refused: list[Seen] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        route, _, rest = scope["path"].lstrip("/").partition("/")
        seen = Seen(scope["path"], _headers(scope), body)
        self.seen.append(seen)
        expected = self.keys.get(route)
        if expected is None or seen.headers.get("authorization") != f"Bearer {expected}":
            self.refused.append(seen)
            await _send_json(send, 401, {"error": {"message": "invalid provider key", "type": "auth"}})
            return
        path = "/" + rest
        await self.app({**scope, "path": path, "raw_path": path.encode()}, _replay(body, receive), send)

    def calls(self, route: str) -> list[Seen]:
        return [s for s in self.seen if s.path.startswith(f"/{route}/")]


@dataclass
class Probe:
    name: str
    expected: int
    status: int
    text: str


@dataclass
class ProbingTaskApp:
    """The banking77 task app, recording what it is sent; while the first rollouts of a few distinct
    versions are in flight, it probes the worker's interceptor with requests that must be refused."""

    app: Any
    baseline_instruction: str
    seen: list[Seen] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)  # version -> interceptor base URL
    probes: list[Probe] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        self.seen.append(Seen(scope["path"], _headers(scope), body))
        if scope["path"] == "/rollout":
            await self._maybe_probe(body)
        await self.app(scope, _replay(body, receive), send)

    async def _maybe_probe(self, body: bytes) -> None:
        url = json.loads(body)["policy"]["config"]["inference_url"]
        parts = urlsplit(url)
        version = parts.path.rstrip("/").rsplit("/", 1)[-1]
        if version in self.versions or len(self.versions) >= PROBED_VERSIONS:
            return
        base = f"{parts.scheme}://{parts.netloc}"
        self.versions[version] = base
        self.probes.extend(await probe_interceptor(base, version, self.baseline_instruction))


def probe_body(baseline_instruction: str) -> dict[str, Any]:
    """A well-formed request the interceptor would forward if it let it through (it carries the marker)."""
    return {
        "model": "sim-small",
        "messages": [
            {"role": "system", "content": baseline_instruction},
            {
                "role": "user",
                "content": f"Customer Query: {PROBE_MARKER}\n\nAvailable Intents:\ncard_arrival",
            },
        ],
    }


async def probe_interceptor(base: str, version: str, baseline_instruction: str) -> list[Probe]:
    """Requests to a registered version that lack the right caller key, and to an unregistered version."""
    chat = f"{base}/v1/{version}/chat/completions?cid=probe"
    unknown = f"{base}/v1/{'0' * 12}-{uuid.uuid4().hex[:16]}/chat/completions?cid=probe"
    cases = [
        ("no key", chat, {}, 401),
        ("wrong X-API-Key", chat, {"X-API-Key": "sk-wrong"}, 401),
        ("wrong bearer", chat, {"Authorization": "Bearer sk-wrong"}, 401),
        ("policy provider key as caller key", chat, {"X-API-Key": POLICY_KEY}, 401),
        ("meta provider key as bearer", chat, {"Authorization": f"Bearer {META_KEY}"}, 401),
        ("inline key as caller key", chat, {"X-API-Key": INLINE_KEY}, 401),
        ("malformed path, no key", f"{base}/v1/{version}?cid=probe/chat/completions", {}, 401),
        ("unregistered version, right key", unknown, {"X-API-Key": TASK_APP_KEY}, 404),
    ]
    body = probe_body(baseline_instruction)
    probes = []
    async with httpx.AsyncClient(timeout=30) as client:
        for name, url, headers, expected in cases:
            response = await client.post(url, json=body, headers=headers)
            probes.append(Probe(name, expected, response.status_code, response.text))
    return probes


@contextlib.contextmanager
def captured_logging() -> Iterator[io.StringIO]:
    """The project's logging setup (stdlib routed through structlog) writing to a buffer, at DEBUG."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    buffer = io.StringIO()
    configure_logging("DEBUG")
    structlog.configure(cache_logger_on_first_use=False)  # so restoring the defaults afterwards is complete
    for handler in root.handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(buffer)
    try:
        yield buffer
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        structlog.reset_defaults()


def _decoded_strings(node: Any) -> Iterator[str]:
    """Every string in a JSON document, plus the base64-decoded form of those that are base64 (payloads)."""
    if isinstance(node, dict):
        for value in node.values():
            yield from _decoded_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _decoded_strings(value)
    elif isinstance(node, str):
        yield node
        with contextlib.suppress(binascii.Error, ValueError):
            yield base64.b64decode(node, validate=True).decode("utf-8", "replace")


def history_text(history_json: str) -> str:
    return history_json + "\n" + "\n".join(_decoded_strings(json.loads(history_json)))


async def all_runs(client: Client, job_id: str) -> list[str]:
    """Run ids of the job, newest first, following the continue-as-new chain back to the first run."""
    runs: list[str] = []
    run_id = (await client.get_workflow_handle(job_id).describe()).run_id
    while run_id:
        runs.append(run_id)
        history = await client.get_workflow_handle(job_id, run_id=run_id).fetch_history()
        run_id = history.events[0].workflow_execution_started_event_attributes.continued_execution_run_id
    return runs


async def describe_text(client: Client, job_id: str, run_id: str) -> str:
    desc = await client.get_workflow_handle(job_id, run_id=run_id).describe()
    parts = [
        str(desc.raw_description),
        json.dumps(await desc.memo(), default=str),
        str(desc.typed_search_attributes),
        str(desc.search_attributes),
        str(await desc.static_summary()),
        str(await desc.static_details()),
    ]
    return "\n".join(parts)


async def wait_collecting_queries(
    client: Client, job_id: str, result: asyncio.Task[OptimizationResult]
) -> list[str]:
    """Bounded polling: query progress, candidates and best while the job runs; return what they said."""
    outputs: list[str] = []
    async with asyncio.timeout(JOB_TIMEOUT_S):
        while not result.done():
            handle = jobs.handle(client, job_id)
            outputs.append((await handle.query(MiproWorkflow.progress)).model_dump_json())
            candidates = await handle.query(MiproWorkflow.candidates)
            outputs.append(json.dumps([c.model_dump(mode="json") for c in candidates]))
            await asyncio.wait({result}, timeout=0.25)
    return outputs


@pytest.fixture
def provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider keys, in the environment of the (in-process) worker, under the names the config gives."""
    monkeypatch.setenv(POLICY_KEY_ENV, POLICY_KEY)
    monkeypatch.setenv(META_KEY_ENV, META_KEY)


async def test_keys_reach_where_needed_and_appear_nowhere_else(
    temporal_env: WorkflowEnvironment,
    banking77_data: Banking77Data,
    task_queue: str,
    provider_keys: None,
) -> None:
    client = temporal_env.client
    upstream = KeyedUpstream(create_simllm(SimLLMSettings()), {"policy": POLICY_KEY, "meta": META_KEY})
    prober = ProbingTaskApp(create_banking77(banking77_data, api_key=TASK_APP_KEY), baseline_instruction="")
    with (
        BackgroundServer(upstream) as llm,
        BackgroundServer(prober) as app,
        captured_logging() as logs,
    ):
        config = load_config_file(
            REPO / "configs" / "banking77.toml",
            [
                f'task_app_url="{app.url}"',
                f'task_app_api_key="{INLINE_KEY}"',
                f'policy.inference_url="{llm.url}/policy/v1"',
                f'policy.api_key_env="{POLICY_KEY_ENV}"',
                f'mipro.meta.inference_url="{llm.url}/meta/v1"',
                f'mipro.meta.api_key_env="{META_KEY_ENV}"',
                *SMALL_JOB,
                "mipro.continue_as_new_every_trials=3",
            ],
        )
        assert INLINE_KEY not in config.model_dump_json(), "the inline key is stripped at load"
        assert config.task_app_api_key_env == "ENVIRONMENT_API_KEY"
        prober.baseline_instruction = config.stages()[0].baseline_instruction

        async with running_worker(client, WorkerOptions(task_queue=task_queue)):
            handle = await jobs.start_job(client, config, task_queue=task_queue)
            waiting = asyncio.create_task(handle.result())
            query_outputs = await wait_collecting_queries(client, handle.id, waiting)
            result = await waiting
            events = await handle.query(MiproWorkflow.events, EventsQuery(limit=5000))
            query_outputs.append((await jobs.progress(client, handle.id)).model_dump_json())
            query_outputs.append((await handle.query(MiproWorkflow.best)).model_dump_json())

            # After the job: its versions are unregistered, refused even with the right key, and nothing
            # reaches the upstream.
            assert prober.versions, "the task app saw the interceptor's URL"
            before = len(upstream.seen)
            after_job: list[Probe] = []
            async with httpx.AsyncClient(timeout=30) as http:
                for version, base in prober.versions.items():
                    for headers in ({"X-API-Key": TASK_APP_KEY}, {"Authorization": f"Bearer {TASK_APP_KEY}"}):
                        response = await http.post(
                            f"{base}/v1/{version}/chat/completions?cid=late",
                            json=probe_body(prober.baseline_instruction),
                            headers=headers,
                        )
                        after_job.append(
                            Probe(f"{version} after the job", 404, response.status_code, response.text)
                        )
            assert len(upstream.seen) == before, "a refused request was forwarded upstream"

        run_ids = await all_runs(client, handle.id)
        histories = [
            history_text((await client.get_workflow_handle(handle.id, run_id=r).fetch_history()).to_json())
            for r in run_ids
        ]
        descriptions = [await describe_text(client, handle.id, r) for r in run_ids]
        log_text = logs.getvalue()

    # The job succeeded: every key reached the place that needs it.
    assert result.status == "succeeded", result.model_dump_json()[:2000]
    assert result.rollout_errors == 0 and result.total_trials == 4 * 3
    assert len(run_ids) >= 2, "continue-as-new happened, so several runs' histories are checked"

    # The upstream: every call carried the right provider key, and only that.
    assert upstream.refused == [], [s.path for s in upstream.refused[:5]]
    policy_calls, meta_calls = upstream.calls("policy"), upstream.calls("meta")
    assert policy_calls and meta_calls and len(policy_calls) + len(meta_calls) == len(upstream.seen)
    assert all(s.headers["authorization"] == f"Bearer {POLICY_KEY}" for s in policy_calls)
    assert all(s.headers["authorization"] == f"Bearer {META_KEY}" for s in meta_calls)
    for s in policy_calls:
        assert META_KEY not in s.text() and TASK_APP_KEY not in s.text() and INLINE_KEY not in s.text()
    for s in meta_calls:
        assert POLICY_KEY not in s.text() and TASK_APP_KEY not in s.text() and INLINE_KEY not in s.text()
    assert not any(PROBE_MARKER in s.text() for s in upstream.seen), "a refused probe reached the upstream"

    # The task app: got its key on every request, never a provider key or the inline key.
    rollouts = [s for s in prober.seen if s.path == "/rollout"]
    assert rollouts and any(s.path == "/health" for s in prober.seen)
    assert all(s.headers.get("x-api-key") == TASK_APP_KEY for s in prober.seen)
    for s in prober.seen:
        for name in ("policy key", "meta key", "inline key"):
            assert SECRETS[name] not in s.text(), f"the task app was sent the {name} on {s.path}"

    # The live interceptor refused every probe made while its versions were registered, and after.
    assert len(prober.versions) == PROBED_VERSIONS
    probes = [*prober.probes, *after_job]
    assert len(probes) == PROBED_VERSIONS * 8 + len(after_job)
    wrong = [(p.name, p.expected, p.status, p.text[:200]) for p in probes if p.status != p.expected]
    assert not wrong, wrong
    for p in probes:
        assert not any(secret in p.text for secret in SECRETS.values()), f"a refusal echoes a key: {p.name}"

    # No key anywhere a person or another process can read.
    events_text = json.dumps([e.model_dump(mode="json") for e in events])
    surfaces = {
        "result": result.model_dump_json(),
        "events query": events_text,
        "progress/candidates/best queries": "\n".join(query_outputs),
        "worker logs": log_text,
        **{f"history of run {r}": text for r, text in zip(run_ids, histories, strict=True)},
        **{f"describe() of run {r}": text for r, text in zip(run_ids, descriptions, strict=True)},
    }
    leaks = [
        (surface, name) for surface, text in surfaces.items() for name, key in SECRETS.items() if key in text
    ]
    assert not leaks, leaks

    # The checks above looked at real content: the decoded histories carry the config (with the env var
    # names), the logs carry the worker's and activities' lines, the events the trials.
    assert all(POLICY_KEY_ENV in h and META_KEY_ENV in h and "ENVIRONMENT_API_KEY" in h for h in histories)
    assert "worker_started" in log_text and "proposed" in log_text
    assert events_text.count("mipro.trial.complete") == 12
    assert query_outputs and "trials_done" in query_outputs[0]


@pytest.mark.parametrize(
    "override",
    [
        f'policy.api_key="{POLICY_KEY}"',
        f'mipro.meta.api_key="{META_KEY}"',
        f'task_app_api_key="{INLINE_KEY}"',
    ],
    ids=["policy.api_key", "mipro.meta.api_key", "task_app_api_key"],
)
def test_an_inline_key_never_reaches_a_job(override: str) -> None:
    """A key written into the config is refused (with a message that does not echo it) or removed: it must
    never reach the workflow input (history) or the task app's rollout payload."""
    try:
        config = job_config("http://127.0.0.1:9", "http://127.0.0.1:9", [override])
    except MIPROConfigurationError as exc:
        assert not any(key in str(exc) for key in SECRETS.values())
        return
    dumped = config.model_dump_json()
    assert not any(key in dumped for key in SECRETS.values()), (
        f"{override.split('=')[0]} kept in the job config"
    )
