"""Faults everywhere, and the job still completes with exactly what it should.

- Task-app faults (5xx, hang past the rollout timeout, connection dropped mid-response, non-JSON body) for a
  share of seeds: counted by kind with the exact totals, retried `rollout_retries` times each, never scored.
- LLM upstream faults (429 with Retry-After, 500, malformed bodies): absorbed by the interceptor's retries.
- The worker stopped gracefully (SIGTERM) mid-rollout, or SIGKILLed at bootstrap, proposal, mid-search, just
  after a promotion and in the final evaluation: no trial lost or run twice, the result unchanged.
- The Temporal dev server itself restarted mid-job on its SQLite file.

Synchronisation is by polling state (progress and events queries, server counters) in bounded loops, and by
*gates*: ASGI middlewares that hold chosen requests so that a kill lands while work is provably in flight.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import socket
import subprocess
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from mipro.config import JobConfig
from mipro.job_models import EventsQuery, OptimizationResult, Progress
from mipro.minibatches import minibatch_blocks
from mipro.serving import BackgroundServer
from mipro.simllm.app import create_app as create_simllm
from mipro.simllm.settings import SimLLMSettings
from mipro.starter import jobs
from mipro.starter.stack import dev_server_command, port_open
from mipro.taskapps.banking77.app import create_app as create_banking77
from mipro.taskapps.banking77.data import Banking77Data
from mipro.types import CandidateChoice
from mipro.worker import WorkerOptions, running_worker
from mipro.workflows.mipro_workflow import MiproWorkflow
from tests.conftest import SMALL_JOB, TASK_APP_KEY, job_config
from tests.integration.test_durability import comparable, start_worker_process

T = TypeVar("T")
BASELINE_KEY = CandidateChoice(instruction=[0], demo_set=[0]).key
POLL_S = 0.05


# ---- helpers -------------------------------------------------------------------------------------------


async def until(check: Callable[[], Awaitable[T | None]], what: str, attempts: int = 1200) -> T:
    """Poll `check` until it returns something truthy; RPC errors (a worker or server coming back) are
    retried. Gives up after `attempts` polls."""
    for _ in range(attempts):
        with suppress(RPCError):
            if value := await check():
                return value
        await asyncio.sleep(POLL_S)
    raise AssertionError(f"gave up waiting for {what}")


def progress_where(
    client: Client, job_id: str, condition: Callable[[Progress], bool]
) -> Callable[[], Awaitable[Progress | None]]:
    async def check() -> Progress | None:
        progress = await jobs.progress(client, job_id)
        assert progress.phase != "done", "the job finished before the point this test waits for"
        return progress if condition(progress) else None

    return check


async def trial_numbers(handle: WorkflowHandle) -> list[int]:
    events = await handle.query(MiproWorkflow.events, EventsQuery(limit=5000))
    return [e.data["trial"] for e in events if e.type == "mipro.trial.complete"]


class Gate:
    """ASGI middleware that holds the requests to `path` whose key (read from the JSON body by `key_of`)
    starts with a closed prefix, until the test opens it.

    A test closes a prefix before the work starts, waits until a request is held there (so the work is in
    flight, whatever the timing), acts (kills a worker, stops it...), then opens the prefix. Held requests
    then proceed; if their client is gone meanwhile, their answer goes nowhere.
    """

    def __init__(self, app: Any, path: str, key_of: Callable[[dict[str, Any]], str]) -> None:
        self.app, self.path, self.key_of = app, path, key_of
        self._lock = threading.Lock()
        self._closed: set[str] = set()
        self._held: Counter[str] = Counter()  # requests held so far, per closed prefix

    def close(self, *prefixes: str) -> None:
        with self._lock:
            self._closed.update(prefixes)

    def open(self, *prefixes: str) -> None:
        with self._lock:
            self._closed.difference_update(prefixes)

    def held(self, prefix: str) -> int:
        with self._lock:
            return self._held[prefix]

    def _closed_prefix(self, key: str) -> str | None:
        with self._lock:
            return next((p for p in self._closed if key.startswith(p)), None)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith(self.path):
            await self.app(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        key = self.key_of(json.loads(body))
        if prefix := self._closed_prefix(key):
            with self._lock:
                self._held[prefix] += 1
            while self._closed_prefix(key):  # the test thread opens it; this loop only watches the flag
                await asyncio.sleep(0.02)
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def rollout_label(body: dict[str, Any]) -> str:
    """The evaluation label in a rollout request: run_id is `prompt-learning-<seed>-<label>`."""
    return str(body.get("run_id", "")).split("-", 3)[-1]


def llm_model(body: dict[str, Any]) -> str:
    return str(body.get("model", ""))


class WorkerProcesses:
    """Worker subprocesses (`python worker.py`) for one task queue; whatever is left is killed at the end."""

    def __init__(self, client: Client, task_queue: str) -> None:
        self.address = client.service_client.config.target_host
        self.task_queue = task_queue
        self.current: subprocess.Popen[str] | None = None

    async def start(self) -> subprocess.Popen[str]:
        self.current = await start_worker_process(self.address, self.task_queue)
        return self.current

    def sigkill(self) -> None:
        assert self.current is not None and self.current.poll() is None, "the worker died on its own"
        os.kill(self.current.pid, signal.SIGKILL)
        self.current.wait()

    def cleanup(self) -> None:
        if self.current is not None and self.current.poll() is None:
            self.current.kill()
            self.current.wait()


def evaluations_per_seed(result: OptimizationResult, config: JobConfig, failing: set[int]) -> Counter[int]:
    """How many rollouts (each with its retries) every seed got, re-derived from the job's structure.

    Bootstrap seeds once; validation seeds by the baseline and by each promoted candidate; test seeds by the
    best and (if different) the baseline; an online seed by the baseline once per iteration that used its
    block, and by every trial on that block, except that a healthy seed is cached, so a trial of the
    baseline itself does not re-run it. A failed seed is never cached, so it is retried by every evaluation:
    the first block's failed seeds once more by the baseline, which ran that block during the proposal
    round and tries them again when iteration 0 starts.
    """
    m = config.mipro
    base_hash = next(c.candidate_hash for c in result.attempted_candidates if c.key == BASELINE_KEY)
    n: Counter[int] = Counter()
    n.update(m.bootstrap_train_seeds)
    for seed in m.val_seeds:
        n[seed] += 1 + len(result.validations)
    for seed in m.test_pool:
        n[seed] += 1 if result.best.choice.key == BASELINE_KEY else 2
    blocks = {t.iteration: tuple(t.seeds) for t in result.trials}
    for block in blocks.values():
        n.update(block)
    n.update(s for s in blocks.get(0, ()) if s in failing)
    for trial in result.trials:
        n.update(s for s in trial.seeds if s in failing or trial.candidate_hash != base_hash)
    return n


# ---- 1a. task-app faults -------------------------------------------------------------------------------


async def test_task_app_faults_are_counted_exactly_retried_and_never_scored(
    temporal_env: WorkflowEnvironment,
    simllm: BackgroundServer,
    banking77_data: Banking77Data,
    task_queue: str,
) -> None:
    retries = 1
    probe = job_config("http://unused", simllm.url, SMALL_JOB)
    m = probe.mipro
    blocks = minibatch_blocks(m.online_pool, m.batch_size, m.seed)
    kinds = {  # error kind -> seeds injected with it, spread over every pool the job evaluates
        "http_5xx": {*blocks[0][:2], blocks[2][0], *m.test_pool[:3]},
        "timeout": {blocks[1][0], m.test_pool[3]},
        "connection": {blocks[0][2], *blocks[3][:2], *m.val_seeds[:2]},
        "bad_json": {*m.bootstrap_train_seeds[:3], *blocks[1][1:3], m.val_seeds[2]},
    }
    failing = set().union(*kinds.values())
    app = create_banking77(
        banking77_data,
        api_key=TASK_APP_KEY,
        fail_seeds=kinds["http_5xx"],
        hang_seeds=kinds["timeout"],
        close_seeds=kinds["connection"],
        garbage_seeds=kinds["bad_json"],
    )
    with BackgroundServer(app) as server:
        # No workflow-level re-runs: this counts the activity layer's retries exactly (re-runs: test_outages).
        overrides = [
            *SMALL_JOB,
            f"mipro.rollout_retries={retries}",
            "mipro.rollout_timeout_seconds=2",
            "mipro.rerun_delays_seconds=[]",
        ]
        config = job_config(server.url, simllm.url, overrides)
        client = temporal_env.client
        async with running_worker(client, WorkerOptions(task_queue=task_queue)):
            handle = await jobs.start_job(client, config, task_queue=task_queue)
            result = await handle.result()
        stats = app.state.stats
        expected = evaluations_per_seed(result, config, failing)
        hung = sum(expected[s] for s in kinds["timeout"]) * (retries + 1)

        async def all_hangs_abandoned() -> bool:
            return stats.cancelled == hung

        await until(all_hangs_abandoned, "the task app to see every hung rollout abandoned by its client")

    assert result.status == "succeeded" and result.total_trials == 12
    assert result.errors_by_kind == {k: sum(expected[s] for s in seeds) for k, seeds in kinds.items()}
    assert result.rollout_errors == sum(expected[s] for s in failing)
    attempts = {s: n * (retries + 1 if s in failing else 1) for s, n in expected.items()}
    assert stats.attempts_by_seed == attempts, "retries+1 requests per failed rollout, 1 per healthy one"
    assert stats.injected == {
        knob: sum(attempts[s] for s in kinds[kind])
        for knob, kind in (
            ("fail", "http_5xx"),
            ("hang", "timeout"),
            ("close", "connection"),
            ("garbage", "bad_json"),
        )
    }
    assert stats.failed == sum(attempts[s] for s in failing) - hung
    for trial in result.trials:  # a failed seed never gets a score, in a trial or as the paired baseline
        bad = len(failing & set(trial.seeds))
        assert (trial.errors, trial.n) == (bad, len(trial.seeds) - bad), trial
    tried: dict[str, set[int]] = {}
    for trial in result.trials:
        tried.setdefault(trial.choice.key, set()).update(trial.seeds)
    online = set().union(*tried.values())
    for candidate in result.attempted_candidates:
        seeds = online if candidate.key == BASELINE_KEY else tried[candidate.key]
        assert candidate.minibatch_n == len(seeds - failing), candidate.key
    assert result.best_test_score is not None and result.baseline_validation_score is not None


# ---- 1b. LLM upstream faults ---------------------------------------------------------------------------


class UpstreamLedger:
    """ASGI middleware recording, for every chat completion, a digest of the request and what was answered:
    ok, 429, 500 or malformed (a 200 whose body is not a completion)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls: list[tuple[str, str]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/chat/completions"):
            await self.app(scope, receive, send)
            return
        request, response, status = bytearray(), bytearray(), 0

        async def recv() -> dict[str, Any]:
            message = await receive()
            request.extend(message.get("body", b""))
            return message

        async def snd(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            else:
                response.extend(message.get("body", b""))
            await send(message)

        await self.app(scope, recv, snd)
        if status != 200:
            outcome = str(status)
        else:
            try:
                outcome = "ok" if json.loads(response)["choices"][0]["message"] else "malformed"
            except (ValueError, KeyError, IndexError, TypeError):
                outcome = "malformed"
        self.calls.append((hashlib.sha256(request).hexdigest(), outcome))


async def test_llm_faults_are_absorbed_by_the_interceptor_retries(
    temporal_env: WorkflowEnvironment,
    simllm: BackgroundServer,
    banking77_data: Banking77Data,
    task_queue: str,
    reference_result: OptimizationResult,
) -> None:
    """10% each of 429 (Retry-After: 1), 500 and malformed bodies at the policy's upstream.

    The interceptor makes up to 4 attempts per call; a call that still fails is a failed rollout attempt
    (the task app answers 502), retried by the activity. Faults are chosen per (request, attempt), so the run
    is deterministic.
    """
    faulty = SimLLMSettings(rate_429=0.1, retry_after_s=1.0, rate_500=0.1, rate_malformed=0.1)
    ledger = UpstreamLedger(create_simllm(faulty))
    app = create_banking77(banking77_data, api_key=TASK_APP_KEY)
    with BackgroundServer(ledger) as policy_llm, BackgroundServer(app) as server:
        overrides = [*SMALL_JOB, f'policy.inference_url="{policy_llm.url}/v1"']  # the meta-model: fault-free
        config = job_config(server.url, simllm.url, overrides)
        client = temporal_env.client
        async with running_worker(client, WorkerOptions(task_queue=task_queue)):
            handle = await jobs.start_job(client, config, task_queue=task_queue)
            result = await handle.result()
        calls, stats = list(ledger.calls), app.state.stats

    injected = Counter(outcome for _, outcome in calls if outcome != "ok")
    assert set(injected) == {"429", "500", "malformed"} and injected.total() > 100, injected
    assert result.status == "succeeded"
    assert set(result.errors_by_kind) <= {"llm_error", "http_5xx"}, result.errors_by_kind
    assert result.rollout_errors * 20 <= injected.total(), "retries absorb nearly every injected fault"

    by_request: dict[str, list[str]] = {}
    for digest, outcome in calls:
        by_request.setdefault(digest, []).append(outcome)
    gave_up = 0  # interceptor calls that failed: 4 faults in a row (a call ends at its first answer)
    for outcomes in by_request.values():
        assert outcomes[-1] == "ok", f"a faulted request was sent again until answered: {outcomes}"
        streak = 0
        for outcome in outcomes:
            streak = 0 if outcome == "ok" else streak + 1
            if streak == 4:
                gave_up, streak = gave_up + 1, 0
    assert gave_up > 0, "some calls exhausted the interceptor's attempts (else this test proves less)"
    assert stats.failed == gave_up, (
        "each exhausted call failed exactly one rollout attempt: 4 attempts a call"
    )
    assert sum(stats.attempts_by_seed.values()) == result.total_rollouts + gave_up, "and it was retried once"

    # Every fault was absorbed, and a failed attempt costs nothing and changes nothing: the same job as the
    # fault-free reference, to the token and the cent.
    assert result.rollout_errors == 0
    assert comparable(result) == comparable(reference_result)


@pytest.mark.slow  # minutes: CI skips it (pytest -m slow)
async def test_more_rollouts_in_flight_change_nothing(
    temporal_env: WorkflowEnvironment,
    simllm: BackgroundServer,
    task_app: BackgroundServer,
    task_queue: str,
    reference_result: OptimizationResult,
) -> None:
    """`max_concurrent` is throughput, not semantics: 21 rollouts in flight per evaluation instead of 5, on
    an LLM that takes 100 ms to answer (so calls overlap, as with any real model), give the same job, and the
    budget guard refuses nothing in a job that spends ~2% of its budget."""
    with BackgroundServer(create_simllm(SimLLMSettings(latency_ms=100))) as slow_llm:
        overrides = [*SMALL_JOB, f'policy.inference_url="{slow_llm.url}/v1"', "mipro.max_concurrent=64"]
        config = job_config(task_app.url, simllm.url, overrides)
        client = temporal_env.client
        async with running_worker(client, WorkerOptions(task_queue=task_queue)):
            result = await (await jobs.start_job(client, config, task_queue=task_queue)).result()

    assert (result.stop_reason, result.errors_by_kind) == (None, {}), "no rollout refused, no early stop"
    assert comparable(result) == comparable(reference_result)


# ---- 1c. graceful shutdown -----------------------------------------------------------------------------


async def test_sigterm_mid_rollout_finishes_the_work_and_exits_0(
    temporal_env: WorkflowEnvironment,
    simllm: BackgroundServer,
    banking77_data: Banking77Data,
    task_queue: str,
    reference_result: OptimizationResult,
) -> None:
    app = create_banking77(banking77_data, api_key=TASK_APP_KEY)
    gate = Gate(app, "/rollout", rollout_label)
    gate.close("trial-0003")  # the first trial of iteration 1
    client = temporal_env.client
    workers = WorkerProcesses(client, task_queue)
    with BackgroundServer(gate) as server:
        try:
            stopping = await workers.start()
            handle = await jobs.start_job(
                client, job_config(server.url, simllm.url, SMALL_JOB), task_queue=task_queue
            )

            async def trial_in_flight() -> bool:
                return gate.held("trial-0003") > 0

            await until(trial_in_flight, "a rollout of trial 3 in flight")
            in_flight = await until(
                progress_where(client, handle.id, lambda p: p.evaluations_in_flight > 0),
                "in-flight evaluations",
            )
            stopping.send_signal(signal.SIGTERM)
            gate.open("trial-0003")  # the stopping worker may finish what it holds
            code = await asyncio.to_thread(stopping.wait, 60)
            assert code == 0, f"a SIGTERMed worker exits 0 after finishing its work, got {code}"
            async with running_worker(client, WorkerOptions(task_queue=task_queue)):
                result = await handle.result()
                trials = await trial_numbers(handle)
        finally:
            workers.cleanup()
        stats = app.state.stats

    assert in_flight.phase == "search" and in_flight.trials_done >= 2
    assert result.status == "succeeded"
    assert result.errors_by_kind == {}, (
        "rollouts in flight at SIGTERM failed: the worker's interceptor stopped serving before the Temporal "
        f"worker finished its activities ({result.errors_by_kind})"
    )
    assert trials == list(range(result.total_trials)), "each trial recorded exactly once, in order"
    assert comparable(result) == comparable(reference_result)
    assert sum(stats.attempts_by_seed.values()) == result.total_rollouts, (
        "no rollout ran twice: the in-flight evaluation finished on the stopping worker, not on its successor"
    )


# ---- 1d. SIGKILL at every kind of point ----------------------------------------------------------------


@pytest.mark.slow  # minutes: CI skips it (pytest -m slow)
async def test_sigkill_at_bootstrap_mid_search_after_promotion_and_in_final_eval(
    temporal_env: WorkflowEnvironment,
    simllm: BackgroundServer,
    banking77_data: Banking77Data,
    task_queue: str,
    reference_result: OptimizationResult,
) -> None:
    """One job, one worker subprocess after another, each SIGKILLed at its point:

    bootstrap (its rollouts held at the task app), mid-search (the trials of the last iteration held),
    just after a promotion (the first `mipro.fulleval.complete` event seen), final evaluation (test rollouts
    held). Gates hold the work so each kill lands while it is in flight; the promotion kill is whenever the
    event shows up (before or after the mid-search kill, as the search goes).
    """
    last_iteration = [f"trial-{t:04d}" for t in range(9, 12)]
    app = create_banking77(banking77_data, api_key=TASK_APP_KEY)
    gate = Gate(app, "/rollout", rollout_label)
    gate.close("bootstrap", *last_iteration, "test-")
    client = temporal_env.client
    workers = WorkerProcesses(client, task_queue)
    killed: list[tuple[str, Progress]] = []
    held_at_last_kill = 0  # held rollouts of the last iteration's first trial: mid-search needs new ones

    async def kill(point: str, progress: Progress, *release: str) -> None:
        workers.sigkill()
        killed.append((point, progress))
        gate.open(*release)
        nonlocal held_at_last_kill
        held_at_last_kill = gate.held(last_iteration[0])
        await workers.start()

    with BackgroundServer(gate) as server:
        try:
            await workers.start()
            handle = await jobs.start_job(
                client, job_config(server.url, simllm.url, SMALL_JOB), task_queue=task_queue
            )
            job = handle.id

            async def held(prefix: str) -> bool:
                return gate.held(prefix) > 0

            async def promoted() -> Progress | None:
                events = await handle.query(MiproWorkflow.events, EventsQuery(limit=5000))
                done = any(e.type == "mipro.fulleval.complete" for e in events)
                return await jobs.progress(client, job) if done else None

            await until(lambda: held("bootstrap"), "bootstrap rollouts in flight")
            at = await until(progress_where(client, job, lambda p: p.evaluations_in_flight > 0), "bootstrap")
            assert at.phase == "bootstrap"
            await kill("bootstrap", at, "bootstrap")

            pending = {"mid-search", "promotion"}
            while pending:  # whichever comes first: the last iteration's trials held, or a promotion seen

                async def next_point() -> tuple[str, Progress] | None:
                    if "promotion" in pending and (p := await promoted()):
                        return "promotion", p
                    if "mid-search" in pending and gate.held(last_iteration[0]) > held_at_last_kill:
                        p = await jobs.progress(client, job)
                        return ("mid-search", p) if p.evaluations_in_flight > 0 else None
                    return None

                point, at = await until(next_point, f"one of {sorted(pending)}")
                await kill(point, at, *(last_iteration if point == "mid-search" else ()))
                pending.discard(point)

            await until(lambda: held("test-"), "final evaluation rollouts in flight")
            at = await until(progress_where(client, job, lambda p: p.evaluations_in_flight > 0), "final eval")
            await kill("final_eval", at, "test-")

            result = await asyncio.wait_for(handle.result(), timeout=120)
            trials = await trial_numbers(handle)
        finally:
            workers.cleanup()

    points = {point: progress for point, progress in killed}
    assert sorted(points) == ["bootstrap", "final_eval", "mid-search", "promotion"]
    assert points["mid-search"].phase == "search" and points["mid-search"].trials_done >= 2
    assert points["final_eval"].phase == "final_eval"
    assert result.status == "succeeded"
    assert trials == list(range(result.total_trials)), "each trial recorded exactly once, in order"
    assert comparable(result) == comparable(reference_result)


@pytest.mark.slow  # minutes: CI skips it (pytest -m slow)
async def test_sigkill_during_proposal_recovers_promptly(
    temporal_env: WorkflowEnvironment,
    simllm: BackgroundServer,
    task_app: BackgroundServer,
    task_queue: str,
    reference_result: OptimizationResult,
) -> None:
    """SIGKILL while the meta-model call of the proposal is in flight (held at the meta-model's server).

    The job must resume about as fast as after a kill mid-rollout (heartbeat timeout, then a retry on the
    new worker), not after the proposal activity's full heartbeat timeout."""
    meta = Gate(create_simllm(SimLLMSettings()), "/chat/completions", llm_model)
    meta.close("sim-meta")
    client = temporal_env.client
    workers = WorkerProcesses(client, task_queue)
    with BackgroundServer(meta) as meta_llm:
        overrides = [*SMALL_JOB, f'mipro.meta.inference_url="{meta_llm.url}/v1"']
        config = job_config(task_app.url, simllm.url, overrides)
        handle = None
        try:
            await workers.start()
            handle = await jobs.start_job(client, config, task_queue=task_queue)

            async def meta_call_held() -> bool:
                return meta.held("sim-meta") > 0

            await until(meta_call_held, "a meta-model call in flight")
            at = await jobs.progress(client, handle.id)
            assert at.phase == "proposal" and at.evaluations_in_flight == 0
            workers.sigkill()
            meta.open("sim-meta")
            await workers.start()
            try:
                await until(
                    progress_where(client, handle.id, lambda p: p.phase != "proposal"),
                    "the proposal to be retried on the new worker",
                    attempts=900,  # 45 s: a rollout activity is retried within ~10 s of its worker's death
                )
            except AssertionError:
                history = await handle.fetch_history()
                timeouts = {
                    e.activity_task_scheduled_event_attributes.activity_type.name: (
                        e.activity_task_scheduled_event_attributes.heartbeat_timeout.ToSeconds()
                    )
                    for e in history.events
                    if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                }
                raise AssertionError(
                    "the job is stuck in proposal after its worker was killed: the proposal activity is "
                    f"retried only after its heartbeat timeout (seconds, by activity: {timeouts})"
                ) from None
            result = await asyncio.wait_for(handle.result(), timeout=120)
            trials = await trial_numbers(handle)
        finally:
            workers.cleanup()
            if handle is not None:
                with suppress(RPCError):
                    await handle.terminate("test over")

    assert result.status == "succeeded"
    assert trials == list(range(result.total_trials))
    assert comparable(result) == comparable(reference_result)


# ---- 1e. Temporal dev server restart -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DevServer:
    """A Temporal dev server on a SQLite file, stopped with SIGTERM and started again on the same file and
    port."""

    def __init__(self, db_file: Path, log: Path, namespace: str | None = None) -> None:
        self.db_file, self.log, self.namespace = db_file, log, namespace
        self.port, self.ui_port = free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        command = [*dev_server_command(self.port, self.ui_port, self.db_file), "--headless"]
        if self.namespace:
            command += ["--namespace", self.namespace]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=out)
        proc = self.proc

        async def listening() -> bool:
            assert proc.poll() is None, f"the dev server exited: {self.log.read_text()[-2000:]}"
            return port_open("127.0.0.1", self.port)

        await until(listening, "the dev server to listen")

    async def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                await asyncio.to_thread(self.proc.wait, 30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.mark.slow  # minutes: CI skips it (pytest -m slow)
async def test_dev_server_restart_mid_job_changes_nothing(
    simllm: BackgroundServer,
    task_app: BackgroundServer,
    task_queue: str,
    reference_result: OptimizationResult,
    tmp_path: Path,
) -> None:
    """SIGTERM the dev server once two trials are recorded, start it again on the same SQLite file and port:
    the worker and the client reconnect by themselves and the job completes as if nothing happened."""
    server = DevServer(tmp_path / "t.db", tmp_path / "temporal.log")
    config = job_config(task_app.url, simllm.url, SMALL_JOB)
    await server.start()
    try:
        client = await Client.connect(server.address, data_converter=pydantic_data_converter)
        async with running_worker(
            client, WorkerOptions(task_queue=task_queue, sticky_queue_timeout_seconds=1)
        ):
            handle = await jobs.start_job(client, config, task_queue=task_queue)
            before = await until(
                progress_where(client, handle.id, lambda p: p.trials_done >= 2),
                "two trials before the restart",
            )
            assert await server.stop() is not None
            await server.start()

            async def served_again() -> Progress:
                return await jobs.progress(client, handle.id)

            after = await until(
                served_again, "the restarted server to answer a query again (the worker reconnected)"
            )
            result = await asyncio.wait_for(handle.result(), timeout=120)
            trials = await trial_numbers(handle)
    finally:
        await server.stop()

    assert after.trials_done >= before.trials_done, "nothing recorded before the restart was lost"
    assert result.status == "succeeded"
    assert trials == list(range(result.total_trials)), "each trial recorded exactly once, in order"
    assert comparable(result) == comparable(reference_result)


async def test_the_worker_wide_rollout_cap_holds_over_concurrent_jobs(
    temporal_env: WorkflowEnvironment,
    simllm: BackgroundServer,
    banking77_data: Banking77Data,
    task_queue: str,
    reference_result: OptimizationResult,
) -> None:
    """Two jobs that each allow 64 rollouts in flight, on a worker capped at 4: the task app never serves
    more than 4 at once, and both jobs still give the reference result (the cap is throughput only)."""
    cap = 4
    app = create_banking77(banking77_data, api_key=TASK_APP_KEY)
    with (
        BackgroundServer(app) as capped_app,
        BackgroundServer(create_simllm(SimLLMSettings(latency_ms=20))) as slow_llm,
    ):
        overrides = [*SMALL_JOB, f'policy.inference_url="{slow_llm.url}/v1"', "mipro.max_concurrent=64"]
        config = job_config(capped_app.url, simllm.url, overrides)
        client = temporal_env.client
        options = WorkerOptions(task_queue=task_queue, max_concurrent_rollouts=cap)
        async with running_worker(client, options):
            handles = [await jobs.start_job(client, config, task_queue=task_queue) for _ in range(2)]
            results = await asyncio.gather(*(h.result() for h in handles))
        stats = app.state.stats

    assert stats.max_in_flight == cap, "the cap is reached (so it is what limits) and never passed"
    assert stats.in_flight == 0 and stats.completed == sum(r.total_rollouts for r in results)
    for result in results:
        assert comparable(result) == comparable(reference_result)
