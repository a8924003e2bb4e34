"""Client-side job operations shared by the CLI (and later the REST API): start, progress, result."""

from __future__ import annotations

import secrets

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from mipro.activity_models import TASK_QUEUE
from mipro.config import JobConfig
from mipro.job_models import MiproJobInput, OptimizationResult, Progress
from workflows.mipro_workflow import MiproWorkflow

UI_BASE = "http://localhost:8233"


def new_job_id() -> str:
    return f"pl_{secrets.token_hex(8)}"


def ui_link(job_id: str, namespace: str = "default", ui_base: str = UI_BASE) -> str:
    return f"{ui_base}/namespaces/{namespace}/workflows/{job_id}"


async def start_job(
    client: Client,
    config: JobConfig,
    job_id: str | None = None,
    org: str = "default",
    task_queue: str = TASK_QUEUE,
) -> WorkflowHandle[MiproWorkflow, OptimizationResult]:
    job_id = job_id or new_job_id()
    summary = (
        f"MIPRO {config.task_app_id or config.mipro.env_name} @ {config.task_app_url} ({config.policy.model})"
    )
    return await client.start_workflow(
        MiproWorkflow.run,
        MiproJobInput(job_id=job_id, org=org, config=config),
        id=job_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        static_summary=summary[:200],
    )


async def progress(client: Client, job_id: str) -> Progress:
    return await client.get_workflow_handle_for(MiproWorkflow.run, job_id).query(MiproWorkflow.progress)


async def result(client: Client, job_id: str) -> OptimizationResult:
    return await client.get_workflow_handle_for(MiproWorkflow.run, job_id).result()
