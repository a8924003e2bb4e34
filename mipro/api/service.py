"""Job operations on Temporal, scoped to the caller's org. Temporal is the only store of jobs.

A job is its workflow: the MiproOrg search attribute says whose it is (another org's job is a 404, never a
403), the memo keeps what the API was given (creation time, metadata), queries and updates reach the live
job, `describe()` and visibility answer for any job without a worker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from mipro import search_attributes as sa
from mipro.api.errors import ApiError, config_error, conflict, not_found
from mipro.api.models import CandidatesPage, CreateJobRequest, EventsPage, Job, JobError, JobList, JobResult
from mipro.api.saved_configs import SavedConfigStore
from mipro.api.secrets import secret_notices
from mipro.api.settings import ApiSettings
from mipro.config import apply_values, parse_config
from mipro.errors import MIPROConfigurationError
from mipro.job_models import Event, EventsQuery, OptimizationResult, Progress
from mipro.metrics import Metric, job_metrics
from mipro.report import render_report
from mipro.starter import jobs
from mipro.workflows.mipro_workflow import MiproWorkflow

T = TypeVar("T")
Action = Literal["start", "pause", "resume", "cancel"]
LIST_CAP = 5000  # jobs read from visibility per listing, to sort them newest first
STATUS_QUERIES = jobs.STATUS_QUERIES  # a closed workflow's Temporal status decides


class JobService:
    def __init__(self, client: Client, settings: ApiSettings, configs: SavedConfigStore) -> None:
        self.client = client
        self.settings = settings
        self.configs = configs
        self.timeout = timedelta(seconds=settings.rpc_timeout_seconds)

    # ---- lookups ------------------------------------------------------------------------------
    def _handle(self, job_id: str) -> WorkflowHandle[MiproWorkflow, OptimizationResult]:
        return jobs.handle(self.client, job_id)

    async def describe(self, org: str, job_id: str) -> WorkflowExecution:
        """The job's latest run; 404 when it does not exist or belongs to another org."""
        try:
            desc = await self._handle(job_id).describe(rpc_timeout=self.timeout)
        except RPCError as exc:
            if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
                raise not_found(job_id) from None
            raise _unavailable(exc) from None
        if desc.workflow_type != "MiproWorkflow" or desc.typed_search_attributes.get(sa.ORG) != org:
            raise not_found(job_id)
        return desc

    async def is_closed(self, job_id: str) -> bool:
        try:
            desc = await self._handle(job_id).describe(rpc_timeout=self.timeout)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise not_found(job_id) from None
            raise _unavailable(exc) from None
        return jobs.is_closed(desc.status)

    async def _query(self, job_id: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except RPCError as exc:
            raise _unavailable(exc) from None
        except WorkflowQueryFailedError as exc:
            raise ApiError(503, "query_failed", f"job {job_id} could not answer: {exc}") from None

    async def progress(self, job_id: str) -> Progress:
        return await self._query(
            job_id, lambda: self._handle(job_id).query(MiproWorkflow.progress, rpc_timeout=self.timeout)
        )

    async def query_events(self, job_id: str, since_seq: int, limit: int) -> list[Event]:
        return await self._query(
            job_id,
            lambda: self._handle(job_id).query(
                MiproWorkflow.events, EventsQuery(since_seq=since_seq, limit=limit), rpc_timeout=self.timeout
            ),
        )

    # ---- create ---------------------------------------------------------------------------------
    async def create(self, org: str, req: CreateJobRequest) -> Job:
        raw = self.configs.get(org, req.config_name).config_body if req.config_name else req.config_body
        notices = secret_notices(raw or {}, req.overrides, req.metadata)
        try:
            config = parse_config(apply_values(raw or {}, req.overrides))
        except MIPROConfigurationError as exc:
            raise config_error(exc) from None
        created = datetime.now(UTC)
        memo = {
            "algorithm": req.algorithm,
            "created_at": created.isoformat(),
            "auto_start": req.auto_start,
            "metadata": req.metadata,
        }
        handle = await jobs.start_job(
            self.client,
            config,
            org=org,
            task_queue=self.settings.task_queue,
            auto_start=req.auto_start,
            memo=memo,
            search_attributes_ready=True,
        )
        return Job(
            job_id=handle.id,
            status="running" if req.auto_start else "created",
            org=org,
            created_at=created,
            started_at=created if req.auto_start else None,
            metadata=req.metadata,
            notices=notices,
        )

    # ---- read -----------------------------------------------------------------------------------
    async def get(self, org: str, job_id: str) -> Job:
        desc = await self.describe(org, job_id)
        job = await _job_of(desc)
        if job.status == "failed":
            job.error = await self._failure(job_id)
        elif not jobs.is_closed(desc.status):
            try:
                job.progress = await self.progress(job_id)
            except ApiError:
                job.progress = None  # no worker answered: the job's Temporal state still stands
        return job

    async def list(
        self, org: str, limit: int, offset: int, status: str | None, since: datetime | None
    ) -> JobList:
        query = (
            f"WorkflowType = 'MiproWorkflow' AND ExecutionStatus != 'ContinuedAsNew' AND MiproOrg = '{org}'"
        )
        if status:
            query += f" AND {STATUS_QUERIES[status]}"
        if since:
            since = since if since.tzinfo else since.replace(tzinfo=UTC)  # a time without a zone is UTC
            query += f" AND StartTime >= '{since.astimezone(UTC).isoformat()}'"
        executions = [wf async for wf in self.client.list_workflows(query, limit=LIST_CAP)]
        found = [await _job_of(wf) for wf in executions]
        if since:  # a run's StartTime is at or after its job's creation: the query above is a superset
            found = [job for job in found if job.created_at >= since]
        found.sort(key=lambda j: j.created_at, reverse=True)
        return JobList(
            jobs=found[offset : offset + limit],
            limit=limit,
            offset=offset,
            has_more=len(found) > offset + limit,
        )

    async def events(self, org: str, job_id: str, since_seq: int, limit: int) -> EventsPage:
        await self.describe(org, job_id)
        events = await self.query_events(job_id, since_seq, limit + 1)
        page = events[:limit]
        return EventsPage(
            events=page, next_since_seq=page[-1].seq if page else since_seq, has_more=len(events) > limit
        )

    async def metrics(self, org: str, job_id: str) -> list[Metric]:
        desc = await self.describe(org, job_id)
        if desc.status == WorkflowExecutionStatus.COMPLETED:  # from the result: no history replay on a worker
            r = await self._handle(job_id).result(rpc_timeout=self.timeout)
            return job_metrics(r.trials, r.validations, r.costs)
        return await self._query(
            job_id, lambda: self._handle(job_id).query(MiproWorkflow.metrics, rpc_timeout=self.timeout)
        )

    async def candidates(self, org: str, job_id: str, limit: int, offset: int) -> CandidatesPage:
        desc = await self.describe(org, job_id)
        if desc.status == WorkflowExecutionStatus.COMPLETED:
            found = (await self._handle(job_id).result(rpc_timeout=self.timeout)).attempted_candidates
        else:
            found = await self._query(
                job_id, lambda: self._handle(job_id).query(MiproWorkflow.candidates, rpc_timeout=self.timeout)
            )
        return CandidatesPage(
            candidates=found[offset : offset + limit], total=len(found), limit=limit, offset=offset
        )

    async def result(self, org: str, job_id: str) -> JobResult:
        desc = await self.describe(org, job_id)
        status = jobs.effective_status(desc.status, desc.typed_search_attributes.get(sa.STATUS))
        if status not in jobs.COMPLETED_STATUSES or not jobs.is_closed(desc.status):
            detail = ""
            if status == "failed":
                error = await self._failure(job_id)
                detail = f": {error.type}: {error.message}" if error else ""
            raise conflict(
                f"job {job_id} is {status}{detail}; a result exists once it has succeeded, stopped on "
                "errors or been cancelled"
            )
        try:
            result = await self._handle(job_id).result(rpc_timeout=self.timeout)
        except WorkflowFailureError as exc:  # cancelled through Temporal before the workflow could answer
            raise conflict(f"job {job_id} ended without a result: {exc.cause or exc}") from None
        return JobResult(
            job_id=job_id,
            status=result.status,
            simulated_llm=result.simulated_llm,
            best_messages=result.best.messages,
            result=result,
        )

    async def report(self, org: str, job_id: str) -> str:
        return render_report((await self.result(org, job_id)).result)

    async def _failure(self, job_id: str) -> JobError | None:
        found = await jobs.failure(self.client, job_id, rpc_timeout=self.timeout)
        return JobError(type=found.type, message=found.message) if found else None

    # ---- control --------------------------------------------------------------------------------
    async def control(self, org: str, job_id: str, action: Action) -> Job:
        desc = await self.describe(org, job_id)
        if jobs.is_closed(desc.status):
            status = jobs.effective_status(desc.status, desc.typed_search_attributes.get(sa.STATUS))
            raise conflict(f"cannot {action} job {job_id}: it has finished ({status})")
        handle = self._handle(job_id)
        try:
            if action == "cancel":
                await handle.cancel(rpc_timeout=self.timeout)
            else:
                update = {
                    "start": MiproWorkflow.start,
                    "pause": MiproWorkflow.pause,
                    "resume": MiproWorkflow.resume,
                }
                await handle.execute_update(update[action], rpc_timeout=self.timeout)
        except WorkflowUpdateFailedError as exc:
            reason = exc.cause.message if isinstance(exc.cause, ApplicationError) else str(exc.cause or exc)
            raise conflict(f"cannot {action} job {job_id}: {reason}") from None
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:  # it finished between describe and the update
                raise conflict(f"cannot {action} job {job_id}: it has finished") from None
            raise _unavailable(exc) from None
        return await self.get(org, job_id)


async def _job_of(wf: WorkflowExecution) -> Job:
    attrs = wf.typed_search_attributes
    memo: dict[str, Any] = await wf.memo()
    created = _parse_time(memo.get("created_at")) or wf.start_time
    started = created if memo.get("auto_start", True) else _parse_time(memo.get("started_at"))
    return Job(
        job_id=wf.id,
        status=jobs.effective_status(wf.status, attrs.get(sa.STATUS)),  # type: ignore[arg-type]
        org=attrs.get(sa.ORG) or "",
        created_at=created,
        started_at=started,
        finished_at=wf.close_time if jobs.is_closed(wf.status) else None,
        best_score=attrs.get(sa.BEST_SCORE),
        trials=attrs.get(sa.TRIALS),
        spend_usd=attrs.get(sa.SPEND_USD),
        metadata=memo.get("metadata") or {},
    )


def _parse_time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _unavailable(exc: RPCError) -> ApiError:
    if exc.status == RPCStatusCode.DEADLINE_EXCEEDED:
        return ApiError(
            503, "unavailable", "no worker answered in time: is a worker running on the job's task queue?"
        )
    return ApiError(503, "unavailable", f"Temporal did not answer: {exc.message}")
