"""Buying over HTTP: reserve, pay (signed callbacks), cancel, timeout release, refunds,
receipt, and the clear 4xx of every rule."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from juxing.deals import orders
from juxing.deals.reconcile import check_item
from juxing.kit.time import utcnow
from juxing.models.deals import DealItem
from juxing.models.orders import Order


def buy(client, headers, item_id, quantity=1, **extra):
    return client.post(
        "/api/v1/orders",
        json={"deal_item_id": item_id, "quantity": quantity, **extra},
        headers=headers,
    )


def counters(session, item_id):
    item = session.scalar(
        select(DealItem).where(DealItem.id == item_id).execution_options(populate_existing=True)
    )
    return item.available, item.reserved, item.sold


def pay(client, headers, order_id, *, deliver="now", outcome="succeeded"):
    p = client.post(f"/api/v1/orders/{order_id}/pay", headers=headers)
    assert p.status_code == 201, p.text
    s = client.post(
        f"/api/v1/payments/{p.json()['id']}/simulate",
        json={"outcome": outcome, "deliver": deliver},
        headers=headers,
    )
    assert s.status_code == 200, s.text
    return p.json(), s.json()["outcomes"]


def test_reserve_pay_ship_receive(client, session, world, shopper):
    _user, h = shopper
    r = buy(client, h, world.deal_item_id, 2)
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["status"] == "pending_payment"
    assert order["total_minor"] == 2 * 5_900
    assert order["lines"][0]["unit_price_minor"] == 5_900
    assert counters(session, world.deal_item_id) == (8, 2, 0)
    _payment, outcomes = pay(client, h, order["id"])
    assert outcomes == ["paid"]
    assert counters(session, world.deal_item_id) == (8, 0, 2)
    got = client.get(f"/api/v1/orders/{order['id']}", headers=h).json()
    assert got["status"] == "paid" and got["paid_at"]
    # receipt: the merchant ships, the shopper confirms
    assert client.post(f"/api/v1/orders/{order['id']}/receive", headers=h).status_code == 409
    s = client.post(f"/api/v1/orders/{order['id']}/ship", headers=world.headers["merchant"])
    assert s.json()["status"] == "shipped"
    rec = client.post(f"/api/v1/orders/{order['id']}/receive", headers=h)
    assert rec.json()["status"] == "received" and rec.json()["received_at"]
    history = client.get("/api/v1/orders", headers=h).json()
    assert [o["id"] for o in history["items"]] == [order["id"]]
    assert check_item(session=session, deal_item_id=world.deal_item_id, redis_client=None)["ok"]


def test_duplicate_callbacks_and_double_pay_count_once(client, session, world, shopper):
    _user, h = shopper
    order = buy(client, h, world.deal_item_id, 1).json()
    p1 = client.post(f"/api/v1/orders/{order['id']}/pay", headers=h).json()
    p2 = client.post(f"/api/v1/orders/{order['id']}/pay", headers=h).json()
    assert p1["id"] == p2["id"], "a second pay click reuses the open payment"
    s = client.post(
        f"/api/v1/payments/{p1['id']}/simulate", json={"deliver": "twice"}, headers=h
    ).json()
    assert s["outcomes"] == ["paid", "duplicate_event", "duplicate_success"]
    assert counters(session, world.deal_item_id) == (9, 0, 1)
    again = client.post(f"/api/v1/orders/{order['id']}/pay", headers=h)
    assert again.status_code == 409 and again.json()["error"]["code"] == "order_already_paid"


def test_callback_signature_is_checked(client, world, shopper):
    _user, h = shopper
    order = buy(client, h, world.deal_item_id).json()
    p = client.post(f"/api/v1/orders/{order['id']}/pay", headers=h).json()
    body = (
        b'{"event_id":"e1","provider_ref":"'
        + p["provider_ref"].encode()
        + b'","outcome":"succeeded","amount_minor":5900,"currency":"CNY"}'
    )
    r = client.post(
        "/api/v1/payments/callbacks/simulated",
        content=body,
        headers={"X-Juxing-Signature": "0" * 64},
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_signature"
    assert client.get(f"/api/v1/orders/{order['id']}", headers=h).json()["status"] == (
        "pending_payment"
    )


def test_failed_payment_then_retry(client, session, world, shopper):
    _user, h = shopper
    order = buy(client, h, world.deal_item_id).json()
    _p, outcomes = pay(client, h, order["id"], outcome="failed")
    assert outcomes == ["failed"]
    assert client.get(f"/api/v1/orders/{order['id']}", headers=h).json()["status"] == (
        "pending_payment"
    )
    _p2, outcomes = pay(client, h, order["id"])
    assert outcomes == ["paid"]
    assert counters(session, world.deal_item_id) == (9, 0, 1)


def test_cancel_releases_stock(client, session, world, shopper):
    _user, h = shopper
    order = buy(client, h, world.deal_item_id, 2).json()
    r = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert counters(session, world.deal_item_id) == (10, 0, 0)
    again = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=h)
    assert again.status_code == 409
    # the holding was released: the shopper may buy up to the limit again
    assert buy(client, h, world.deal_item_id, 2).status_code == 201


def test_timeout_releases_stock_and_late_callback_is_refunded(client, session, db, world, shopper):
    _user, h = shopper
    order = buy(client, h, world.deal_item_id, 1).json()
    payment = client.post(f"/api/v1/orders/{order['id']}/pay", headers=h).json()
    ctx = orders.Buying(redis_client=None)
    with db.session() as s:
        assert orders.expire_unpaid(session=s, ctx=ctx, now=utcnow()) == 0
        assert orders.expire_unpaid(session=s, ctx=ctx, now=utcnow() + timedelta(minutes=16)) == 1
    assert counters(session, world.deal_item_id) == (10, 0, 0)
    got = client.get(f"/api/v1/orders/{order['id']}", headers=h).json()
    assert got["status"] == "cancelled" and got["cancel_reason"] == "payment_timeout"
    late = client.post(f"/api/v1/payments/{payment['id']}/simulate", json={}, headers=h).json()
    assert late["outcomes"] == ["late_refunded"]
    assert counters(session, world.deal_item_id) == (10, 0, 0)
    assert client.get(f"/api/v1/payments/{payment['id']}", headers=h).json()["status"] == (
        "refunded"
    )


def test_partial_then_full_refund_with_and_without_restock(client, session, world, shopper):
    _user, h = shopper
    order = buy(client, h, world.deal_item_id, 2).json()
    pay(client, h, order["id"])
    line_id = order["lines"][0]["id"]
    mh = world.headers["merchant"]
    r1 = client.post(
        f"/api/v1/orders/{order['id']}/refunds",
        json={"lines": [{"order_line_id": line_id, "quantity": 1}], "restock": False},
        headers={**mh, "Idempotency-Key": "rf-1"},
    )
    assert r1.status_code == 201, r1.text
    assert r1.json()["amount_minor"] == 5_900 and r1.json()["restocked"] is False
    replay = client.post(
        f"/api/v1/orders/{order['id']}/refunds",
        json={"lines": [{"order_line_id": line_id, "quantity": 1}], "restock": False},
        headers={**mh, "Idempotency-Key": "rf-1"},
    )
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert counters(session, world.deal_item_id) == (8, 0, 2)
    partial = client.get(f"/api/v1/orders/{order['id']}", headers=h).json()
    assert partial["status"] == "paid" and partial["refunded_minor"] == 5_900
    too_many = client.post(
        f"/api/v1/orders/{order['id']}/refunds",
        json={"lines": [{"order_line_id": line_id, "quantity": 2}]},
        headers=mh,
    )
    assert too_many.status_code == 422
    assert too_many.json()["error"]["code"] == "refund_exceeds_quantity"
    r2 = client.post(f"/api/v1/orders/{order['id']}/refunds", json={"restock": True}, headers=mh)
    assert r2.status_code == 201 and r2.json()["amount_minor"] == 5_900
    assert counters(session, world.deal_item_id) == (9, 0, 1)
    full = client.get(f"/api/v1/orders/{order['id']}", headers=h).json()
    assert full["status"] == "refunded" and full["refunded_minor"] == 11_800
    assert check_item(session=session, deal_item_id=world.deal_item_id, redis_client=None)["ok"]
    # a shopper cannot refund, another merchant sees nothing
    assert (
        client.post(f"/api/v1/orders/{order['id']}/refunds", json={}, headers=h).status_code == 403
    )


def test_rule_violations_are_clear_4xx(client, session, world_factory, shopper, make_shopper):
    _user, h = shopper
    w = world_factory(stock=3, per_user_limit=2)
    r = buy(client, h, w.deal_item_id, 3)
    assert r.status_code == 422 and r.json()["error"]["code"] == "per_user_limit"
    assert buy(client, h, w.deal_item_id, 2).status_code == 201
    r = buy(client, h, w.deal_item_id, 1)
    assert r.status_code == 422 and r.json()["error"]["code"] == "per_user_limit"
    _u2, h2 = make_shopper()
    assert buy(client, h2, w.deal_item_id, 1).status_code == 201
    _u3, h3 = make_shopper()
    r = buy(client, h3, w.deal_item_id, 1)
    assert r.status_code == 409 and r.json()["error"]["code"] == "sold_out"
    r = buy(client, h3, 999_999)
    assert r.status_code == 404
    r = client.post(
        "/api/v1/orders", json={"deal_item_id": w.deal_item_id, "quantity": 0}, headers=h3
    )
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "body.quantity"
    r = client.post(
        "/api/v1/orders", json={"deal_item_id": w.deal_item_id, "unit_price_minor": 1}, headers=h3
    )
    assert r.status_code == 422 and "unit_price_minor" in r.json()["error"]["details"][0]["field"]
    upcoming = world_factory(starts_in_s=3600)
    r = buy(client, h3, upcoming.deal_item_id)
    assert r.status_code == 422 and r.json()["error"]["code"] == "deal_not_started"
    # merchants and anonymous callers cannot buy
    assert buy(client, w.headers["merchant"], w.deal_item_id).status_code == 403
    assert buy(client, {}, w.deal_item_id).status_code == 401


def test_reserve_is_idempotent(client, session, world, shopper):
    _user, h = shopper
    hk = {**h, "Idempotency-Key": "buy-1"}
    a = buy(client, hk, world.deal_item_id, 1)
    b = buy(client, hk, world.deal_item_id, 1)
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] == b.json()["id"] and b.headers["Idempotent-Replayed"] == "true"
    assert counters(session, world.deal_item_id) == (9, 1, 0)
    assert (
        session.scalar(
            select(Order.id).where(Order.id != a.json()["id"], Order.shopper_id == _user.id)
        )
        is None
    )


def test_orders_are_private(client, world, shopper, make_shopper):
    _user, h = shopper
    order = buy(client, h, world.deal_item_id).json()
    _other, h2 = make_shopper()
    assert client.get(f"/api/v1/orders/{order['id']}", headers=h2).status_code == 404
    assert client.post(f"/api/v1/orders/{order['id']}/cancel", headers=h2).status_code == 404
    assert client.post(f"/api/v1/orders/{order['id']}/pay", headers=h2).status_code == 404
    assert (
        client.get(f"/api/v1/orders/{order['id']}", headers=world.headers["merchant"]).status_code
        == 200
    )


def test_visitor_cookie_is_recorded(client, session, world, shopper):
    _user, h = shopper
    client.cookies.set("juxing_vid", "vid-abc")
    order = buy(client, h, world.deal_item_id).json()
    client.cookies.clear()
    assert session.get(Order, order["id"]).visitor_id == "vid-abc"


def test_live_only_deal_is_sold_only_in_its_live_room(client, session, world, shopper):
    from juxing.models.content import LiveRoom, LiveRoomItem

    _user, h = shopper
    room = LiveRoom(creator_id=world.operator.id, title="Star night", scheduled_at=utcnow())
    session.add(room)
    session.flush()
    session.add(
        LiveRoomItem(
            room_id=room.id,
            position=0,
            product_id=world.product_id,
            deal_item_id=world.deal_item_id,
            live_only=True,
        )
    )
    other = LiveRoom(creator_id=world.operator.id, title="Other", scheduled_at=utcnow())
    session.add(other)
    session.flush()
    for extra in ({}, {"live_room_id": room.id}, {"live_room_id": other.id}):
        r = buy(client, h, world.deal_item_id, **extra)
        assert r.status_code == 422 and r.json()["error"]["code"] == "live_only", extra
    other.status = "live"
    session.flush()
    r = buy(client, h, world.deal_item_id, live_room_id=other.id)
    assert r.status_code == 422, "a room that does not show the item cannot sell it"
    room.status = "live"
    session.flush()
    assert buy(client, h, world.deal_item_id, live_room_id=room.id).status_code == 201
    room.status = "ended"
    session.flush()
    r = buy(client, h, world.deal_item_id, live_room_id=room.id)
    assert r.status_code == 422 and r.json()["error"]["code"] == "live_only", "off air"
    assert counters(session, world.deal_item_id) == (9, 1, 0)
