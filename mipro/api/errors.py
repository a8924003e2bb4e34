"""One error body everywhere: `{"error": {"code", "message", "details": [{field, problem, fix}]}}`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from temporalio.service import RPCError

from mipro.api import examples
from mipro.errors import MIPROConfigurationError

log = structlog.get_logger("api")


class ErrorDetail(BaseModel):
    field: str
    problem: str
    fix: str = ""


class ErrorInfo(BaseModel):
    code: str = Field(examples=["not_found"])
    message: str = Field(examples=["no job pl_0123456789abcdef"])
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorBody(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [examples.ERROR]})

    error: ErrorInfo


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: list[ErrorDetail] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or []


def unauthorized() -> ApiError:
    return ApiError(401, "unauthorized", "missing or unknown API key: send Authorization: Bearer <key>")


def not_found(job_id: str) -> ApiError:
    return ApiError(404, "not_found", f"no job {job_id}")


def conflict(message: str) -> ApiError:
    return ApiError(409, "conflict", message)


def config_error(exc: MIPROConfigurationError) -> ApiError:
    details = [ErrorDetail(field=f, problem=p, fix=x) for f, p, x in exc.problems]
    return ApiError(422, "invalid_config", "invalid config: nothing was started", details)


HTTP_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")
STATUS_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}
DESCRIPTIONS = {
    401: "missing or unknown bearer key",
    404: "no such job (or it belongs to another org)",
    409: "the job cannot make this transition now",
    422: "invalid request or config; every bad field is named with its fix",
    503: "Temporal or a worker did not answer in time",
}


def responses(*codes: int, non_json_route: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer.

    `non_json_route`: the route answers HTML or an event stream, and FastAPI would document its error
    bodies under that media type; they are JSON, so they are referenced explicitly."""
    if non_json_route:
        body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        return {code: {"description": DESCRIPTIONS[code], "content": body} for code in codes}
    return {code: {"model": ErrorBody, "description": DESCRIPTIONS[code]} for code in codes}


def _body(
    status: int,
    code: str,
    message: str,
    details: list[ErrorDetail] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    info = ErrorInfo(code=code, message=message, details=details or [])
    headers = {**(headers or {}), **({"WWW-Authenticate": "Bearer"} if status == 401 else {})}
    return JSONResponse(ErrorBody(error=info).model_dump(), status_code=status, headers=headers or None)


def _allowed_methods(request: Request) -> str:
    """Every method of every route on this path: Starlette's 405 names only the first route's methods
    (GET /configs and POST /configs are two routes)."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in HTTP_METHODS
        if any(route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes)
    )


def install_error_handlers(app: FastAPI, authorized: Callable[[Request], bool] = lambda _: True) -> None:
    """`authorized(request)`: whether the request may be told what is wrong with it. FastAPI reads and
    validates the body before it runs the auth dependency; without a valid key the answer is a 401."""

    def _refused(request: Request) -> JSONResponse | None:
        if authorized(request):
            return None
        exc = unauthorized()
        return _body(exc.status, exc.code, exc.message)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _body(exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = STATUS_CODES.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        if exc.status_code == 400:  # a body that is not UTF-8 JSON: a request error like any other
            if refused := _refused(request):
                return refused
            detail = ErrorDetail(field="body", problem=str(exc.detail), fix="send a UTF-8 JSON document")
            return _body(422, "invalid_request", "invalid request", [detail])
        return _body(exc.status_code, code, str(exc.detail), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        if refused := _refused(request):
            return refused
        # The offending input is never echoed back: it may hold a secret.
        details = [
            ErrorDetail(
                field=".".join(str(p) for p in err.get("loc", ())),
                problem=str(err.get("msg", "invalid")),
                fix="see the OpenAPI document (/openapi.json) for the expected shape",
            )
            for err in exc.errors()
        ]
        return _body(422, "invalid_request", "invalid request", details)

    @app.exception_handler(RPCError)
    async def _temporal_error(_: Request, exc: RPCError) -> JSONResponse:
        log.warning("api_temporal_error", status=exc.status.name, error=exc.message)
        return _body(503, "unavailable", f"Temporal did not answer ({exc.status.name}): {exc.message}")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("api_internal_error", error_type=type(exc).__name__, error=str(exc))
        return _body(500, "internal", f"internal error ({type(exc).__name__}); see the API's log")
