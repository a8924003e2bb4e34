"""The worker process: a Temporal worker hosting MiproWorkflow and its activities, plus the interceptor.

The interceptor is an HTTP server inside this process; the evaluation activities register candidates in
this process's registry and hand the task app this process's interceptor URL. More workers, more
throughput: no shared registry is needed.

    python worker.py --address localhost:7233 --task-queue mipro
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import structlog
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from mipro.activities.proposals import ProposalActivities
from mipro.activities.resources import WorkerResources
from mipro.activities.search import suggest_candidates
from mipro.activities.task_app import TaskAppActivities
from mipro.activity_models import TASK_QUEUE
from mipro.interceptor.app import create_app
from mipro.interceptor.registry import Registry
from mipro.logging_setup import configure_logging
from mipro.process_exit import exit_now
from mipro.serving import LoopServer
from mipro.workflows.mipro_workflow import MiproWorkflow

log = structlog.get_logger("worker")
DEFAULT_TASK_APP_KEY_ENV = "ENVIRONMENT_API_KEY"
HEARTBEAT_THROTTLE = timedelta(seconds=2)


ROLES = ("workflows", "rollouts", "proposals")


@dataclass
class WorkerOptions:
    task_queue: str = TASK_QUEUE  # the workflows' queue (and the TPE suggestions')
    interceptor_host: str = "127.0.0.1"
    interceptor_port: int = 0
    interceptor_public_url: str | None = None  # when task apps reach this worker under another address
    max_concurrent_activities: int = 100
    max_concurrent_rollouts: int = 128  # over all jobs on this worker
    graceful_shutdown_seconds: float = 30.0
    sticky_queue_timeout_seconds: float = 10.0
    # What this process serves, and on which queues: a cluster splits workflows, rollouts (the task app)
    # and proposals (the meta-model) over workers of their own; None: the workflows' queue.
    serve: tuple[str, ...] = ROLES
    rollout_task_queue: str | None = None
    proposal_task_queue: str | None = None
    # Activities per second over all workers of each activity queue this process serves (Temporal's
    # max_task_queue_activities_per_second): for providers with a rate limit.
    max_activities_per_second: float | None = None


async def connect(address: str | None = None, namespace: str | None = None) -> Client:
    return await Client.connect(
        address or os.environ.get("TEMPORAL_ADDRESS", "localhost:7233"),
        namespace=namespace or os.environ.get("TEMPORAL_NAMESPACE", "default"),
        data_converter=pydantic_data_converter,
    )


def activities_by_queue(
    opts: WorkerOptions, task_app: TaskAppActivities, proposals: ProposalActivities
) -> dict[str, list[Callable[..., Any]]]:
    """The activities this process serves, by the task queue each is polled on."""
    plan: dict[str, list[Callable[..., Any]]] = {}
    if "workflows" in opts.serve:
        plan.setdefault(opts.task_queue, []).append(suggest_candidates)
    if "rollouts" in opts.serve:
        queue = opts.rollout_task_queue or opts.task_queue
        plan.setdefault(queue, []).extend(
            [
                task_app.check_task_app,
                task_app.gather_baseline_messages,
                task_app.evaluate_candidate,
                task_app.evaluate_candidates,
                task_app.pin_rollout_worker,
            ]
        )
        if own := task_app.res.own_rollout_queue:
            plan[own] = [task_app.evaluate_candidates]  # the batches a job pinned to this worker
    if "proposals" in opts.serve:
        plan.setdefault(opts.proposal_task_queue or opts.task_queue, []).append(
            proposals.propose_instructions
        )
    return plan


@asynccontextmanager
async def running_worker(client: Client, options: WorkerOptions | None = None) -> AsyncIterator[list[Worker]]:
    """Start the interceptor and this process's Temporal workers (one per task queue it serves); stop them
    (gracefully) on exit."""
    opts = options or WorkerOptions()
    registry = Registry()
    server = await LoopServer(create_app(registry), opts.interceptor_host, opts.interceptor_port).start()
    # Rollouts hold at most max_concurrent_rollouts connections; the rest serve health checks and proposals.
    connections = opts.max_concurrent_rollouts + 32
    http = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    )
    resources = WorkerResources(
        registry=registry,
        interceptor_url=_public_url(opts, server),
        http=http,
        rollout_slots=asyncio.Semaphore(opts.max_concurrent_rollouts),
        own_rollout_queue=own_rollout_queue(opts),
    )
    plan = activities_by_queue(opts, TaskAppActivities(resources), ProposalActivities(resources))
    workers = [_worker(client, opts, queue, activities) for queue, activities in plan.items()]
    tasks = [asyncio.create_task(worker.run()) for worker in workers]
    log.info(
        "worker_started",
        task_queues=list(plan),
        serve=list(opts.serve),
        interceptor=resources.interceptor_url,
    )
    try:
        yield workers
    finally:
        await asyncio.gather(*(w.shutdown() for w, t in zip(workers, tasks, strict=True) if not t.done()))
        await asyncio.gather(*tasks, return_exceptions=True)
        await http.aclose()
        await server.stop()


def own_rollout_queue(opts: WorkerOptions) -> str | None:
    """A queue only this process polls, beside the shared rollout queue (None: it serves no rollouts)."""
    if "rollouts" not in opts.serve:
        return None
    shared = opts.rollout_task_queue or opts.task_queue
    return f"{shared}@{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _worker(client: Client, opts: WorkerOptions, queue: str, activities: list[Callable[..., Any]]) -> Worker:
    hosts_workflows = "workflows" in opts.serve and queue == opts.task_queue
    only_workflow_side = hosts_workflows and activities == [suggest_candidates]
    return Worker(
        client,
        task_queue=queue,
        workflows=[MiproWorkflow] if hosts_workflows else [],
        activities=activities,
        max_concurrent_activities=opts.max_concurrent_activities,
        max_task_queue_activities_per_second=None if only_workflow_side else opts.max_activities_per_second,
        # Heartbeats reach the server every 2 s whatever an activity's heartbeat timeout, so a loaded server
        # or worker has most of that timeout as slack before a live activity is declared lost.
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        graceful_shutdown_timeout=timedelta(seconds=opts.graceful_shutdown_seconds),
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=opts.sticky_queue_timeout_seconds),
    )


def _public_url(opts: WorkerOptions, server: LoopServer) -> str:
    """The URL task apps are given: explicit, else this host's name when bound to all interfaces."""
    if opts.interceptor_public_url:
        return opts.interceptor_public_url.rstrip("/")
    if opts.interceptor_host == "0.0.0.0":
        return f"http://{socket.gethostname()}:{server.port}"
    return server.url


