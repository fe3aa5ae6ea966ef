"""JSON errors: every error response is `{"error": {"code": ..., "message": ...}}`."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from packshot.api.headers import security_headers
from packshot.errors import PackshotError, UsageError
from packshot.jobs.store import JobConflict

log = logging.getLogger("packshot.api")

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
}


class ApiError(Exception):
    """An error for the client: its HTTP status, a stable code and a message saying what to do."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, "error")
        self.message = message
        self.headers = headers


def not_found(what: str) -> ApiError:
    """404 for a missing object and for another merchant's (the two look the same)."""
    return ApiError(404, f"No {what} with this id.")


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def _field(loc: tuple | list) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "request"


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors()[:5]:
            problems.append(f"`{_field(error.get('loc', ()))}`: {error.get('msg', 'invalid')}")
        return error_response(422, "invalid_request", "; ".join(problems) or "Invalid request.")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if exc.status_code == 404 and message == "Not Found":
            message = "No such endpoint; see /openapi.json."
        return error_response(
            exc.status_code, CODES.get(exc.status_code, "error"), message, exc.headers
        )

    @app.exception_handler(JobConflict)
    async def _conflict(_request: Request, exc: JobConflict) -> JSONResponse:
        return error_response(409, "conflict", " ".join(str(exc).split()))

    @app.exception_handler(PackshotError)
    async def _packshot(_request: Request, exc: PackshotError) -> JSONResponse:
        status = 422 if isinstance(exc, UsageError) else 400
        return error_response(status, CODES[status], " ".join(str(exc).split()))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        # Sent outside every middleware (Starlette's last resort): the headers come with it.
        return error_response(
            500,
            "internal_error",
            "packshot hit an internal error; the server log has details.",
            headers=security_headers(request.scope),
        )
