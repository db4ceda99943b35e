"""Logging: request ids on every line, plain or JSON output."""

from __future__ import annotations

import contextvars
import json
import logging
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for extra in ("method", "path", "status", "duration_ms"):
            if hasattr(record, extra):
                data[extra] = getattr(record, extra)
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def configure_logging(level: str = "INFO", json_logs: bool = False) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(_RequestIdFilter())
    if json_logs:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    root = logging.getLogger("juxing")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


# Where a fast path (kit/fastroute.py) leaves the id it gave a request it hands on.
REQUEST_ID_KEY = "juxing.request_id"


def request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The request's id: a sane incoming ``X-Request-ID``, else a new one."""
    incoming = ""
    for name, value in headers:
        if name == b"x-request-id":
            incoming = value.decode("latin-1")
            break
    return incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex


def log_access(scope: Scope, status: int, started: float) -> None:
    """The access log line of a request (at DEBUG)."""
    access = logging.getLogger("juxing.access")
    if access.isEnabledFor(logging.DEBUG):
        access.debug(
            "%s %s %s",
            scope["method"],
            scope["path"],
            status,
            extra={
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )


class RequestIdMiddleware:
    """Gives each request an id (or keeps a sane incoming one), returns it and logs it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = scope.get(REQUEST_ID_KEY) or request_id(scope.get("headers", ()))
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status = 500

        async def _send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            log_access(scope, status, started)
            request_id_var.reset(token)
