"""The creator's journey in a real browser: write a post in the Markdown editor, pick a product
card, publish it (straight away, or after an operator's review), get the tracking link, and
see a shopper's click and the pending commission of the order that followed."""

from __future__ import annotations

import re

import pytest

from factories import PASSWORD
from juxing.content import service as content
from juxing.models.content import ModerationCase
from web.browserkit import sign_in
from web.world import build

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _approve_if_held(committed_db, post_id: int, operator_id: int) -> None:  # type: ignore[no-untyped-def]
    """Moderation may hold a post for review: an operator approves it (the operator's own
    browser journey is in test_browser_ops)."""
    with committed_db.session() as s:
        case = (
            s.query(ModerationCase)
            .filter(ModerationCase.post_id == post_id, ModerationCase.status == "open")
            .one_or_none()
        )
        if case is not None:
            from juxing.models.accounts import User

            content.decide_case(
                session=s,
                operator=s.get(User, operator_id),
                case_id=case.id,
                approve=True,
                reason="ok",
            )


def test_creator_publishes_a_post_with_a_card_and_sees_click_and_commission(pages, committed_db):
    with committed_db.session() as s:
        w = build(s)
        creator_email, shopper_email, operator_id = w.creator.email, w.shopper.email, w.operator.id

    studio = pages.open()
    sign_in(studio, creator_email, PASSWORD)
    assert studio.url.endswith("/studio")
    studio.get_by_role("link", name="Write a post").first.click()
    studio.wait_for_url("**/studio/posts/new")
    studio.get_by_label("Title").fill("Three serums for winter")
    studio.get_by_label("Summary").fill("What I use when the air is dry")
    studio.get_by_label("Body (Markdown)").fill("## Why peony\n\nIt is **light** and calm.")
    studio.wait_for_selector("#preview h2")  # the live Markdown preview
    assert "light" in studio.locator("#preview strong").inner_text()
    studio.get_by_label(re.compile("Peony Serum")).first.check()
    studio.get_by_role("button", name="Publish").click()
    studio.wait_for_url(re.compile(r".*/studio/posts/\d+$"))
    post_id = int(studio.url.rsplit("/", 1)[1])
    status = studio.locator("#post-status").inner_text().strip()
    assert status in {"Published", "Pending review"}
    if status == "Pending review":
        assert studio.locator("#review-note").is_visible()
        _approve_if_held(committed_db, post_id, operator_id)
        studio.reload()
        assert studio.locator("#post-status").inner_text().strip() == "Published"

    studio.get_by_role("button", name="Get my tracking link").click()
    studio.wait_for_load_state("networkidle")
    link_url = studio.get_by_label("Your tracking link").input_value()
    assert "/t/" in link_url

    # A shopper clicks the link, lands on the post and buys from its product card.
    shopper = pages.open(mobile=True)
    sign_in(shopper, shopper_email, PASSWORD)
    shopper.goto(link_url)
    shopper.wait_for_url(f"**/posts/{post_id}")
    shopper.locator(".product-card").get_by_role("button", name="Buy now").click()
    shopper.wait_for_url("**/orders/*")
    shopper.get_by_role("button", name="Pay now").click()
    shopper.get_by_role("button", name="Confirm payment").click()
    shopper.wait_for_url("**/orders/*")
    assert shopper.locator("#order-status").inner_text().strip() == "Paid"

    studio.goto("/studio")
    assert studio.locator("#stat-clicks .stat-value").inner_text().strip() == "1"
    pending = studio.locator("#stat-pending .stat-value").inner_text().strip()
    assert pending != "¥0.00" and pending.startswith("¥")
    assert "Pending" in studio.locator("#commissions").inner_text()
    studio.goto("/studio/links")
    assert studio.locator("#links td.clicks").first.inner_text().strip() == "1"
    studio.goto("/studio/earnings")
    assert "¥99.00" in studio.locator("#statement").inner_text()

    studio.get_by_role("button", name="简体中文").click()
    studio.goto("/studio")
    assert studio.locator("html").get_attribute("lang") == "zh-CN"
