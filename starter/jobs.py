"""Client-side job operations shared by the CLI (and later the REST API): start, progress, result."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import structlog
from pydantic import BaseModel
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from mipro import search_attributes as sa
from mipro.activity_models import TASK_QUEUE
from mipro.config import JobConfig
from mipro.job_models import ActivityQueues, Event, EventsQuery, MiproJobInput, OptimizationResult, Progress
from mipro.workflows.mipro_workflow import MiproWorkflow

UI_BASE = "http://localhost:8233"  # the dev server's UI on its default ports
UI_URL_ENV = "MIPRO_TEMPORAL_UI_URL"  # the Temporal UI's base URL, when it is not where ui_base looks
log = structlog.get_logger("jobs")
T = TypeVar("T")
# Statuses a long-lived connection can return for one call when the server rotates it (Temporal's frontend
# sends GOAWAY after its max connection age); calling again goes over a fresh connection.
TRANSIENT_RPC_STATUSES = {RPCStatusCode.CANCELLED, RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED}


def new_job_id() -> str:
    return f"pl_{secrets.token_hex(8)}"


def ui_base(address: str | None = None) -> str:
    """The Temporal UI of the server at `address` (default $TEMPORAL_ADDRESS or localhost:7233).

    $MIPRO_TEMPORAL_UI_URL when set; Temporal Cloud's UI for a `*.tmprl.cloud` address; else the UI port
    recorded by the dev server `mipro server` / `mipro stack` / `mipro demo` started on that port (from
    this state dir, `.mipro` or $MIPRO_HOME); else the dev server's own default, its port + 1000.
    """
    from mipro.starter.stack import recorded_ui_port

    if configured := os.environ.get(UI_URL_ENV, "").strip():
        return configured.rstrip("/")
    address = address or os.environ.get("TEMPORAL_ADDRESS") or "localhost:7233"
    host, _, port_text = address.rpartition(":") if ":" in address else (address, "", "7233")
    host = host or "localhost"
    if host.endswith(".tmprl.cloud"):
        return "https://cloud.temporal.io"
    try:
        port = int(port_text)
    except ValueError:
        return UI_BASE
    return f"http://{host}:{recorded_ui_port(port) or port + 1000}"


def ui_link(job_id: str, namespace: str = "default", base: str | None = None) -> str:
    """The job's page in the Temporal UI (`base` default: the UI of $TEMPORAL_ADDRESS's server)."""
    return f"{base or ui_base()}/namespaces/{namespace}/workflows/{job_id}"


async def search_attributes_registered(client: Client) -> bool:
    """Whether MIPRO's search attributes exist on the namespace; missing ones are registered if allowed."""
    response = await call_with_retries(
        lambda: client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace), retry=True
        )
    )
    missing = {
        key.name: key.indexed_value_type for key in sa.ALL if key.name not in response.custom_attributes
    }
    if not missing:
        return True
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )
    except RPCError as exc:
        log.warning("search_attributes_not_registered", missing=sorted(missing), error=exc.message)
        return False
    return True


async def call_with_retries(call: Callable[[], Awaitable[T]], attempts: int = 5) -> T:
    """A raw service call retried on transient statuses (the SDK's own calls do this internally)."""
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except RPCError as exc:
            if exc.status not in TRANSIENT_RPC_STATUSES or attempt == attempts:
                raise
            log.info("rpc_retry", status=exc.status.name, attempt=attempt)
            await asyncio.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")


def static_details(config: JobConfig) -> str:
    """Markdown shown on the job's page in the Temporal UI."""
    m = config.mipro
    return (
        f"**task app** {config.task_app_url} ({config.task_app_id or m.env_name})  \n"
        f"**policy** {config.policy.model} ({config.policy.provider}) · **meta** {m.meta.model}  \n"
        f"**search** {m.num_iterations} iterations x {m.num_evaluations_per_iteration} trials, "
        f"batch {m.batch_size}, seed {m.seed}  \n"
        f"**pools** bootstrap {len(m.bootstrap_train_seeds)}, online {len(m.online_pool)}, "
        f"validation {len(m.val_seeds)}, test {len(m.test_pool)}"
    )


