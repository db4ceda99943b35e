"""Fast paths: a hot endpoint answered as soon as the app is called, ahead of the middleware
stack and FastAPI's per-request machinery (native telemetry, dependency solving, body
validation, response models), in front of its regular route.

    add_fast_path(app, method="POST", path="/api/v1/orders", handler=buy_fast)

``handler(request)`` returns a ``Response``, or ``None`` to hand the request (its body
replayed) to the whole app: every middleware, then the regular route of the same method and
path, which stays the one documented in OpenAPI and handles every case the fast path does not.

A fast path's answer gets what the middleware stack would have given it, done once here
instead of by one layer each: the request id (``X-Request-ID``, and in the log records made
while it is handled), the security headers, the access log line; an exception it raises is
answered by the app's handler for it (``kit/errors.py``: the one envelope). What the
stack would do differently is not taken: a request carrying the session cookie always goes
the regular way (the session middleware would load the session and refresh its cookie).
A middleware added to the app does not see the requests a fast path answers: whatever it
does, the fast path must do itself (as here for the request id and security headers).
``bounded=True``: the handler is counted by the in-flight cap
(``JUXING_MAX_INFLIGHT_REQUESTS``) while it runs; a handler that only queues work for a fixed
number of writers, holding no worker thread or connection, passes ``bounded=False``.

The app must be a ``FastPathApp``. Its fast paths' requests are not seen by FastAPI's native
OpenTelemetry instrumentation (which Juxing does not configure), only those they hand on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from fastapi import FastAPI
from starlette._exception_handler import _lookup_exception_handler
from starlette._utils import is_async_callable
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from juxing.kit.errors import internal_error_response
from juxing.kit.logging import REQUEST_ID_KEY, log_access, request_id, request_id_var
from juxing.kit.middleware import security_headers

log = logging.getLogger("juxing.fastroute")

FastHandler = Callable[[Request], Awaitable[Response | None]]


@dataclass(frozen=True, slots=True)
class FastPath:
    handler: FastHandler
    bounded: bool
    extra: list[tuple[bytes, bytes]]  # the security headers of its path


class FastPathApp(FastAPI):
    """A FastAPI app whose fast paths (``add_fast_path``) are answered as soon as the app is
    called, before FastAPI's and Starlette's own per-request work and the middleware.

    What the fast paths do in the stack's stead needs the app's settings from the start:
    ``session_cookie`` (the session middleware's cookie name), ``hsts`` (the security
    headers' HSTS) and ``inflight`` (the in-flight cap's semaphore, None without a cap)."""

    def __init__(
        self,
        *,
        session_cookie: str = "",
        hsts: bool = False,
        inflight: asyncio.Semaphore | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.session_cookie = session_cookie.encode()
        self.hsts = hsts
        self.inflight = inflight
        self.fast_paths: dict[tuple[str, str], FastPath] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = None
        if scope["type"] == "http":
            fast = self.fast_paths.get((scope["method"], scope["path"]))
        if fast is None or self._has_session(scope["headers"]):
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self  # (what Starlette gives every request)
        if self.root_path:
            scope["root_path"] = self.root_path
        started = time.perf_counter()
        # The id stays in the scope: a request handed on keeps it (kit/logging.py).
        rid = scope[REQUEST_ID_KEY] = request_id(scope["headers"])
        token = request_id_var.set(rid)
        try:
            request = Request(scope, receive)
            response = await self._answer(fast, request)
            if response is None:
                body = await request.body()
                await super().__call__(scope, _replay(body, receive), send)
                return
            present = {name for name, _value in response.raw_headers}
            response.raw_headers = [
                *response.raw_headers,
                *((k, v) for k, v in fast.extra if k not in present),
                (b"x-request-id", rid.encode()),
            ]
            await response(scope, receive, send)
            log_access(scope, response.status_code, started)
        finally:
            request_id_var.reset(token)

    async def _answer(self, fast: FastPath, request: Request) -> Response | None:
        """The handler's answer; an exception it raises is answered by the app's handler
        for it (as ExceptionMiddleware and ServerErrorMiddleware would)."""
        try:
            if fast.bounded and self.inflight is not None:
                async with self.inflight:
                    return await fast.handler(request)
            return await fast.handler(request)
        except Exception as exc:
            handler: Any = _lookup_exception_handler(cast(Any, self.exception_handlers), exc)
            if handler is None:  # pragma: no cover - install_error_handlers covers Exception
                log.exception("unhandled error on %s %s", request.method, request.url.path)
                return internal_error_response()
            if is_async_callable(handler):
                answer = await handler(request, exc)
            else:
                answer = await run_in_threadpool(handler, request, exc)
            return cast(Response, answer)

    def _has_session(self, headers: list[tuple[bytes, bytes]]) -> bool:
        """Whether the request carries the session cookie (parsed as Starlette does)."""
        name = self.session_cookie
        if not name:
            return False
        for header, value in headers:
            if header == b"cookie" and name in value:
                for pair in value.split(b";"):
                    if pair.partition(b"=")[0].strip() == name:
                        return True
        return False


def add_fast_path(
    app: FastAPI, *, method: str, path: str, handler: FastHandler, bounded: bool = True
) -> None:
    """Put a fast path in front of the regular route of ``method path``."""
    if not isinstance(app, FastPathApp):  # pragma: no cover - an installer error
        raise TypeError("fast paths need a FastPathApp")
    extra = security_headers(path, hsts=app.hsts)
    app.fast_paths[(method, path)] = FastPath(handler, bounded, extra)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` with the body the fast path already read given first."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
