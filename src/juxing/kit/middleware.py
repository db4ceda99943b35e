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


def security_headers(path: str, *, hsts: bool) -> list[tuple[bytes, bytes]]:
    """The headers every response carries (unless it set its own)."""
    csp = DOCS_CSP if path.startswith("/api/docs") else CSP
    extra = [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"strict-origin-when-cross-origin"),
        (b"content-security-policy", csp.encode()),
    ]
    if hsts:
        extra.append((b"strict-transport-security", b"max-age=31536000"))
    return extra


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = security_headers(scope["path"], hsts=self.hsts)

        async def _send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in extra if k not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, _send)


class InflightLimitMiddleware:
    """Caps the HTTP requests one process works on at once; the rest wait in the event loop.

    Without a cap, more concurrent requests than database connections make worker threads
    wait for connections held by requests that wait for a worker thread. Event streams
    (``Accept: text/event-stream``) are long-lived and hold no connection: they are not
    counted. (Fast paths answer ahead of this middleware; kit/fastroute.py holds the same
    ``semaphore`` for those that need it.)
    """

    def __init__(self, app: ASGIApp, *, semaphore: asyncio.Semaphore) -> None:
        self.app = app
        self.semaphore = semaphore

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or any(
            name == b"accept" and b"text/event-stream" in value
            for name, value in scope.get("headers", ())
        ):
            await self.app(scope, receive, send)
            return
        async with self.semaphore:
            await self.app(scope, receive, send)