async def start_job(
    client: Client,
    config: JobConfig,
    job_id: str | None = None,
    org: str = "default",
    task_queue: str = TASK_QUEUE,
    auto_start: bool = True,
    memo: dict[str, Any] | None = None,
    search_attributes_ready: bool | None = None,
    task_queues: ActivityQueues | None = None,
) -> WorkflowHandle[MiproWorkflow, OptimizationResult]:
    """Start a job's workflow. `auto_start=False` creates it waiting for the `start` update.

    `task_queues` sends the job's rollouts and proposals to task queues of their own (default: from env
    MIPRO_ROLLOUT_TASK_QUEUE and MIPRO_PROPOSAL_TASK_QUEUE, else the workflow's queue).

    `search_attributes_ready` skips the namespace check when the caller already made it (the REST API does
    once at startup).
    """
    job_id = job_id or new_job_id()
    upsert = search_attributes_ready
    if upsert is None:
        upsert = await search_attributes_registered(client)
    if not upsert:
        log.warning(
            "search_attributes_missing",
            namespace=client.namespace,
            fix="start the server with `mipro server`, or register them (README, Temporal UI)",
        )
    status = "running" if auto_start else "created"
    initial = (
        TypedSearchAttributes([SearchAttributePair(sa.STATUS, status), SearchAttributePair(sa.ORG, org)])
        if upsert
        else None
    )
    summary = (
        f"MIPRO {config.task_app_id or config.mipro.env_name} @ {config.task_app_url} ({config.policy.model})"
    )
    await client.start_workflow(
        MiproWorkflow.run,
        MiproJobInput(
            job_id=job_id,
            org=org,
            config=config,
            upsert_search_attributes=upsert,
            auto_start=auto_start,
            task_queues=task_queues or activity_queues_from_env(),
        ),
        id=job_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        static_summary=summary[:200],
        static_details=static_details(config),
        search_attributes=initial,
        memo=memo,
    )
    # A handle without a run id targets the latest run, so updates and queries reach the job after it
    # continued as new.
    return handle(client, job_id)


def activity_queues_from_env() -> ActivityQueues:
    return ActivityQueues(
        rollouts=os.environ.get("MIPRO_ROLLOUT_TASK_QUEUE") or None,
        proposals=os.environ.get("MIPRO_PROPOSAL_TASK_QUEUE") or None,
    )


def handle(client: Client, job_id: str) -> WorkflowHandle[MiproWorkflow, OptimizationResult]:
    return client.get_workflow_handle_for(MiproWorkflow.run, job_id)


async def progress(client: Client, job_id: str) -> Progress:
    return await handle(client, job_id).query(MiproWorkflow.progress)


async def result(client: Client, job_id: str) -> OptimizationResult:
    return await handle(client, job_id).result()


class JobRow(BaseModel):
    job_id: str
    temporal_status: str
    status: str  # the job's true status (effective_status): never running for a closed workflow
    org: str | None
    best_score: float | None
    trials: int | None
    spend_usd: float | None
    started_at: datetime | None
    data_source: str | None = None  # which data the task app said it serves (the job's memo), if known


# Visibility queries per job status, as effective_status derives it: a closed workflow's Temporal status
# decides, since a workflow that failed, was terminated or timed out cannot update its MiproStatus.
STATUS_QUERIES = {
    "created": "ExecutionStatus = 'Running' AND MiproStatus = 'created'",
    "running": "ExecutionStatus = 'Running' AND MiproStatus = 'running'",
    "paused": "ExecutionStatus = 'Running' AND MiproStatus = 'paused'",
    "succeeded": "ExecutionStatus = 'Completed' AND MiproStatus = 'succeeded'",
    "stopped_on_errors": "ExecutionStatus = 'Completed' AND MiproStatus = 'stopped_on_errors'",
    "cancelled": (
        "(ExecutionStatus = 'Canceled' OR (ExecutionStatus = 'Completed' AND MiproStatus = 'cancelled'))"
    ),
    "failed": "ExecutionStatus = 'Failed'",
    "terminated": "ExecutionStatus = 'Terminated'",
    "timed_out": "ExecutionStatus = 'TimedOut'",
}


async def list_jobs(client: Client, status: str | None = None, limit: int = 50) -> list[JobRow]:
    """Jobs from Temporal visibility, newest first (one row per job: runs that continued as new are left
    out), optionally filtered by the job's status (STATUS_QUERIES)."""
    query = "WorkflowType = 'MiproWorkflow' AND ExecutionStatus != 'ContinuedAsNew'"
    if status:
        query += f" AND {STATUS_QUERIES[status]}"
    rows: list[JobRow] = []
    async for wf in client.list_workflows(query, limit=limit):
        attrs = wf.typed_search_attributes
        source = (await wf.memo()).get("task_app_data_source")
        rows.append(
            JobRow(
                job_id=wf.id,
                temporal_status=wf.status.name if wf.status else "UNKNOWN",
                status=status_of(wf),
                org=attrs.get(sa.ORG),
                best_score=attrs.get(sa.BEST_SCORE),
                trials=attrs.get(sa.TRIALS),
                spend_usd=attrs.get(sa.SPEND_USD),
                started_at=wf.start_time,
                data_source=source if isinstance(source, str) else None,
            )
        )
    return rows


