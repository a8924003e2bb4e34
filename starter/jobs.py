"""Client-side job operations shared by the CLI (and later the REST API): start, progress, result."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import structlog
from pydantic import BaseModel
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.service import RPCError, RPCStatusCode

from mipro import search_attributes as sa
from mipro.activity_models import TASK_QUEUE
from mipro.config import JobConfig
from mipro.job_models import MiproJobInput, OptimizationResult, Progress
from workflows.mipro_workflow import MiproWorkflow

UI_BASE = "http://localhost:8233"
log = structlog.get_logger("jobs")
T = TypeVar("T")
# Statuses a long-lived connection can return for one call when the server rotates it (Temporal's frontend
# sends GOAWAY after its max connection age); calling again goes over a fresh connection.
TRANSIENT_RPC_STATUSES = {RPCStatusCode.CANCELLED, RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED}


def new_job_id() -> str:
    return f"pl_{secrets.token_hex(8)}"


def ui_link(job_id: str, namespace: str = "default", ui_base: str = UI_BASE) -> str:
    return f"{ui_base}/namespaces/{namespace}/workflows/{job_id}"


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
) -> WorkflowHandle[MiproWorkflow, OptimizationResult]:
    """Start a job's workflow. `auto_start=False` creates it waiting for the `start` update.

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
            job_id=job_id, org=org, config=config, upsert_search_attributes=upsert, auto_start=auto_start
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


def handle(client: Client, job_id: str) -> WorkflowHandle[MiproWorkflow, OptimizationResult]:
    return client.get_workflow_handle_for(MiproWorkflow.run, job_id)


async def progress(client: Client, job_id: str) -> Progress:
    return await handle(client, job_id).query(MiproWorkflow.progress)


async def result(client: Client, job_id: str) -> OptimizationResult:
    return await handle(client, job_id).result()


class JobRow(BaseModel):
    job_id: str
    temporal_status: str
    status: str | None
    org: str | None
    best_score: float | None
    trials: int | None
    spend_usd: float | None
    started_at: datetime | None


async def list_jobs(client: Client, status: str | None = None, limit: int = 50) -> list[JobRow]:
    """Jobs from Temporal visibility, newest first, optionally filtered by our status search attribute."""
    query = "WorkflowType = 'MiproWorkflow'"
    if status:
        query += f" AND {sa.STATUS.name} = '{status}'"
    rows: list[JobRow] = []
    async for wf in client.list_workflows(query, limit=limit):
        attrs = wf.typed_search_attributes
        rows.append(
            JobRow(
                job_id=wf.id,
                temporal_status=wf.status.name if wf.status else "UNKNOWN",
                status=attrs.get(sa.STATUS),
                org=attrs.get(sa.ORG),
                best_score=attrs.get(sa.BEST_SCORE),
                trials=attrs.get(sa.TRIALS),
                spend_usd=attrs.get(sa.SPEND_USD),
                started_at=wf.start_time,
            )
        )
    return rows


_CLOSED_STATUS = {
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.TIMED_OUT: "timed_out",
}


def effective_status(execution: WorkflowExecutionStatus | None, mipro_status: str | None) -> str:
    """A job's status from Temporal's execution status and the MiproStatus search attribute.

    The attribute is the workflow's own word while it runs (created, running, paused); once the workflow
    has closed, Temporal's status decides, so a closed job never reads as running.
    """
    if execution in _CLOSED_STATUS:
        return _CLOSED_STATUS[execution]
    if execution == WorkflowExecutionStatus.COMPLETED:
        return mipro_status if mipro_status in ("succeeded", "cancelled") else "succeeded"
    return mipro_status if mipro_status in ("created", "paused") else "running"


def is_closed(execution: WorkflowExecutionStatus | None) -> bool:
    return execution not in (None, WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.CONTINUED_AS_NEW)
