"""Status-coded errors, rendered by one handler into one envelope.

Every error response is ``{"error": {"code": ..., "message": ..., "details": ...}}``.
Services raise these; endpoints never build error responses by hand.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError, StatementError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("juxing.errors")


class JuxingError(Exception):
    """Base class: an error with an HTTP status, a stable code and details."""

    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details
        self.headers = headers


class BadRequest(JuxingError):
    status_code = 400
    code = "bad_request"


class Unauthorized(JuxingError):
    status_code = 401
    code = "unauthorized"


class Forbidden(JuxingError):
    status_code = 403
    code = "forbidden"


class NotFound(JuxingError):
    status_code = 404
    code = "not_found"


class Conflict(JuxingError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(JuxingError):
    status_code = 413
    code = "payload_too_large"


class Unprocessable(JuxingError):
    """The request is well-formed but breaks a business rule; ``code`` names the rule."""

    status_code = 422
    code = "unprocessable"


class RateLimited(JuxingError):
    status_code = 429
    code = "rate_limited"


class ServiceUnavailable(JuxingError):
    status_code = 503
    code = "unavailable"


def envelope(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        where, rest = parts[0], parts[1:]
        return where + ("." + ".".join(rest) if rest else "")
    return ".".join(parts)


def validation_details(errors: list[Any]) -> list[dict[str, Any]]:
    return [
        {"field": _field_path(e.get("loc", ())), "message": e.get("msg", ""), "type": e.get("type")}
        for e in errors
    ]


def error_response(exc: JuxingError) -> JSONResponse:
    """The response for ``exc``: what its handler answers (a fast path that answers many
    refusals returns it rather than raising it through the middleware stack)."""
    return JSONResponse(
        envelope(exc.code, exc.message, exc.details),
        status_code=exc.status_code,
        headers=exc.headers,
    )


def internal_error_response() -> JSONResponse:
    """The answer to an unexpected error (logged by whoever caught it)."""
    return JSONResponse(
        envelope("internal_error", "Something went wrong on our side; nothing was changed."),
        status_code=500,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Render every error, expected or not, in the one envelope."""

    @app.exception_handler(JuxingError)
    async def _juxing_error(_request: Request, exc: JuxingError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return JSONResponse(
                envelope(
                    "invalid_json",
                    "The request body is not valid JSON.",
                    validation_details(errors),
                ),
                status_code=400,
            )
        return JSONResponse(
            envelope("validation_error", "The request is not valid.", validation_details(errors)),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {
            400: "bad_request",
            401: "unauthorized",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
            409: "conflict",
            413: "payload_too_large",
            415: "unsupported_media_type",
            429: "rate_limited",
        }
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if exc.status_code == 404 and message == "Not Found":
            message = "No such resource."
        return JSONResponse(
            envelope(codes.get(exc.status_code, "http_error"), message),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(StatementError)
    async def _database_refused(request: Request, exc: StatementError) -> JSONResponse:
        # Input the database cannot store (an id beyond 64 bits, a NUL character in text)
        # or that breaks a constraint no service checked first: the client's fault, a 4xx.
        orig = getattr(exc, "orig", None)
        if isinstance(exc, DataError) or isinstance(orig, OverflowError | ValueError):
            return JSONResponse(
                envelope(
                    "invalid_value", "A value in the request is out of range or not storable."
                ),
                status_code=422,
            )
        if isinstance(exc, IntegrityError):
            return JSONResponse(
                envelope("conflict", "The request conflicts with existing data."), status_code=409
            )
        return await _unexpected(request, exc)

    @app.exception_handler(OverflowError)
    async def _overflow(_request: Request, _exc: OverflowError) -> JSONResponse:
        return JSONResponse(
            envelope("invalid_value", "A number in the request is out of range."), status_code=422
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return internal_error_response()
