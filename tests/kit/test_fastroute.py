"""kit/fastroute.py: a fast path answers as the middleware stack would have (request id,
security headers, access log, the error handlers' answers), and anything it declines goes
through the whole stack."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from juxing.kit.errors import Conflict, install_error_handlers
from juxing.kit.fastroute import FastPathApp, add_fast_path
from juxing.kit.logging import RequestIdMiddleware, request_id_var
from juxing.kit.middleware import InflightLimitMiddleware, SecurityHeadersMiddleware

seen: list[str] = []


async def fast(request: Request) -> Response | None:
    seen.append(request_id_var.get())
    what = request.query_params.get("what")
    if what == "decline":
        return None
    if what == "juxing":
        raise Conflict("Taken.", code="taken")
    if what == "integrity":
        raise IntegrityError("INSERT", {}, Exception("duplicate key"))
    if what == "boom":
        raise RuntimeError("boom")
    return JSONResponse({"path": "fast"})


@pytest.fixture
def app() -> FastPathApp:
    import asyncio

    app = FastPathApp(session_cookie="juxing_session", hsts=True, inflight=asyncio.Semaphore(4))
    install_error_handlers(app)
    app.add_middleware(SecurityHeadersMiddleware, hsts=True)
    assert app.inflight is not None
    app.add_middleware(InflightLimitMiddleware, semaphore=app.inflight)
    app.add_middleware(RequestIdMiddleware)

    @app.post("/thing")
    async def regular(request: Request) -> dict[str, object]:
        return {"path": "regular", "body": (await request.body()).decode()}

    add_fast_path(app, method="POST", path="/thing", handler=fast)
    seen.clear()
    return app


def _headers(r) -> dict[str, str]:
    return {k: v for k, v in r.headers.items() if k not in {"content-length", "x-request-id"}}


def test_a_fast_answer_carries_what_the_stack_adds(app):
    with TestClient(app) as c:
        fast_r = c.post("/thing", content=b"x")
        slow_r = c.post("/thing?what=decline", content=b"the body")
    assert fast_r.json() == {"path": "fast"}
    assert slow_r.json() == {"path": "regular", "body": "the body"}  # body replayed
    assert _headers(fast_r) == _headers(slow_r)
    assert fast_r.headers["strict-transport-security"] == "max-age=31536000"
    assert len(fast_r.headers["x-request-id"]) == 32
    assert seen[0] == fast_r.headers["x-request-id"]  # the handler's log records carry it


def test_an_incoming_request_id_is_kept_also_when_declined(app):
    with TestClient(app) as c:
        r = c.post("/thing", headers={"X-Request-ID": "abc-123"})
        declined = c.post("/thing?what=decline")
    assert r.headers["x-request-id"] == "abc-123"
    # the handler ran under the id the response carries, also when it handed the request on
    assert seen[-1] == declined.headers["x-request-id"]


@pytest.mark.parametrize(
    ("what", "status", "code"),
    [("juxing", 409, "taken"), ("integrity", 409, None), ("boom", 500, "internal_error")],
)
def test_a_fast_path_that_raises_is_answered_by_the_apps_handlers(app, what, status, code):
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.post(f"/thing?what={what}")
    assert r.status_code == status
    body = r.json()
    assert "error" in body
    if code is not None:
        assert body["error"]["code"] == code
    assert r.headers["x-content-type-options"] == "nosniff"
    assert len(r.headers["x-request-id"]) == 32


class _Lines(logging.Handler):
    """Each record with the request id in force when it was logged."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.getMessage(), request_id_var.get()))


def test_the_access_line_has_the_request_id(app):
    access = logging.getLogger("juxing.access")
    lines, old_level = _Lines(), access.level
    access.addHandler(lines)
    access.setLevel(logging.DEBUG)
    try:
        with TestClient(app) as c:
            c.post("/thing", headers={"X-Request-ID": "line-1"})
            c.post("/thing?what=decline", headers={"X-Request-ID": "line-2"})
    finally:
        access.removeHandler(lines)
        access.setLevel(old_level)
    assert lines.lines == [("POST /thing 200", "line-1"), ("POST /thing 200", "line-2")]


def test_a_request_with_the_session_cookie_goes_the_regular_way(app):
    with TestClient(app) as c:
        c.cookies.set("juxing_session", "anything")
        assert c.post("/thing").json()["path"] == "regular"
        c.cookies.clear()
        c.cookies.set("not_juxing_session", "x")  # another cookie whose name ends alike
        assert c.post("/thing").json()["path"] == "fast"
    assert len(seen) == 1  # the handler never saw the session's request
