"""Each role's main page with a week of activity behind it, in English and 简体中文: the
screenshots shown in the README (docs/screenshots/)."""

from __future__ import annotations

import pytest

from factories import PASSWORD
from web.browserkit import screenshot, sign_in
from web.world import add_history, build

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LOCALES = (("en-US", ""), ("zh-CN", "-zh"))


def test_main_pages_of_every_role_in_both_languages(pages, committed_db):
    with committed_db.session() as s:
        w = build(s, history_days=6)
        add_history(s, w, days=6, orders_count=40)
        emails = {
            "shopper": w.shopper.email,
            "creator": w.creator.email,
            "merchant": w.merchant.email,
            "operator": w.operator.email,
        }
    shots = {
        "shopper": ("/", "shopper-home-feed", True, "#feed .feed-item"),
        "creator": ("/studio", "creator-studio", False, "canvas#creator-chart"),
        "merchant": ("/merchant", "merchant-console", False, "canvas#sales-chart"),
        "operator": ("/ops", "operator-board", False, "canvas#gmv-chart"),
    }
    for role, (path, name, mobile, ready) in shots.items():
        for locale, suffix in LOCALES:
            page = pages.open(locale=locale, mobile=mobile)
            sign_in(page, emails[role], PASSWORD)
            page.goto(path)
            if locale.startswith("zh"):
                page.get_by_role("button", name="简体中文").click()
                page.wait_for_load_state("networkidle")
            assert page.locator("html").get_attribute("lang") == (
                "zh-CN" if locale.startswith("zh") else "en"
            )
            page.wait_for_selector(ready)
            if role == "shopper":  # the feed itself, each item with its "why this"
                page.evaluate(
                    "window.scrollTo(0, document.querySelector('h1.feed-title').offsetTop - 100)"
                )
            page.wait_for_timeout(300)  # charts draw without animation; let layout settle
            screenshot(page, name + suffix)
    # The charts carry the history: the creator's week of clicks is not all on one day.
    page = pages.open()
    sign_in(page, emails["creator"], PASSWORD)
    page.goto("/studio")
    assert page.locator("#stat-clicks .stat-value").inner_text().strip() == "120"
