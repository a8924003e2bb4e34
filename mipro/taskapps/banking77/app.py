"""The banking77 example task app: a FastAPI service wire-compatible with synth-ai's banking77 app (Gen B).

Routes (research notes §1.1): `GET|HEAD /`, `GET /health`, `GET /info`, `GET /task_info`, `POST /rollout`,
`POST /done`, plus the test-only `GET /stats`. Every route but `/` and `/stats` requires the environment API
key when one is configured (`api_key`); without one the app is open.

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
from typing import Annotated, Any, Literal

import httpx
import structlog
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.types import Receive, Scope, Send

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
Fault = Literal["fail", "hang", "close", "garbage"]
# What a garbage_seeds rollout answers: JSON cut short, so a lenient parser could be tempted by the reward.
GARBAGE_BODY = b'{"metrics": {"outcome_score": 1.0, "mean_return": 1.0}, "trajectories": [{"steps": [{"rew'


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
        log.info("banking77.rollout_cancelled", seed=seed)
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


def create_app(
    data: Banking77Data,
    api_key: str | None = None,
    fail_seeds: set[int] | None = None,
    *,
    hang_seeds: set[int] | None = None,
    close_seeds: set[int] | None = None,
    garbage_seeds: set[int] | None = None,
    llm_timeout: float = LLM_TIMEOUT_S,
) -> FastAPI:
    """Build the task app over `data`. `api_key` None means no auth; see the module docstring for knobs."""
    app = FastAPI(title="Banking77 Intent Classification Task", lifespan=_lifespan)
    app.state.data = data
    app.state.api_key = api_key
    app.state.fail_seeds = set(fail_seeds or ())
    app.state.hang_seeds = set(hang_seeds or ())
    app.state.close_seeds = set(close_seeds or ())
    app.state.garbage_seeds = set(garbage_seeds or ())
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
        fault = _fault_of(app, seed)
        stats: RolloutStats = app.state.stats
        stats.request(seed, fault)
        if fault in ("close", "garbage"):
            stats.started += 1
            stats.seeds.add(seed)
            stats.failed += 1
            log.info("banking77.injected_fault", seed=seed, fault=fault)
            if fault == "close":
                return DroppedConnection()
            return Response(GARBAGE_BODY, status_code=200, media_type="application/json")

        async def work() -> RolloutResponse:
            if fault == "fail":
                raise _injected_failure(seed)
            if fault == "hang":
                await asyncio.Event().wait()  # until the client disconnects and the task is cancelled
            return await run_rollout(body, data, http_client(app), inbound_key)

        task = asyncio.create_task(_counted(app.state.stats, seed, work))
        return await _unless_disconnected(request, task)
