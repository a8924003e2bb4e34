"""The HTTP service shared by the example task apps (synth-ai Gen B wire contract), with test knobs.

Routes (research notes §1.1): `GET|HEAD /`, `GET /health`, `GET /info`, `GET /task_info`, `POST /rollout`,
`POST /done`, plus the test-only `GET /stats`. Every route but `/` and `/stats` requires the environment API
key when one is configured (`api_key`); without one the app is open. What a rollout does, and what the
metadata routes say, comes from the app's `TaskAppSpec` and `AppMeta`.

Test knobs:
- `fail_seeds`: a rollout whose `env.seed` is in this set answers HTTP 500 (`injected_failure`) without
  calling the LLM; it counts as started + failed.
- `hang_seeds`: a rollout whose `env.seed` is in this set never answers (until the client goes away);
  used to test cancellation and rollout timeouts.
- `close_seeds`: a rollout whose `env.seed` is in this set gets a 200 status line and headers promising a
  body, a fragment of that body, and then the connection is closed (the handler returns without finishing
  the response, so uvicorn drops the connection): the client sees a protocol error, never a response.
- `garbage_seeds`: a rollout whose `env.seed` is in this set answers 200 with a body that is not JSON
  (a truncated JSON document that would carry a reward if it were complete).
  Neither of the last two calls the LLM; both count as started + failed.
- `app.state.stats` (`RolloutStats`, also `GET /stats`, no auth): rollouts started / completed / failed /
  cancelled, in flight now and at most (`max_in_flight`), the seeds seen, the number of /rollout requests
  per seed (`attempts_by_seed`) and the faults injected per knob (`injected`: fail / hang / close /
  garbage). *Cancelled* means the client went away (disconnect or cancel) while the rollout ran: the
  handler watches for `http.disconnect`, cancels the in-flight LLM call, counts it and re-raises the
  CancelledError inside the rollout task.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypedDict, Unpack

import httpx
import structlog
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.types import Receive, Scope, Send

from mipro.taskapps.auth import auth_summary, authorise, error_detail
from mipro.taskapps.contract import RolloutRequest, RolloutResponse, TaskInfo
from mipro.taskapps.metadata import AppMeta

log = structlog.get_logger(__name__)

LLM_TIMEOUT_S = 60.0
CLIENT_CLOSED_REQUEST = 499  # nginx's code; nobody reads it because the client is gone
SeedsQuery = Annotated[list[int] | None, Query()]
KeyDependency = Callable[[Request], Awaitable[str | None]]
Fault = Literal["fail", "hang", "close", "garbage"]
# What a garbage_seeds rollout answers: JSON cut short, so a lenient parser could be tempted by the reward.
GARBAGE_BODY = b'{"metrics": {"outcome_score": 1.0, "mean_return": 1.0}, "trajectories": [{"steps": [{"rew'
Rollout = Callable[[RolloutRequest, Any, httpx.AsyncClient, str | None], Awaitable[RolloutResponse]]


class Knobs(TypedDict, total=False):
    """The test knobs of `create_task_app` besides the key and `fail_seeds` (see the module docstring)."""

    hang_seeds: set[int] | None
    close_seeds: set[int] | None
    garbage_seeds: set[int] | None
    llm_timeout: float


@dataclass(frozen=True)
class TaskAppSpec:
    """What makes one task app, as functions of its data: what it says about itself (`meta`, `/info`), its
    taskset (`/task_info`), one seed's TaskInfo (`/task_info?seed=N`), and how it runs a rollout
    (`rollout(request, data, client, inbound_key)`; the key is forwarded to the LLM as X-API-Key)."""

    meta: Callable[[Any], AppMeta]
    taskset: Callable[[Any], dict[str, Any]]
    task_instance: Callable[[Any, int], TaskInfo]
    rollout: Rollout


class RolloutStats(BaseModel):
    """Counters for tests and benchmarks (exposed on `app.state.stats` and `GET /stats`)."""

    started: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    in_flight: int = 0
    max_in_flight: int = 0  # the most rollouts this app ever served at once
    seeds: set[int] = Field(default_factory=set)
    attempts_by_seed: dict[int, int] = Field(default_factory=dict)  # /rollout requests per env.seed
    injected: dict[str, int] = Field(default_factory=dict)  # faults injected, per knob

    def snapshot(self) -> dict[str, Any]:
        return {
            **self.model_dump(exclude={"seeds", "attempts_by_seed"}),
            "seeds": sorted(self.seeds),
            "attempts_by_seed": {str(s): n for s, n in sorted(self.attempts_by_seed.items())},
        }

    def request(self, seed: int, fault: Fault | None) -> None:
        """Count one /rollout request for `seed` (and the fault injected into it, if any)."""
        self.attempts_by_seed[seed] = self.attempts_by_seed.get(seed, 0) + 1
        if fault is not None:
            self.injected[fault] = self.injected.get(fault, 0) + 1


def _new_client(timeout: float) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=128)
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout), limits=limits)


def http_client(app: FastAPI) -> httpx.AsyncClient:
    """The shared client on `app.state` (created by the lifespan, or lazily when there was none)."""
    client: httpx.AsyncClient | None = getattr(app.state, "http_client", None)
    if client is None or client.is_closed:
        client = _new_client(app.state.llm_timeout)
        app.state.http_client = client
    return client


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.http_client = _new_client(app.state.llm_timeout)
    try:
        yield
    finally:
        await app.state.http_client.aclose()


async def _wait_for_disconnect(request: Request) -> None:
    """Return when the client disconnects (the body is already read, so only `http.disconnect` can come)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _unless_disconnected(request: Request, task: asyncio.Task[Any]) -> Any:
    """Await `task`, but cancel it if the client disconnects first."""
    watcher = asyncio.create_task(_wait_for_disconnect(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
    if task.done() and not task.cancelled():
        return task.result()
    with suppress(asyncio.CancelledError):
        await task
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def _counted(stats: RolloutStats, seed: int, work: Callable[[], Awaitable[RolloutResponse]]) -> Any:
    stats.started += 1
    stats.seeds.add(seed)
    stats.in_flight += 1
    stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
    try:
        result = await work()
    except asyncio.CancelledError:
        stats.cancelled += 1
        log.info("task_app.rollout_cancelled", seed=seed)
        raise
    except Exception:
        stats.failed += 1
        raise
    finally:
        stats.in_flight -= 1
    stats.completed += 1
    return result.model_dump(mode="json")


def _injected_failure(seed: int) -> HTTPException:
    return HTTPException(500, detail=error_detail("injected_failure", f"seed {seed} is in fail_seeds"))


class DroppedConnection(Response):
    """A response that is never finished: a 200 status line and headers promising 4096 bytes, a 16-byte
    fragment, then the ASGI call returns. The server (uvicorn: "ASGI callable returned without completing
    response") closes the connection, so the client sees a protocol error instead of a response.
    """

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"4096")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": GARBAGE_BODY[:16], "more_body": True})


def _fault_of(app: FastAPI, seed: int) -> Fault | None:
    for fault, seeds in (
        ("fail", app.state.fail_seeds),
        ("hang", app.state.hang_seeds),
        ("close", app.state.close_seeds),
        ("garbage", app.state.garbage_seeds),
    ):
        if seed in seeds:
            return fault  # type: ignore[return-value]
    return None


def create_task_app(
    spec: TaskAppSpec,
    data: Any,
    api_key: str | None = None,
    fail_seeds: set[int] | None = None,
    **knobs: Unpack[Knobs],
) -> FastAPI:
    """Build the task app of `spec` over `data`. `api_key` None means no auth; the module docstring has
    the knobs."""
    meta = spec.meta(data)
    app = FastAPI(title=f"{meta.name} Task", lifespan=_lifespan)
    app.state.data = data
    app.state.api_key = api_key
    app.state.fail_seeds = set(fail_seeds or ())
    app.state.hang_seeds = set(knobs.get("hang_seeds") or ())
    app.state.close_seeds = set(knobs.get("close_seeds") or ())
    app.state.garbage_seeds = set(knobs.get("garbage_seeds") or ())
    app.state.stats = RolloutStats()
    app.state.llm_timeout = knobs.get("llm_timeout", LLM_TIMEOUT_S)

    async def require_key(request: Request) -> str | None:
        return authorise(request.headers, api_key)

    _add_open_routes(app, meta)
    _add_meta_routes(app, spec, meta, require_key)
    _add_rollout_route(app, spec, meta, require_key)
    return app


def _add_open_routes(app: FastAPI, meta: AppMeta) -> None:
    @app.get("/")
    async def root() -> dict[str, Any]:
        return {"status": "ok", "service": meta.app_id}

    @app.head("/")
    async def root_head() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        return app.state.stats.snapshot()


def _add_meta_routes(app: FastAPI, spec: TaskAppSpec, meta: AppMeta, require_key: KeyDependency) -> None:
    auth = [Depends(require_key)]

    @app.get("/health", dependencies=auth)
    async def health() -> dict[str, Any]:
        return {"healthy": True, "auth": auth_summary(app.state.api_key), "data_source": meta.source}

    @app.get("/info", dependencies=auth)
    async def info() -> dict[str, Any]:
        return meta.info()

    @app.get("/task_info", dependencies=auth)
    async def task_info(seed: SeedsQuery = None, seeds: SeedsQuery = None) -> Any:
        all_seeds = [*(seed or []), *(seeds or [])]
        if not all_seeds:  # data_source as in /health (e.g. "fallback: ... NOT Banking77")
            return {"taskset": {**spec.taskset(app.state.data), "data_source": meta.source}}
        infos = [spec.task_instance(app.state.data, s).model_dump(mode="json") for s in all_seeds]
        return infos[0] if len(infos) == 1 else infos

    @app.post("/done", dependencies=auth)
    async def done() -> dict[str, Any]:
        return {"ok": True, "service": meta.app_id}


def _add_rollout_route(app: FastAPI, spec: TaskAppSpec, meta: AppMeta, require_key: KeyDependency) -> None:
    @app.post("/rollout")
    async def rollout(
        body: RolloutRequest, request: Request, inbound_key: str | None = Depends(require_key)
    ) -> Any:
        seed = body.env.seed or 0
        fault = _fault_of(app, seed)
        stats: RolloutStats = app.state.stats
        stats.request(seed, fault)
        if fault in ("close", "garbage"):
            stats.started += 1
            stats.seeds.add(seed)
            stats.failed += 1
            log.info("task_app.injected_fault", app=meta.app_id, seed=seed, fault=fault)
            if fault == "close":
                return DroppedConnection()
            return Response(GARBAGE_BODY, status_code=200, media_type="application/json")

        async def work() -> RolloutResponse:
            if fault == "fail":
                raise _injected_failure(seed)
            if fault == "hang":
                await asyncio.Event().wait()  # until the client disconnects and the task is cancelled
            return await spec.rollout(body, app.state.data, http_client(app), inbound_key)

        task = asyncio.create_task(_counted(app.state.stats, seed, work))
        return await _unless_disconnected(request, task)
