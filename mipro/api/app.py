"""The FastAPI app: routes under /api/prompt-learning/online, bearer auth per org, one error shape."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import AwareDatetime, BeforeValidator
from temporalio.client import Client

from mipro.api import examples
from mipro.api.auth import KeyRing
from mipro.api.errors import ApiError, install_error_handlers, responses, unauthorized
from mipro.api.event_hub import EventHub
from mipro.api.models import (
    CandidatesPage,
    CreateJobRequest,
    EventsPage,
    Health,
    Job,
    JobList,
    JobResult,
    SaveConfigRequest,
    SavedConfig,
    SavedConfigList,
)
from mipro.api.saved_configs import SavedConfigStore
from mipro.api.service import STATUS_QUERIES, JobService
from mipro.api.settings import ApiSettings
from mipro.metrics import Metric
from mipro.starter.jobs import search_attributes_registered
from mipro.worker import connect

PREFIX = "/api/prompt-learning/online"
PUBLIC = {f"{PREFIX}/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
JobId = Annotated[str, Path(pattern=r"^pl_[0-9a-f]{16}$", examples=["pl_0123456789abcdef"])]
StatusFilter = Literal[tuple(STATUS_QUERIES)]  # type: ignore[valid-type]
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339(value: object) -> object:
    """The document says `date-time` (RFC 3339); pydantic alone also takes a Unix time or a naive time."""
    if isinstance(value, str) and not RFC3339.fullmatch(value):
        raise ValueError("expected an RFC 3339 date-time with an offset, e.g. 2026-01-31T12:00:00Z")
    return value


Since = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
bearer = HTTPBearer(auto_error=False, description="an API key; each key belongs to one org")


def create_app(settings: ApiSettings | None = None, client: Client | None = None) -> FastAPI:
    """The API app. Without `client` it connects to Temporal when it starts serving."""
    settings = settings or ApiSettings.from_env()
    keys = KeyRing.load(settings.api_keys, settings.api_keys_file)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        temporal = client or await connect(settings.temporal_address, settings.namespace)
        if not await search_attributes_registered(temporal):
            raise RuntimeError(
                "the MIPRO search attributes are not registered on namespace "
                f"{settings.namespace}: start Temporal with `mipro server` or register them (README)"
            )
        service = JobService(temporal, settings, SavedConfigStore(settings.data_dir))
        app.state.service = service
        app.state.hub = EventHub(service.query_events, service.is_closed, settings.sse_poll_seconds)
        yield

    app = FastAPI(
        title="mipro-temporal jobs API",
        version="1.0.0",
        description=(
            "Durable MIPROv2 prompt-optimization jobs on Temporal. Every route but /health needs "
            "`Authorization: Bearer <key>`; a key belongs to one org, which sees only its own jobs."
        ),
        lifespan=lifespan,
    )
    app.state.keys = keys
    install_error_handlers(app, _authorized)

    app.state.settings = settings
    app.include_router(_routes(), prefix=PREFIX)
    return app


def _service(request: Request) -> JobService:
    return request.app.state.service  # type: ignore[no-any-return]


async def _org_of(
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> str:
    keys: KeyRing = request.app.state.keys
    org = keys.org_for(creds.credentials) if creds else None
    if org is None:
        raise unauthorized()
    return org


def _authorized(request: Request) -> bool:
    """Whether a request that failed validation may hear why: with a known key, or on a public route."""
    if request.url.path in PUBLIC:
        return True
    scheme, key = get_authorization_scheme_param(request.headers.get("Authorization"))
    keys: KeyRing = request.app.state.keys
    return scheme.lower() == "bearer" and bool(key) and keys.org_for(key) is not None


Org = Annotated[str, Depends(_org_of)]
Service = Annotated[JobService, Depends(_service)]


async def _streamable_job(job_id: JobId, org: Org, service: Service) -> str:
    await service.describe(org, job_id)  # before the stream opens, so a 404 is still a 404
    return job_id


StreamedJob = Annotated[str, Depends(_streamable_job)]


def _routes() -> APIRouter:  # noqa: C901
    r = APIRouter()
    job_errors = responses(401, 404, 422, 503)

    @r.get("/health", response_model=Health, responses=responses(503), tags=["service"])
    async def health(request: Request, service: Service) -> Health:
        settings: ApiSettings = request.app.state.settings
        try:
            await service.client.service_client.check_health()
        except Exception as exc:  # noqa: BLE001
            raise ApiError(503, "unavailable", f"Temporal is unreachable: {exc}") from None
        return Health(
            temporal=f"{settings.temporal_address}/{settings.namespace}", task_queue=settings.task_queue
        )

    @r.post(
        "/jobs", status_code=201, response_model=Job, responses=responses(401, 404, 422, 503), tags=["jobs"]
    )
    async def create_job(body: CreateJobRequest, org: Org, service: Service) -> Job:
        """Validate the config and start the job (auto_start=false: create it). A 422 starts nothing."""
        return await service.create(org, body)

    @r.get("/jobs", response_model=JobList, responses=responses(401, 422, 503), tags=["jobs"])
    async def list_jobs(
        org: Org,
        service: Service,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=5000)] = 0,
        status: StatusFilter | None = None,
        since: Since | None = None,
    ) -> JobList:
        """The org's jobs, newest first."""
        return await service.list(org, limit, offset, status, since)

    @r.get("/jobs/{job_id}", response_model=Job, responses=job_errors, tags=["jobs"])
    async def get_job(job_id: JobId, org: Org, service: Service) -> Job:
        return await service.get(org, job_id)

    @r.get("/jobs/{job_id}/events", response_model=EventsPage, responses=job_errors, tags=["events"])
    async def get_events(
        job_id: JobId,
        org: Org,
        service: Service,
        since_seq: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> EventsPage:
        return await service.events(org, job_id, since_seq, limit)

    @r.get(
        "/jobs/{job_id}/events/stream",
        response_class=EventSourceResponse,
        responses={
            200: {"content": {"text/event-stream": {"example": examples.EVENT_STREAM}}},
            **responses(401, 404, 422, 503, non_json_route=True),
        },
        tags=["events"],
    )
    async def stream_events(
        request: Request,
        job_id: StreamedJob,
        since_seq: Annotated[int, Query(ge=0)] = 0,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    ) -> AsyncIterator[ServerSentEvent]:
        """Server-Sent Events: `id` is the event's seq; reconnect with Last-Event-ID to resume after it.
        A comment line is sent while idle; an `end` event closes the stream when the job has ended."""
        resume = last_event_id.strip() if last_event_id else ""
        cursor = max(since_seq, int(resume) if resume.isascii() and resume.isdigit() else 0)
        hub: EventHub = request.app.state.hub
        heartbeat = request.app.state.settings.sse_heartbeat_seconds
        async for event in hub.subscribe(job_id, cursor, heartbeat):
            if event is None:
                yield ServerSentEvent(comment="heartbeat")
            else:
                yield ServerSentEvent(id=str(event.seq), event=event.type, raw_data=event.model_dump_json())
        yield ServerSentEvent(event="end", raw_data=f'{{"job_id": "{job_id}"}}')

    @r.get(
        "/jobs/{job_id}/metrics",
        response_model=list[Metric],
        responses={200: {"content": {"application/json": {"example": examples.METRICS}}}, **job_errors},
        tags=["results"],
    )
    async def get_metrics(job_id: JobId, org: Org, service: Service) -> list[Metric]:
        """Minibatch score per trial, best so far, validation scores, spend by category."""
        return await service.metrics(org, job_id)

    @r.get("/jobs/{job_id}/candidates", response_model=CandidatesPage, responses=job_errors, tags=["results"])
    async def get_candidates(
        job_id: JobId,
        org: Org,
        service: Service,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> CandidatesPage:
        return await service.candidates(org, job_id, limit, offset)

    result_errors = responses(401, 404, 409, 422, 503)

    @r.get("/jobs/{job_id}/result", response_model=JobResult, responses=result_errors, tags=["results"])
    async def get_result(job_id: JobId, org: Org, service: Service) -> JobResult:
        """The OptimizationResult and the best prompt as ready-to-use messages (409 until it ends)."""
        return await service.result(org, job_id)

    @r.get(
        "/jobs/{job_id}/report",
        response_class=HTMLResponse,
        responses={
            200: {"content": {"text/html": {"example": examples.REPORT}}},
            **responses(401, 404, 409, 422, 503, non_json_route=True),
        },
        tags=["results"],
    )
    async def get_report(job_id: JobId, org: Org, service: Service) -> HTMLResponse:
        """The self-contained HTML report of an ended job."""
        return HTMLResponse(await service.report(org, job_id))

    for action, summary in (
        ("start", "Start a job created with auto_start=false"),
        ("pause", "Pause: nothing new starts; in-flight evaluations finish and are recorded"),
        ("resume", "Resume a paused job where it stopped"),
        ("cancel", "Cancel: the job ends with the best result found so far"),
    ):
        r.add_api_route(
            f"/jobs/{{job_id}}/{action}",
            _control_route(action),
            methods=["POST"],
            response_model=Job,
            responses=result_errors,
            summary=summary,
            name=f"{action}_job",
            tags=["jobs"],
        )

    @r.post(
        "/configs",
        status_code=201,
        response_model=SavedConfig,
        responses=responses(401, 422),
        tags=["configs"],
    )
    async def save_config(body: SaveConfigRequest, org: Org, service: Service) -> SavedConfig:
        """Validate and save a named config for POST /jobs {config_name}."""
        return service.configs.save(org, body.name, body.config_body)

    @r.get("/configs", response_model=SavedConfigList, responses=responses(401), tags=["configs"])
    async def list_configs(org: Org, service: Service) -> SavedConfigList:
        return SavedConfigList(configs=service.configs.names(org))

    @r.get(
        "/configs/{name}", response_model=SavedConfig, responses=responses(401, 404, 422), tags=["configs"]
    )
    async def get_config(
        name: Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$")], org: Org, service: Service
    ) -> SavedConfig:
        return service.configs.get(org, name)

    return r


def _control_route(action: str) -> Callable[..., Awaitable[Job]]:
    async def control(job_id: JobId, org: Org, service: Service) -> Job:
        return await service.control(org, job_id, action)  # type: ignore[arg-type]

    return control
