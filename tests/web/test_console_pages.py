"""Operator and merchant console pages over HTTP (no browser): moderation queue, fraud review,
payouts, the board's charts; merchant orders (ship, refund), commission statement, briefs."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from juxing.content import service as content
from juxing.deals import orders
from juxing.kit.time import utcnow
from juxing.marketplace import service as marketplace
from juxing.models.content import ModerationCase, Post
from juxing.models.orders import Order
from web.test_shell import csrf_of, sign_in
from web.world import build


def _paid_order(session, w) -> Order:  # type: ignore[no-untyped-def]
    from juxing.deals.payments import SimulatedProvider

    ctx = orders.Buying(redis_client=None)
    order = orders.reserve(
        session=session, ctx=ctx, shopper=w.shopper, deal_item_id=w.deal_item_id, quantity=1
    )
    provider = SimulatedProvider("test-secret")
    payment = orders.start_payment(
        session=session, provider=provider, user=w.shopper, order_id=order.id
    )
    body, signature = provider.callback(
        provider_ref=payment.provider_ref,
        outcome="succeeded",
        amount_minor=payment.amount_minor,
        currency=payment.currency,
    )
    orders.handle_callback(
        session=session, ctx=ctx, provider=provider, body=body, signature=signature
    )
    session.flush()
    return order


def test_operator_pages_render_with_charts(client, session):
    w = build(session)
    session.commit()
    sign_in(client, w.operator.email)
    for path in ("/ops", "/ops/moderation", "/ops/fraud", "/ops/payouts", "/ops/campaigns"):
        r = client.get(path)
        assert r.status_code == 200, (path, r.text[:300])
    board = client.get("/ops").text
    spec = re.search(r'<script type="application/json" id="gmv-chart-data">(.+?)</script>', board)
    assert spec is not None
    data = json.loads(spec.group(1))
    assert data["type"] == "bar" and data["data"]["datasets"][0]["label"] == "GMV (¥)"


def test_operator_decides_a_moderation_case(client, session):
    w = build(session)
    content.add_banned_term(session=session, operator=w.operator, term="miracle")
    post = content.create_post(
        session=session,
        user=w.creator,
        data={"type": "article", "title": "A miracle serum", "body_markdown": "miracle!"},
    )
    content.publish_post(session=session, user=w.creator, post_id=post.id)
    session.commit()
    case = session.query(ModerationCase).filter_by(post_id=post.id, status="open").one()
    sign_in(client, w.operator.email)
    page = client.get("/ops/moderation").text
    assert "A miracle serum" in page
    token = csrf_of(page)
    refused = client.post(f"/ops/moderation/{case.id}/reject", data={"csrf_token": token})
    assert refused.status_code == 422  # a rejection needs a reason
    client.post(
        f"/ops/moderation/{case.id}/reject",
        data={"csrf_token": token, "reason": "Claims we cannot check"},
    )
    session.expire_all()
    assert session.get(Post, post.id).status == "rejected"


def test_merchant_ships_refunds_and_sees_commission_and_briefs(client, session):
    w = build(session)
    order = _paid_order(session, w)
    marketplace.create_brief(
        session=session,
        user=w.merchant,
        merchant_id=w.merchant_id,
        title="Review the serum",
        description="",
        deliverable="post",
        post_type=None,
        commission_rate_bp=1000,
        fixed_fee_minor=0,
        budget_minor=0,
        currency="CNY",
        deadline=utcnow() + timedelta(days=3),
        wanted_segments=[],
        items=[marketplace.ItemSpec(product_id=w.product_id)],
    )
    session.commit()
    sign_in(client, w.merchant.email)
    for path in ("/merchant", "/merchant/orders", "/merchant/commission", "/merchant/briefs"):
        r = client.get(path)
        assert r.status_code == 200, (path, r.text[:300])
    page = client.get("/merchant/orders").text
    assert f'data-order="{order.id}"' in page
    token = csrf_of(page)
    client.post(f"/merchant/orders/{order.id}/ship", data={"csrf_token": token})
    session.expire_all()
    assert session.get(Order, order.id).status == "shipped"
    client.post(
        f"/merchant/orders/{order.id}/refund", data={"csrf_token": token, "reason": "Damaged"}
    )
    session.expire_all()
    refunded = session.get(Order, order.id)
    assert refunded.refunded_minor == refunded.total_minor
    assert "Review the serum" in client.get("/merchant/briefs").text


def test_merchant_posts_a_brief_from_the_form(client, session):
    w = build(session)
    session.commit()
    sign_in(client, w.merchant.email)
    page = client.get("/merchant/briefs").text
    deadline = (utcnow() + timedelta(days=4)).strftime("%Y-%m-%dT%H:%M")
    r = client.post(
        "/merchant/briefs",
        data={
            "csrf_token": csrf_of(page),
            "merchant_id": w.merchant_id,
            "title": "Winter skincare posts",
            "product_id": w.product_id,
            "commission_rate": "12.5",
            "fixed_fee": "0",
            "budget": "0",
            "deadline": deadline,
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    briefs, _ = marketplace.list_briefs(session=session, user=w.merchant, mine=True)
    assert [(b.title, b.commission_rate_bp) for b in briefs] == [("Winter skincare posts", 1250)]
