"""Browser fixtures: Debian's Chromium driven by Playwright, against a live server."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from juxing.app import create_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():  # type: ignore[no-untyped-def]
    """One headless Chromium for the session; every test gets a fresh context (profile)."""
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip("Debian's Chromium is not installed (run `make browser`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def web(settings, committed_db, live_server) -> str:  # type: ignore[no-untyped-def]
    """The app served over real HTTP against a database that really commits."""
    return live_server(create_app(settings, db=committed_db))


class Pages:
    """Opens browser pages and fails the test on any console error (CSP violations, JS)."""

    def __init__(self, browser, base_url: str) -> None:  # type: ignore[no-untyped-def]
        self.browser = browser
        self.base_url = base_url
        self.contexts: list = []  # type: ignore[type-arg]
        self.errors: list[str] = []

    def open(self, *, locale: str = "en-US", mobile: bool = False):  # type: ignore[no-untyped-def]
        viewport = {"width": 390, "height": 844} if mobile else {"width": 1280, "height": 860}
        context = self.browser.new_context(
            base_url=self.base_url,
            locale=locale,
            viewport=viewport,
            device_scale_factor=1,
            is_mobile=mobile,
            has_touch=mobile,
        )
        context.set_default_timeout(15_000)
        self.contexts.append(context)
        page = context.new_page()
        # Error pages (a refused form is a 4xx document) are expected; a failing script,
        # style, image or XHR is not, and neither is any console error (e.g. CSP).
        page.on(
            "console",
            lambda msg: (
                self.errors.append(msg.text)
                if msg.type == "error" and not msg.text.startswith("Failed to load resource")
                else None
            ),
        )
        page.on(
            "response",
            lambda r: (
                self.errors.append(f"{r.status} {r.url}")
                if r.status >= 400 and r.request.resource_type != "document"
                else None
            ),
        )
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def pages(browser, web) -> Iterator[Pages]:  # type: ignore[no-untyped-def]
    opener = Pages(browser, web)
    yield opener
    opener.close()
    assert opener.errors == [], f"browser console errors: {opener.errors}"
