"""The shopper's journey in a real browser (a phone-sized Chromium): find a creator's post by
search, follow the creator, buy the deal from the post's product card, pay at the sandbox
checkout and see the order; a live room that updates over server-sent events."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from factories import PASSWORD, bearer
from juxing.content import service as content
from juxing.kit.time import utcnow
from juxing.models.orders import Order
from web.browserkit import screenshot, sign_in
from web.world import build

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_shopper_finds_a_post_follows_the_creator_buys_and_sees_the_order(pages, committed_db):
    with committed_db.session() as s:
        w = build(s, post_title="Peony serum: two weeks later")
        shopper_email, post_id = w.shopper.email, w.post_id

    page = pages.open(mobile=True)
    sign_in(page, shopper_email, PASSWORD)
    page.goto("/")
    assert page.locator("#feed .feed-item .why").count() > 0  # every item says why

    # Find the creator's post by search.
    page.get_by_label("Search").first.fill("peony serum")
    page.locator("form.searchbar button[type=submit]").first.click()
    page.wait_for_url("**/search?*")
    page.locator("#results a", has_text="two weeks later").click()
    page.wait_for_url(f"**/posts/{post_id}")

    # Follow the creator from the post.
    page.get_by_role("button", name="Follow", exact=True).click()
    page.wait_for_url(f"**/posts/{post_id}")
    assert page.get_by_role("button", name="Following", exact=True).is_visible()

    # Buy the deal from the post's product card, pay at the sandbox checkout.
    card = page.locator(".product-card", has_text="Peony Serum")
    assert "¥99.00" in card.inner_text()
    card.get_by_role("button", name="Buy now").click()
    page.wait_for_url("**/orders/*")
    page.get_by_role("button", name="Pay now").click()
    page.wait_for_url("**/checkout/*")
    assert "¥99.00" in page.locator("main h1").inner_text()
    page.get_by_role("button", name="Confirm payment").click()
    page.wait_for_url("**/orders/*")
    assert page.locator("#order-status").inner_text().strip() == "Paid"
    order_id = int(page.url.rsplit("/", 1)[1])

    page.get_by_role("link", name="Orders", exact=True).click()
    page.wait_for_url("**/orders")
    assert f"#{order_id}" in page.locator("#orders").inner_text()
    screenshot(page, "shopper-orders")

    with committed_db.session() as s:
        order = s.get(Order, order_id)
        assert order is not None and order.status == "paid" and order.total_minor == 9900

    # The creator's storefront knows the new follower; the inbox lists whom the shopper follows.
    page.goto("/inbox")
    assert "Meimei" in page.locator("main").inner_text()

    # The same home feed in Chinese.
    page.goto("/")
    page.get_by_role("button", name="简体中文").click()
    page.wait_for_load_state("networkidle")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator("h1.feed-title").inner_text() == "推荐"


def test_live_room_updates_without_reload(pages, committed_db, web):
    with committed_db.session() as s:
        w = build(s)
        room = content.create_room(
            session=s,
            user=w.creator,
            data={
                "title": "Serum night",
                "description": "Ask me anything",
                "scheduled_at": utcnow() + timedelta(minutes=5),
                "items": [{"product_id": w.product_id, "deal_item_id": w.deal_item_id}],
            },
        )
        room_id, headers = room.id, bearer(s, w.creator)
        s.flush()
        item_id = content.load_room(s, room_id).items[0].id

    page = pages.open(mobile=True)
    page.goto(f"/live/{room_id}")
    page.wait_for_selector(".live-room[data-connected-live='1']")
    assert page.locator(".live-status-text").inner_text() == "Scheduled"

    with httpx.Client(base_url=web, headers=headers, timeout=10) as api:
        assert api.post(f"/api/v1/live-rooms/{room_id}/start").status_code == 200
        page.wait_for_selector(".live-room[data-room-status='live']")
        assert (
            api.post(f"/api/v1/live-rooms/{room_id}/pin", json={"item_id": item_id}).status_code
            == 200
        )
    page.wait_for_selector(f".live-room[data-pinned='{item_id}']")
    assert "Peony Serum" in page.locator(".pinned-title").inner_text()
    assert page.locator(f"[data-room-item='{item_id}']").get_attribute("class").count("is-pinned")
    screenshot(page, "shopper-live-room")
