"""The issue's journeys in a real browser: merchant sign-up and operator approval, the
traffic policy editor with its preview. Screenshots of each role's main page go to
docs/screenshots/."""

from __future__ import annotations

from datetime import timedelta

import pytest

from factories import PASSWORD, make_user
from juxing.catalog import service as catalog
from juxing.deals import service as deals
from juxing.kit.time import utcnow
from juxing.models.accounts import Role
from juxing.models.deals import Campaign
from web.browserkit import screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_merchant_signs_up_a_campaign_and_operator_approves_it(pages, committed_db):
    now = utcnow()
    with committed_db.session() as s:
        operator = make_user(s, Role.OPERATOR, name="Festival Ops")
        merchant_user = make_user(s, Role.MERCHANT, name="Huaxi Cosmetics")
        festival = deals.create_festival(
            session=s,
            user=operator,
            name="Star Festival",
            name_zh="聚星节",
            theme="Deep discounts from small shops",
            starts_at=now + timedelta(hours=2),
            ends_at=now + timedelta(days=3),
        )
        shop = catalog.create_merchant(session=s, owner=merchant_user, name="Huaxi Cosmetics")
        catalog.create_product(
            session=s,
            user=merchant_user,
            merchant_id=shop.id,
            title="Peony Serum",
            skus=[{"name": "30 ml", "list_price_minor": 19900, "stock": 500}],
        )
        op_email, merchant_email, festival_id = operator.email, merchant_user.email, festival.id

    page = pages.open()
    sign_in(page, merchant_email, PASSWORD)
    assert page.url.endswith("/merchant")
    page.get_by_role("link", name="Sign up for a festival").click()
    page.get_by_label("Festival").select_option(str(festival_id))
    page.get_by_label("Campaign title").fill("Peony Serum at half price")
    page.get_by_role("button", name="Start sign-up").click()
    page.wait_for_url("**/merchant/campaigns/*")
    assert page.locator("#campaign-status").inner_text().strip() == "Draft"
    page.get_by_label("Deal price (¥)").fill("99.00")
    page.get_by_label("Deal stock").fill("200")
    page.get_by_role("button", name="Add deal item").click()
    page.wait_for_load_state("networkidle")
    assert "¥99.00" in page.locator("main table").inner_text()
    page.get_by_role("button", name="Submit for review").click()
    page.wait_for_load_state("networkidle")
    assert page.locator("#campaign-status").inner_text().strip() == "Submitted"

    ops = pages.open()
    sign_in(ops, op_email, PASSWORD)
    assert ops.url.endswith("/ops")
    ops.get_by_role("link", name="Approvals").click()
    card = ops.locator("article", has_text="Peony Serum at half price")
    card.get_by_role("button", name="Approve").click()
    ops.wait_for_load_state("networkidle")
    assert "Peony Serum at half price" not in ops.locator("main").inner_text()

    with committed_db.session() as s:
        status = s.query(Campaign.status).filter(Campaign.festival_id == festival_id).scalar()
    assert status == "scheduled"
    page.reload()
    assert page.locator("#campaign-status").inner_text().strip() == "Scheduled"

    ops.goto("/ops")
    assert ops.locator("canvas#sold-chart").is_visible()

    # A shopper on a phone sees the approved deal with its countdown and stock bar.
    phone = pages.open(mobile=True)
    phone.goto("/")
    tile = phone.locator(".strip a.tile", has_text="Peony Serum")
    assert "¥99.00" in tile.inner_text()
    assert tile.locator(".countdown .cd-value").inner_text().count(":") == 2
    screenshot(phone, "shopper-festival-deal-tile")
    tile.click()
    phone.wait_for_url("**/deals/*")
    assert phone.locator(".stock").get_attribute("aria-valuenow") == "0"
    phone.get_by_role("button", name="简体中文").click()
    phone.wait_for_load_state("networkidle")
    assert "距开始" in phone.locator("main").inner_text()
    screenshot(phone, "shopper-deal-zh")


def test_operator_changes_the_traffic_policy_and_sees_the_preview(pages, committed_db):
    with committed_db.session() as s:
        operator = make_user(s, Role.OPERATOR, name="Festival Ops")
        for _ in range(3):
            make_user(s, Role.SHOPPER)
        email = operator.email
    page = pages.open()
    sign_in(page, email, PASSWORD)
    page.get_by_role("link", name="Traffic policy").click()
    page.get_by_label("Long-tail share (0–1)").fill("0.40")
    page.get_by_role("button", name="Preview").click()
    page.wait_for_load_state("networkidle")
    table = page.locator("#preview-table")
    assert table.is_visible()
    assert "With these rules" in (table.text_content() or "")
    assert page.get_by_label("Long-tail share (0–1)").input_value() == "0.4"
    screenshot(page, "operator-traffic-preview")
    page.get_by_role("button", name="Save policy").click()
    page.wait_for_url("**/ops/traffic?saved=1")
    assert page.get_by_label("Long-tail share (0–1)").input_value() == "0.4"
    # A bad value is refused with its reason, and nothing is saved.
    page.get_by_label("Long-tail share (0–1)").fill("0.95")
    page.get_by_label("New-creator share (0–1)").fill("0.5")
    page.get_by_role("button", name="Save policy").click()
    page.wait_for_load_state("networkidle")
    assert "more than the whole window" in page.locator("main").inner_text()
    page.goto("/ops/traffic")
    assert page.get_by_label("Long-tail share (0–1)").input_value() == "0.4"