class JobNotFound(Exception):
    """No MIPRO job has this id in the client's namespace."""

    def __init__(self, job_id: str, detail: str = "") -> None:
        super().__init__(f"no job {job_id}" + (f" ({detail})" if detail else ""))
        self.job_id = job_id


class JobFailure(BaseModel):
    """Why a job failed: its ApplicationError's type (e.g. TaskAppHealthCheckFailed) and message."""

    type: str
    message: str


def failure_of(exc: WorkflowFailureError) -> JobFailure:
    """The failure a failed workflow's result raised, as a type and a message (the type said once)."""
    cause = exc.cause
    if isinstance(cause, ApplicationError):
        kind = cause.type or "ApplicationError"
        message = cause.message
        while message.startswith(f"{kind}: "):  # activity errors re-raised by the workflow carry their type
            message = message[len(kind) + 2 :]
        return JobFailure(type=kind, message=message)
    if cause is not None:
        return JobFailure(type=type(cause).__name__, message=str(cause))
    return JobFailure(type="WorkflowFailure", message=str(exc))


async def failure(client: Client, job_id: str, rpc_timeout: timedelta | None = None) -> JobFailure | None:
    """The failure of a closed job, or None when it did not fail (or Temporal did not answer)."""
    try:
        await handle(client, job_id).result(rpc_timeout=rpc_timeout)
    except WorkflowFailureError as exc:
        return failure_of(exc)
    except RPCError:
        return None
    return None


async def describe(client: Client, job_id: str) -> WorkflowExecutionDescription:
    """The job's latest run; JobNotFound when there is no such job."""
    try:
        desc = await handle(client, job_id).describe()
    except RPCError as exc:
        if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            raise JobNotFound(job_id) from None
        raise
    if desc.workflow_type != "MiproWorkflow":
        raise JobNotFound(job_id, f"workflow {job_id} is a {desc.workflow_type}")
    return desc


class PauseClock:
    """Time spent paused, from the job's `mipro.job.paused` / `mipro.job.resumed` events.

    Fed incrementally (`since` is the last event seen). A job keeps its newest 1,000 events, so pauses
    older than those are not counted.
    """

    def __init__(self) -> None:
        self.since = 0
        self.paused_total = 0.0
        self.paused_at: datetime | None = None

    def feed(self, events: list[Event]) -> None:
        for event in events:
            self.since = max(self.since, event.seq)
            if event.type == "mipro.job.paused" and self.paused_at is None:
                self.paused_at = event.created_at
            elif event.type == "mipro.job.resumed" and self.paused_at is not None:
                self.paused_total += (event.created_at - self.paused_at).total_seconds()
                self.paused_at = None

    def paused_seconds(self, now: datetime) -> float:
        open_pause = (now - self.paused_at).total_seconds() if self.paused_at else 0.0
        return self.paused_total + max(0.0, open_pause)


class JobSnapshot(BaseModel):
    """What a job really is now: Temporal's word on whether it ended, and the workflow's progress."""

    job_id: str
    status: str  # effective_status
    temporal_status: str
    closed: bool
    progress: Progress | None  # None when no worker answered the query
    error: JobFailure | None = None  # a failed job's error
    elapsed_seconds: float = 0.0  # since the job started, by the clock (to its close when closed)
    paused_seconds: float = 0.0
    eta_seconds: float | None = None  # from the active (unpaused) time per trial; frozen while paused
    query_error: str | None = None  # why the progress query failed

    @property
    def paused(self) -> bool:
        return self.status == "paused"

    def as_json(self) -> dict[str, Any]:
        """The progress fields, with the job's status, error and clock-based elapsed time and ETA."""
        body: dict[str, Any] = self.progress.model_dump(mode="json") if self.progress else {}
        body.update(
            job_id=self.job_id,
            status=self.status,
            temporal_status=self.temporal_status,
            error=self.error.model_dump() if self.error else None,
            elapsed_seconds=round(self.elapsed_seconds, 3),
            paused_seconds=round(self.paused_seconds, 3),
            eta_seconds=None if self.eta_seconds is None else round(self.eta_seconds, 3),
        )
        if self.query_error:
            body["query_error"] = self.query_error
        return body


QUERY_TIMEOUT = timedelta(seconds=10)


