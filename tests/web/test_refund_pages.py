"""Refund requests (退款申请) and live-only deals in the web UI, over HTTP (no browser):
the shopper asks on the order page, the shop approves or rejects in its console; a
live-only deal is bought from its live room, and the deal page says so."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from juxing.content import service as content
from juxing.deals import orders
from juxing.kit.time import utcnow
from juxing.models.orders import Order
from juxing.models.refund_requests import RefundRequest
from web.test_shell import csrf_of, sign_in
from web.world import build


def _field(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert match, f"no {name} field"
    return match.group(1)


def _paid_order(session, w, quantity: int = 2) -> Order:
    order = orders.reserve(
        session=session,
        ctx=orders.Buying(redis_client=None),
        shopper=w.shopper,
        deal_item_id=w.deal_item_id,
        quantity=quantity,
    )
    assert orders.mark_paid(
        session=session, ctx=orders.Buying(redis_client=None), order_id=order.id
    )
    session.commit()
    return order


def _requests(session, order_id: int) -> list[RefundRequest]:
    session.expire_all()
    return list(
        session.scalars(
            select(RefundRequest)
            .where(RefundRequest.order_id == order_id)
            .order_by(RefundRequest.id)
        )
    )


def test_shopper_asks_and_the_shop_approves_in_its_console(app, client, session):
    w = build(session)
    order = _paid_order(session, w)
    assert sign_in(client, w.shopper.email).status_code == 303
    page = client.get(f"/orders/{order.id}")
    assert page.status_code == 200
    assert "Request a refund" in page.text and f'action="/orders/{order.id}/refund-requests"' in (
        page.text
    )
    form = {
        "csrf_token": csrf_of(page.text),
        "refund_key": _field(page.text, "refund_key"),
        "line_id": _field(page.text, "line_id"),
        "quantity": "1",
        "reason": "damaged",
        "note": "The cap was cracked",
    }
    first = client.post(f"/orders/{order.id}/refund-requests", data=form, follow_redirects=False)
    again = client.post(f"/orders/{order.id}/refund-requests", data=form, follow_redirects=False)
    assert first.status_code == again.status_code == 303, first.text
    assert first.headers["location"] == f"/orders/{order.id}"
    (req,) = _requests(session, order.id)  # a double submit asks once
    assert (req.status, req.amount_minor, req.reason) == ("open", 9_900, "damaged")
    page = client.get(f"/orders/{order.id}").text
    assert "Waiting for the shop" in page and "The cap was cracked" in page
    assert "Withdraw the request" in page
    assert "Request a refund" not in page, "one open request at a time"

    with TestClient(app) as shop:
        assert sign_in(shop, w.merchant.email).status_code == 303
        console = shop.get("/merchant/refund-requests")
        assert console.status_code == 200
        assert f'data-refund-request="{req.id}"' in console.text
        assert "It arrived damaged" in console.text and "¥99.00" in console.text
        listing = shop.get("/merchant/orders").text
        assert "Refund requested" in listing and 'href="/merchant/refund-requests"' in listing
        r = shop.post(
            f"/merchant/refund-requests/{req.id}/approve",
            data={"csrf_token": csrf_of(console.text)},
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"] == "/merchant/refund-requests"
        # Approving again is refused (409 page), nothing is refunded twice.
        twice = shop.post(
            f"/merchant/refund-requests/{req.id}/approve",
            data={"csrf_token": csrf_of(console.text)},
        )
        assert twice.status_code == 409
        done = shop.get("/merchant/refund-requests?status=approved").text
        assert f'data-refund-request="{req.id}" data-status="approved"' in done
        shop_inbox = shop.get("/inbox").text
        assert "A shopper asked for a refund" in shop_inbox
        assert f'href="/orders/{order.id}"' in shop_inbox
    (req,) = _requests(session, order.id)
    assert req.status == "approved" and req.refund_id is not None
    o = session.get(Order, order.id)
    assert o.refunded_minor == 9_900 and o.status == "paid"
    page = client.get(f"/orders/{order.id}").text
    assert "Approved" in page and "Request a refund" in page, "the other unit may be asked for"
    inbox = client.get("/inbox").text
    assert "Your refund request was approved" in inbox and f'href="/orders/{order.id}"' in inbox


def test_shop_rejects_and_shopper_withdraws(app, client, session):
    w = build(session)
    order = _paid_order(session, w, quantity=1)
    sign_in(client, w.shopper.email)
    page = client.get(f"/orders/{order.id}").text
    form = {
        "csrf_token": csrf_of(page),
        "refund_key": _field(page, "refund_key"),
        "line_id": _field(page, "line_id"),
        "quantity": "1",
        "reason": "changed_mind",
    }
    assert client.post(f"/orders/{order.id}/refund-requests", data=form).status_code == 200
    (req,) = _requests(session, order.id)
    with TestClient(app) as shop:
        sign_in(shop, w.merchant.email)
        console = shop.get("/merchant/refund-requests").text
        r = shop.post(
            f"/merchant/refund-requests/{req.id}/reject",
            data={"csrf_token": csrf_of(console), "reason": "Opened cosmetics cannot be returned"},
            follow_redirects=False,
        )
        assert r.status_code == 303
    page = client.get(f"/orders/{order.id}").text
    assert "Rejected" in page and "Opened cosmetics cannot be returned" in page
    # Ask again, then withdraw it.
    form["refund_key"] = _field(page, "refund_key")
    form["csrf_token"] = csrf_of(page)
    client.post(f"/orders/{order.id}/refund-requests", data=form)
    second = _requests(session, order.id)[-1]
    assert second.status == "open"
    r = client.post(
        f"/refund-requests/{second.id}/cancel",
        data={"csrf_token": csrf_of(page)},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == f"/orders/{order.id}"
    assert [x.status for x in _requests(session, order.id)] == ["rejected", "cancelled"]
    assert "Withdrawn" in client.get(f"/orders/{order.id}").text
    assert session.get(Order, order.id).refunded_minor == 0


def test_refund_form_refusals_and_chinese(client, session):
    w = build(session)
    order = _paid_order(session, w)
    sign_in(client, w.shopper.email)
    page = client.get(f"/orders/{order.id}").text
    base = {
        "csrf_token": csrf_of(page),
        "refund_key": _field(page, "refund_key"),
        "line_id": _field(page, "line_id"),
        "reason": "damaged",
    }
    none = client.post(f"/orders/{order.id}/refund-requests", data={**base, "quantity": "0"})
    assert none.status_code == 422 and "Choose at least one unit" in none.text
    too_many = client.post(f"/orders/{order.id}/refund-requests", data={**base, "quantity": "3"})
    assert too_many.status_code == 422 and "Only 2 unit(s)" in too_many.text
    bad_reason = client.post(
        f"/orders/{order.id}/refund-requests", data={**base, "quantity": "1", "reason": "x"}
    )
    assert bad_reason.status_code == 422
    assert session.scalar(select(func.count()).where(RefundRequest.order_id == order.id)) == 0
    w.shopper.locale = "zh-CN"
    session.commit()
    zh = client.get(f"/orders/{order.id}").text
    assert "申请退款" in zh and "商品破损" in zh and "提交申请" in zh
    # The shop's console is for merchants only.
    assert client.get("/merchant/refund-requests").status_code == 403


def test_live_only_deal_is_bought_from_its_live_room(client, session):
    w = build(session)
    room = content.create_room(
        session=session,
        user=w.creator,
        data={
            "title": "Serum night",
            "description": "Only tonight",
            "scheduled_at": utcnow() + timedelta(minutes=5),
            "items": [
                {"product_id": w.product_id, "deal_item_id": w.deal_item_id, "live_only": True}
            ],
        },
    )
    session.commit()
    sign_in(client, w.shopper.email)
    deal = client.get(f"/deals/{w.deal_item_id}").text
    assert "Live-room exclusive" in deal and f'href="/live/{room.id}"' in deal
    assert f'action="/deals/{w.deal_item_id}/buy"' not in deal, "no button that would fail"
    scheduled = client.get(f"/live/{room.id}").text
    assert "On sale when the room is live" in scheduled
    assert f'action="/deals/{w.deal_item_id}/buy"' not in scheduled
    # The post's card and its polled partial link to the deal page instead of a failing button.
    for path in (f"/posts/{w.post_id}", f"/posts/{w.post_id}/cards"):
        card = client.get(path).text
        assert "Live-room exclusive" in card, path
        assert f'action="/deals/{w.deal_item_id}/buy"' not in card, path

    content.start_room(session=session, user=w.creator, room_id=room.id)
    session.commit()
    deal = client.get(f"/deals/{w.deal_item_id}").text
    assert "Buy in the live room" in deal
    live = client.get(f"/live/{room.id}").text
    assert f'name="live_room_id" value="{room.id}"' in live
    form = {
        "csrf_token": csrf_of(live),
        "buy_key": _field(live, "buy_key"),
        "quantity": "1",
        "live_room_id": _field(live, "live_room_id"),
    }
    bought = client.post(f"/deals/{w.deal_item_id}/buy", data=form, follow_redirects=False)
    assert bought.status_code == 303 and bought.headers["location"].startswith("/orders/")
    # Without the room (e.g. a hand-made form) the engine refuses: live only.
    form.pop("live_room_id")
    form["buy_key"] = "handmade-key-1"
    refused = client.post(f"/deals/{w.deal_item_id}/buy", data=form)
    assert refused.status_code == 422 and "live room" in refused.text
    orders_count = session.scalar(select(func.count()).where(Order.shopper_id == w.shopper.id))
    assert orders_count == 1
