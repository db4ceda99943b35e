"""Web pages. Pages call the same services as the API; templates hold no business logic."""

from __future__ import annotations

import importlib
import logging

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from juxing.web.pages import HERE, install_page_errors

log = logging.getLogger("juxing.web")

# Page modules, each with a ``router``: the shell first, then one module per role.
PAGE_MODULES: tuple[str, ...] = (
    "juxing.web.account",
    "juxing.web.shopper",
    "juxing.web.studio",
    "juxing.web.merchant",
    "juxing.web.operator",
)


def mount(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for name in PAGE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # A domain service this role's pages call is not installed in this build: serve
            # the other roles' pages and say so, rather than refusing to start.
            if not (exc.name or "").startswith("juxing."):
                raise
            log.warning("web pages %s are off: %s is missing", name, exc.name)
            continue
        app.include_router(module.router)
    install_page_errors(app)
