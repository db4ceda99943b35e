"""Security headers on every response."""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; "
    "object-src 'none'"
)
# The API docs page needs its own bundle's inline bootstrap; it gets a looser policy.
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; frame-ancestors 'none'; object-src 'none'"
)


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        csp = DOCS_CSP if path.startswith("/api/docs") else CSP

        async def _send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"strict-origin-when-cross-origin"),
                    (b"content-security-policy", csp.encode()),
                ]
                if self.hsts:
                    extra.append((b"strict-transport-security", b"max-age=31536000"))
                headers += [(k, v) for k, v in extra if k not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, _send)


class InflightLimitMiddleware:
    """Caps the HTTP requests one process works on at once; the rest wait in the event loop.

    Without a cap, more concurrent requests than database connections make worker threads
    wait for connections held by requests that wait for a worker thread. Event streams
    (``Accept: text/event-stream``) are long-lived and hold no connection: they are not counted.
    Nor are the requests of ``unbounded`` (method, path) pairs, fast paths that queue their
    work for a fixed number of writers (kit/fastroute.py); the semaphore is left in the scope
    (``SCOPE_KEY``) for the one that hands a request to a regular route after all.
    """

    SCOPE_KEY = "juxing.inflight"

    def __init__(
        self, app: ASGIApp, *, limit: int, unbounded: set[tuple[str, str]] | None = None
    ) -> None:
        self.app = app
        self.semaphore = asyncio.Semaphore(limit)
        self.unbounded = unbounded if unbounded is not None else set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or any(
            name == b"accept" and b"text/event-stream" in value
            for name, value in scope.get("headers", ())
        ):
            await self.app(scope, receive, send)
            return
        if (scope["method"], scope["path"]) in self.unbounded:
            scope[self.SCOPE_KEY] = self.semaphore
            await self.app(scope, receive, send)
            return
        async with self.semaphore:
            await self.app(scope, receive, send)
