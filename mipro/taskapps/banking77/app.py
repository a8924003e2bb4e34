"""The banking77 example task app: a FastAPI service wire-compatible with synth-ai's banking77 app (Gen B).

Routes (research notes §1.1): `GET|HEAD /`, `GET /health`, `GET /info`, `GET /task_info`, `POST /rollout`,
`POST /done`, plus the test-only `GET /stats`. Every route but `/` and `/stats` requires the environment API
key when one is configured (`api_key`); without one the app is open.

Test knobs:
- `fail_seeds`: a rollout whose `env.seed` is in this set answers HTTP 500 (`injected_failure`) without
  calling the LLM; it counts as started + failed.
- `hang_seeds`: a rollout whose `env.seed` is in this set never answers (until the client goes away);
  used to test cancellation and rollout timeouts.
- `app.state.stats` (`RolloutStats`, also `GET /stats`, no auth): rollouts started / completed / failed /
  cancelled and the seeds seen. *Cancelled* means the client went away (disconnect or cancel) while the
  rollout ran: the handler watches for `http.disconnect`, cancels the in-flight LLM call, counts it and
  re-raises the CancelledError inside the rollout task.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Annotated, Any

import httpx
import structlog
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from mipro.taskapps.auth import auth_summary, authorise, error_detail
from mipro.taskapps.banking77.data import Banking77Data
from mipro.taskapps.banking77.meta import APP_ID, describe_taskset, info_payload, task_instance
from mipro.taskapps.banking77.rollout import run_rollout
from mipro.taskapps.contract import RolloutRequest, RolloutResponse

log = structlog.get_logger(__name__)

LLM_TIMEOUT_S = 60.0
CLIENT_CLOSED_REQUEST = 499  # nginx's code; nobody reads it because the client is gone
SeedsQuery = Annotated[list[int] | None, Query()]
KeyDependency = Callable[[Request], Awaitable[str | None]]


class RolloutStats(BaseModel):
    """Counters for tests and benchmarks (exposed on `app.state.stats` and `GET /stats`)."""

    started: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    seeds: set[int] = Field(default_factory=set)

    def snapshot(self) -> dict[str, Any]:
        return {**self.model_dump(exclude={"seeds"}), "seeds": sorted(self.seeds)}


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
    try:
        result = await work()
    except asyncio.CancelledError:
        stats.cancelled += 1
        log.info("banking77.rollout_cancelled", seed=seed)
        raise
    except Exception:
        stats.failed += 1
        raise
    stats.completed += 1
    return result.model_dump(mode="json")


def _injected_failure(seed: int) -> HTTPException:
    return HTTPException(500, detail=error_detail("injected_failure", f"seed {seed} is in fail_seeds"))


def create_app(
    data: Banking77Data,
    api_key: str | None = None,
    fail_seeds: set[int] | None = None,
    *,
    hang_seeds: set[int] | None = None,
    llm_timeout: float = LLM_TIMEOUT_S,
) -> FastAPI:
    """Build the task app over `data`. `api_key` None means no auth; see the module docstring for knobs."""
    app = FastAPI(title="Banking77 Intent Classification Task", lifespan=_lifespan)
    app.state.data = data
    app.state.api_key = api_key
    app.state.fail_seeds = set(fail_seeds or ())
    app.state.hang_seeds = set(hang_seeds or ())
    app.state.stats = RolloutStats()
    app.state.llm_timeout = llm_timeout

    async def require_key(request: Request) -> str | None:
        return authorise(request.headers, api_key)

    _add_open_routes(app)
    _add_meta_routes(app, data, require_key)
    _add_rollout_route(app, data, require_key)
    return app


def _add_open_routes(app: FastAPI) -> None:
    @app.get("/")
    async def root() -> dict[str, Any]:
        return {"status": "ok", "service": APP_ID}

    @app.head("/")
    async def root_head() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        return app.state.stats.snapshot()


def _add_meta_routes(app: FastAPI, data: Banking77Data, require_key: KeyDependency) -> None:
    auth = [Depends(require_key)]

    @app.get("/health", dependencies=auth)
    async def health() -> dict[str, Any]:
        return {"healthy": True, "auth": auth_summary(app.state.api_key), "data_source": data.source}

    @app.get("/info", dependencies=auth)
    async def info() -> dict[str, Any]:
        return info_payload(data)

    @app.get("/task_info", dependencies=auth)
    async def task_info(seed: SeedsQuery = None, seeds: SeedsQuery = None) -> Any:
        all_seeds = [*(seed or []), *(seeds or [])]
        if not all_seeds:
            return {"taskset": describe_taskset(data)}
        infos = [task_instance(data, s).model_dump(mode="json") for s in all_seeds]
        return infos[0] if len(infos) == 1 else infos

    @app.post("/done", dependencies=auth)
    async def done() -> dict[str, Any]:
        return {"ok": True, "service": APP_ID}


def _add_rollout_route(app: FastAPI, data: Banking77Data, require_key: KeyDependency) -> None:
    @app.post("/rollout")
    async def rollout(
        body: RolloutRequest, request: Request, inbound_key: str | None = Depends(require_key)
    ) -> Any:
        seed = body.env.seed or 0

        async def work() -> RolloutResponse:
            if seed in app.state.fail_seeds:
                raise _injected_failure(seed)
            if seed in app.state.hang_seeds:
                await asyncio.Event().wait()  # until the client disconnects and the task is cancelled
            return await run_rollout(body, data, http_client(app), inbound_key)

        task = asyncio.create_task(_counted(app.state.stats, seed, work))
        return await _unless_disconnected(request, task)
