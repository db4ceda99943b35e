"""The shell in a real browser: each role signs in and lands on its page, in both languages."""

from __future__ import annotations

import pytest

from factories import PASSWORD, make_user
from juxing.models.accounts import Role
from web.browserkit import screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_every_role_signs_in_and_both_languages_render(pages, committed_db):
    with committed_db.session() as s:
        people = {
            "operator": make_user(s, Role.OPERATOR, name="Festival Ops").email,
            "merchant": make_user(s, Role.MERCHANT, name="Huaxi Cosmetics").email,
            "creator": make_user(s, Role.CREATOR, Role.SHOPPER, name="小美 Xiaomei").email,
        }
    landing = {"operator": "/ops", "merchant": "/merchant", "creator": "/studio"}
    heading = {
        "operator": "Operator console",
        "merchant": "Merchant console",
        "creator": "Creator studio",
    }
    for role, email in people.items():
        page = pages.open()
        sign_in(page, email, PASSWORD)
        assert page.url.endswith(landing[role])
        assert page.get_by_role("heading", level=1).inner_text() == heading[role]
        page.get_by_role("button", name="简体中文").click()
        page.wait_for_load_state("networkidle")
        assert page.locator("html").get_attribute("lang") == "zh-CN"
        assert page.get_by_role("link", name="推荐").is_visible()
        page.get_by_role("button", name="English").click()
        page.wait_for_load_state("networkidle")
        assert page.locator("html").get_attribute("lang") == "en"


def test_visitor_in_chinese_sees_chinese_sign_in(pages):
    page = pages.open(locale="zh-CN", mobile=True)
    page.goto("/signin")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.get_by_role("heading", level=1).inner_text() == "登录"
    assert page.get_by_label("邮箱").is_visible()
    # Keyboard users see where the focus is.
    page.locator("#email").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "password"
    ring = page.evaluate("getComputedStyle(document.activeElement).boxShadow")
    assert ring and ring != "none"
    screenshot(page, "signin-zh")