def missing_key_warning(environ: Mapping[str, str] | None = None) -> str | None:
    """What to say when the default task-app key variable is unset in this worker's environment."""
    env = os.environ if environ is None else environ
    if env.get(DEFAULT_TASK_APP_KEY_ENV):
        return None
    return (
        f"{DEFAULT_TASK_APP_KEY_ENV} is not set: this worker sends no key to the task apps of jobs whose "
        f"config names it (task_app_api_key_env, the default), and a task app that has a key refuses "
        f"them (TaskAppAuthError). Set it to the task app's key (`mipro stack` shares one with its worker)."
    )


async def serve(address: str | None, namespace: str | None, options: WorkerOptions) -> None:
    """Run until SIGINT/SIGTERM, then shut down gracefully (in-flight activities may finish)."""
    if warning := missing_key_warning():
        log.warning("task_app_key_missing", env_var=DEFAULT_TASK_APP_KEY_ENV)
        print(f"WARNING: {warning}", file=sys.stderr, flush=True)
    client = await connect(address, namespace)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running_worker(client, options):
        print("WORKER_READY", flush=True)
        await stop.wait()
        log.info("worker_stopping")


def roles(text: str) -> tuple[str, ...]:
    chosen = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [r for r in chosen if r not in ROLES]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"wants a comma-separated subset of {','.join(ROLES)}, got {text!r}")
    return chosen


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="mipro worker", description="MIPRO worker: Temporal worker + interceptor"
    )
    parser.add_argument("--address", default=None, help="Temporal address (env TEMPORAL_ADDRESS)")
    parser.add_argument("--namespace", default=None)
    parser.add_argument("--task-queue", default=TASK_QUEUE)
    parser.add_argument("--interceptor-host", default="127.0.0.1")
    parser.add_argument("--interceptor-port", type=int, default=0)
    parser.add_argument("--interceptor-public-url", default=None)
    parser.add_argument(
        "--max-activities",
        type=int,
        default=WorkerOptions.max_concurrent_activities,
        help="activities run at once by this worker (default %(default)s)",
    )
    parser.add_argument(
        "--max-rollouts",
        type=int,
        default=WorkerOptions.max_concurrent_rollouts,
        help="rollouts in flight over all jobs (default %(default)s)",
    )
    parser.add_argument(
        "--serve",
        type=roles,
        default=ROLES,
        help="what this worker serves, comma-separated from workflows,rollouts,proposals (default: all)",
    )
    parser.add_argument(
        "--rollout-task-queue",
        default=os.environ.get("MIPRO_ROLLOUT_TASK_QUEUE"),
        help="task queue of the rollouts (env MIPRO_ROLLOUT_TASK_QUEUE; default: --task-queue)",
    )
    parser.add_argument(
        "--proposal-task-queue",
        default=os.environ.get("MIPRO_PROPOSAL_TASK_QUEUE"),
        help="task queue of the proposals (env MIPRO_PROPOSAL_TASK_QUEUE; default: --task-queue)",
    )
    parser.add_argument(
        "--max-activities-per-second",
        type=float,
        default=None,
        help="rate limit of each activity queue served, over all its workers (for rate-limited providers)",
    )
    parser.add_argument("--sticky-timeout", type=float, default=10.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    configure_logging()
    options = WorkerOptions(
        task_queue=args.task_queue,
        interceptor_host=args.interceptor_host,
        interceptor_port=args.interceptor_port,
        interceptor_public_url=args.interceptor_public_url,
        sticky_queue_timeout_seconds=args.sticky_timeout,
        max_concurrent_activities=args.max_activities,
        max_concurrent_rollouts=args.max_rollouts,
        serve=args.serve,
        rollout_task_queue=args.rollout_task_queue,
        proposal_task_queue=args.proposal_task_queue,
        max_activities_per_second=args.max_activities_per_second,
    )
    asyncio.run(serve(args.address, args.namespace, options))
    if argv is None:  # run as the program (`python worker.py`): no interpreter finalization (see exit_now)
        exit_now(0)


if __name__ == "__main__":
    main()
