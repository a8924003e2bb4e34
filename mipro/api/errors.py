"""One error body everywhere: `{"error": {"code", "message", "details": [{field, problem, fix}]}}`."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

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
    error: ErrorInfo


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: list[ErrorDetail] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or []


def not_found(job_id: str) -> ApiError:
    return ApiError(404, "not_found", f"no job {job_id}")


def conflict(message: str) -> ApiError:
    return ApiError(409, "conflict", message)


def config_error(exc: MIPROConfigurationError) -> ApiError:
    details = [ErrorDetail(field=f, problem=p, fix=x) for f, p, x in exc.problems]
    return ApiError(422, "invalid_config", "invalid config: nothing was started", details)


STATUS_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}
DESCRIPTIONS = {
    401: "missing or unknown bearer key",
    404: "no such job (or it belongs to another org)",
    409: "the job cannot make this transition now",
    422: "invalid request or config; every bad field is named with its fix",
    503: "Temporal or a worker did not answer in time",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer."""
    return {code: {"model": ErrorBody, "description": DESCRIPTIONS[code]} for code in codes}


def _body(status: int, code: str, message: str, details: list[ErrorDetail] | None = None) -> JSONResponse:
    info = ErrorInfo(code=code, message=message, details=details or [])
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(ErrorBody(error=info).model_dump(), status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _body(exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = STATUS_CODES.get(exc.status_code, "http_error")
        return _body(exc.status_code, code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
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

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("api_internal_error", error_type=type(exc).__name__, error=str(exc))
        return _body(500, "internal", f"internal error ({type(exc).__name__}); see the API's log")
