"""The ASGI application: ``create_app()`` wires settings, database, routers and jobs."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from juxing import __version__
from juxing.accounts.endpoints import router as accounts_router
from juxing.config import Settings, get_settings
from juxing.kit.db import Database
from juxing.kit.errors import install_error_handlers
from juxing.kit.fastroute import FastPathApp
from juxing.kit.logging import RequestIdMiddleware, configure_logging
from juxing.kit.middleware import InflightLimitMiddleware, SecurityHeadersMiddleware
from juxing.kit.redis import make_redis

log = logging.getLogger("juxing.app")

API_PREFIX = "/api/v1"
SESSION_COOKIE = "juxing_session"


def api_routers() -> list[APIRouter]:
    """Every domain's endpoints; each is mounted under ``/api/v1``. (Included into the app
    one by one rather than through one ``/api/v1`` router: each level of included routers
    is walked again when a request is matched.)"""
    from juxing.analytics.endpoints import router as analytics_router  # issue 7
    from juxing.catalog.endpoints import router as catalog_router  # issue 3: deals
    from juxing.commission.endpoints import router as commission_router  # issue 6
    from juxing.content.endpoints import router as content_router  # issue 4: content
    from juxing.deals.endpoints import router as deals_router  # issue 3: deals
    from juxing.deals.refund_endpoints import router as refund_requests_router  # issue 3
    from juxing.feed.endpoints import router as feed_router  # issue 5: feed
    from juxing.marketplace.endpoints import router as marketplace_router  # issue 7
    from juxing.search.endpoints import router as search_router  # issue 4: search

    # Routes are matched one by one, in this order: the busiest first (the home feed, then
    # buying). No two of these routers have paths that could match the same request.
    return [
        feed_router,
        deals_router,
        commission_router,
        content_router,
        catalog_router,
        search_router,
        accounts_router,
        marketplace_router,
        analytics_router,
        refund_requests_router,
    ]


def create_app(settings: Settings | None = None, db: Database | None = None) -> FastAPI:
    """Build the app. ``db`` may be passed in (tests share one connection)."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from juxing.worker.runner import start_inprocess_jobs

        if owns_db and settings.is_sqlite:
            from juxing.kit.migrate import upgrade

            upgrade(settings.effective_database_url)
        stop_jobs = start_inprocess_jobs(app) if settings.inprocess_jobs else None
        # Everything loaded so far lives as long as the process: keep the collector from
        # walking it again and again (full collections would pause requests for many ms).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if stop_jobs is not None:
                stop_jobs()
            if getattr(app.state, "content_live_hub", None) is not None:  # issue 4: content
                await app.state.content_live_hub.close()  # issue 4: live-room streams
            if getattr(app.state, "buy_writer", None) is not None:  # issue 3: fast buy path
                app.state.buy_writer.stop()
            if getattr(app.state, "feed_engine", None) is not None:  # issue 5: buffered writes
                app.state.feed_engine.stop()
            if app.state.redis is not None:
                app.state.redis.close()
            if owns_db:
                app.state.db.dispose()

    owns_db = db is None
    if db is None:
        if settings.is_sqlite:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(
            settings.effective_database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
        )

    app = FastPathApp(
        # what the fast paths (kit/fastroute.py) do in the session and security layers' stead
        session_cookie=SESSION_COOKIE,
        hsts=settings.secure_cookies,
        inflight=(
            asyncio.Semaphore(settings.max_inflight_requests)
            if settings.max_inflight_requests
            else None
        ),
        title="Juxing (聚星)",
        version=__version__,
        summary="Content-commerce engine: deals, shoppable content, personalized feed, commission.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.redis = make_redis(settings.redis_url) if settings.redis_url else None

    install_error_handlers(app)
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key,
        session_cookie=SESSION_COOKIE,
        max_age=settings.session_max_age_s,
        same_site="lax",
        https_only=settings.secure_cookies,
    )
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.secure_cookies)
    if app.inflight is not None:
        app.add_middleware(InflightLimitMiddleware, semaphore=app.inflight)
    app.add_middleware(RequestIdMiddleware)

    _mount_health(app)  # first: probes are cheap and stay cheap
    for router in api_routers():
        app.include_router(router, prefix=API_PREFIX)
    from juxing.commission.endpoints import click_router  # issue 6: commission

    app.include_router(click_router)  # issue 6: commission
    if settings.fast_paths:
        _install_fast_paths(app)
    _mount_docs(app)
    _mount_web(app)
    return app


# Modules whose ``install(app)`` puts a fast path (kit/fastroute.py) in front of a hot route.
FAST_PATH_MODULES = (
    "juxing.feed.fastfeed",  # issue 5: GET /api/v1/feed
    "juxing.deals.fastbuy",  # issue 3: POST /api/v1/orders
)


def _install_fast_paths(app: FastAPI) -> None:
    import importlib

    for name in FAST_PATH_MODULES:
        importlib.import_module(name).install(app)


def _mount_docs(app: FastAPI) -> None:
    static = Path(fastapi_offline.__file__).parent / "static"
    app.mount("/api/docs-static", StaticFiles(directory=static), name="docs-static")

    @app.get("/api/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/api/openapi.json",
            title="Juxing API",
            swagger_js_url="/api/docs-static/swagger-ui-bundle.js",
            swagger_css_url="/api/docs-static/swagger-ui.css",
            swagger_favicon_url="/api/docs-static/favicon.png",
        )


def _mount_health(app: FastAPI) -> None:
    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """The process is up (answered on the event loop: no worker thread, no I/O)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    def readyz(request: Request) -> JSONResponse:
        """The database (and Redis, when configured) answer."""
        checks: dict[str, str] = {}
        ok = True
        try:
            request.app.state.db.ping()
            checks["database"] = "ok"
        except Exception as exc:  # report, don't crash: this is the readiness probe
            checks["database"] = f"error: {type(exc).__name__}"
            ok = False
        if request.app.state.redis is not None:
            try:
                request.app.state.redis.ping()
                checks["redis"] = "ok"
            except Exception as exc:
                checks["redis"] = f"error: {type(exc).__name__}"
                ok = False
        body = {"status": "ok" if ok else "unavailable", "checks": checks}
        return JSONResponse(body, status_code=200 if ok else 503)


def _mount_web(app: FastAPI) -> None:
    from juxing.web.routes import mount

    mount(app)
