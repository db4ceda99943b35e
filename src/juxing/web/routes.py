"""Web pages. Pages call the same services as the API; templates hold no business logic."""

from __future__ import annotations

import importlib

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from juxing.web.pages import HERE, install_page_errors

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
        # Every domain has landed: a page module that does not import is a bug, and the app
        # refuses to start rather than serve a UI with a role missing.
        app.include_router(importlib.import_module(name).router)
    install_page_errors(app)
