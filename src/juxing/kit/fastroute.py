"""Fast paths: a hot endpoint answered on the event loop without FastAPI's per-request
machinery (dependency solving, body validation, response models), in front of its regular
route.

    add_fast_path(app, method="POST", path="/api/v1/orders", handler=buy_fast)

``handler(request)`` returns a ``Response``, or ``None`` to hand the request (its body
replayed) to the regular FastAPI route of the same method and path, which stays the one
documented in OpenAPI and handles every case the fast path does not. The fast route is
matched before every other route and runs inside the same middleware stack (request id,
security headers, sessions, in-flight limit) and error handlers: a handler may raise the
kit's ``JuxingError`` like any endpoint.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import Message, Receive, Scope, Send

from juxing.kit.middleware import InflightLimitMiddleware

FastHandler = Callable[[Request], Awaitable[Response | None]]


class FastRoute(BaseRoute):
    """Matches one method and path exactly; the regular route is its fallback."""

    def __init__(self, *, method: str, path: str, handler: FastHandler, app: FastAPI) -> None:
        self.method = method
        self.path = path
        self.handler = handler
        self.app = app
        self._fallback: BaseRoute | None = None

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        http = scope["type"] == "http"
        if http and scope["path"] == self.path and scope["method"] == self.method:
            return Match.FULL, {}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: object):  # type: ignore[no-untyped-def,unused-ignore]
        from starlette.routing import NoMatchFound

        raise NoMatchFound(name, path_params)

    def fallback(self, scope: Scope) -> BaseRoute:
        """The regular route for this method and path (found once, on first use)."""
        if self._fallback is None:
            for route in self.app.router.routes:
                if route is not self and route.matches(scope)[0] is Match.FULL:
                    self._fallback = route
                    break
            else:  # pragma: no cover - an installer error
                raise RuntimeError(f"no regular route for {self.method} {self.path}")
        return self._fallback

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = await self.handler(request)
        if response is not None:
            await response(scope, receive, send)
            return
        body = await request.body()  # already read by the handler when it looked at it
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        route = self.fallback(scope)
        _match, child = route.matches(scope)
        scope.update(child)
        semaphore = scope.pop(InflightLimitMiddleware.SCOPE_KEY, None)
        if semaphore is None:
            await route.handle(scope, replay, send)
            return
        async with semaphore:  # a regular request after all: counted as one
            await route.handle(scope, replay, send)


def add_fast_path(
    app: FastAPI, *, method: str, path: str, handler: FastHandler, bounded: bool = True
) -> None:
    """Put a fast path in front of the regular route of ``method path``.

    ``bounded=False``: the handler queues its work for a fixed number of writers and holds
    no worker thread or database connection while it waits, so its requests are not counted
    by the in-flight cap (``JUXING_MAX_INFLIGHT_REQUESTS``); a request it hands to the
    regular route is."""
    app.router.routes.insert(0, FastRoute(method=method, path=path, handler=handler, app=app))
    if not bounded:
        app.state.unbounded_routes.add((method, path))