async def snapshot(
    client: Client, job_id: str, clock: PauseClock | None = None, now: datetime | None = None
) -> JobSnapshot:
    """Describe the job (JobNotFound if there is none), query its progress and, if it failed, its error.

    `clock` carries the pause history between calls (watch); without one, the events are read once.
    """
    desc = await describe(client, job_id)
    status = status_of(desc)
    closed = is_closed(desc.status)
    job = handle(client, job_id)
    progress, query_error = None, None
    try:
        progress = await job.query(MiproWorkflow.progress, rpc_timeout=QUERY_TIMEOUT)
    except RPCError as exc:
        query_error = exc.message
        if exc.status == RPCStatusCode.DEADLINE_EXCEEDED:
            query_error = (
                f"no worker answered within 10 s: is `mipro worker` running on queue {desc.task_queue}?"
            )
    except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as exc:
        query_error = f"the job could not answer: {exc}"
    snap = JobSnapshot(
        job_id=job_id,
        status=status,
        temporal_status=desc.status.name if desc.status else "UNKNOWN",
        closed=closed,
        progress=progress,
        query_error=query_error,
    )
    if status == "failed":
        snap.error = await failure(client, job_id, rpc_timeout=QUERY_TIMEOUT)
    elif (
        desc.status == WorkflowExecutionStatus.COMPLETED
        and desc.typed_search_attributes.get(sa.STATUS) is None
    ):
        snap.status = await completed_status(client, job_id)  # it upserted no MiproStatus: ask the result
    if progress is None or progress.started_at is None:
        return snap
    clock = clock or PauseClock()
    if not closed:
        with contextlib.suppress(RPCError):  # the pause history refines the ETA; the progress stands alone
            clock.feed(await job.query(MiproWorkflow.events, EventsQuery(since_seq=clock.since, limit=5000)))
    if closed:  # the workflow's own clock at its end
        snap.elapsed_seconds = progress.elapsed_seconds
    else:
        times = clock_times(progress, clock, now or datetime.now(UTC))
        snap.elapsed_seconds, snap.paused_seconds, snap.eta_seconds = times
    return snap


def clock_times(progress: Progress, clock: PauseClock, now: datetime) -> tuple[float, float, float | None]:
    """(elapsed, paused, eta) seconds of a running job at `now`.

    Elapsed counts from the job's start by the clock (the workflow's own elapsed stops at its last
    activation, so a query of an idle job reads stale); the ETA extrapolates the unpaused time per trial,
    so it stands still while the job is paused and does not count the pause afterwards.
    """
    if progress.started_at is None:
        return 0.0, 0.0, None
    elapsed = max(progress.elapsed_seconds, (now - progress.started_at).total_seconds())
    paused = min(elapsed, clock.paused_seconds(now))
    done, planned = progress.trials_done, progress.trials_planned
    eta = None
    if done and progress.phase == "search" and planned > done:
        eta = (elapsed - paused) / done * (planned - done)
    return elapsed, paused, eta


_CLOSED_STATUS = {
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.TIMED_OUT: "timed_out",
}


# How a completed workflow ended (its result's status): the statuses of jobs that have a result.
COMPLETED_STATUSES = ("succeeded", "stopped_on_errors", "cancelled")


def effective_status(execution: WorkflowExecutionStatus | None, mipro_status: str | None) -> str:
    """A job's status from Temporal's execution status and the MiproStatus search attribute.

    The attribute is the workflow's own word while it runs (created, running, paused) and how it ended
    (succeeded, stopped_on_errors: rollouts kept failing, cancelled); once the workflow has closed,
    Temporal's status decides, so a closed job never reads as running.
    """
    if execution in _CLOSED_STATUS:
        return _CLOSED_STATUS[execution]
    if execution == WorkflowExecutionStatus.COMPLETED:
        return mipro_status if mipro_status in COMPLETED_STATUSES else "succeeded"
    return mipro_status if mipro_status in ("created", "paused") else "running"


async def completed_status(client: Client, job_id: str) -> str:
    """A completed job's status read from its result (for jobs that could not upsert MiproStatus)."""
    try:
        found = await handle(client, job_id).result(rpc_timeout=QUERY_TIMEOUT)
    except (RPCError, WorkflowFailureError):
        return "succeeded"
    return found.status if found.status in COMPLETED_STATUSES else "succeeded"


def status_of(wf: WorkflowExecution) -> str:
    """A described or listed job's effective status."""
    return effective_status(wf.status, wf.typed_search_attributes.get(sa.STATUS))


def is_closed(execution: WorkflowExecutionStatus | None) -> bool:
    return execution not in (None, WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.CONTINUED_AS_NEW)
