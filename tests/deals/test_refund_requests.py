"""Shoppers' refund requests (退款申请) over HTTP: ask, approve (the refund path: stock by
policy, ledger clawback), reject, cancel, auto-approval, partial and over-quantity requests,
ownership, and a double approval that refunds once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from factories import make_user_with_auth
from juxing import ledger
from juxing.commission import reconcile
from juxing.deals import refund_requests
from juxing.deals.reconcile import check_item
from juxing.deals.tasks import auto_approve_refund_requests
from juxing.kit.time import utcnow
from juxing.ledger.service import CREATOR_PENDING
from juxing.models.accounts import Role
from juxing.models.deals import DealItem
from juxing.models.marketplace import MarketplaceNotification
from juxing.models.orders import Order, OrderLine, Refund
from juxing.models.refund_requests import RefundRequest


def buy_and_pay(client, headers, item_id, quantity=1):
    r = client.post(
        "/api/v1/orders", json={"deal_item_id": item_id, "quantity": quantity}, headers=headers
    )
    assert r.status_code == 201, r.text
    order = r.json()
    p = client.post(f"/api/v1/orders/{order['id']}/pay", headers=headers)
    assert p.status_code == 201, p.text
    s = client.post(
        f"/api/v1/payments/{p.json()['id']}/simulate",
        json={"outcome": "succeeded", "deliver": "now"},
        headers=headers,
    )
    assert s.status_code == 200 and s.json()["outcomes"] == ["paid"], s.text
    return order


def ask(client, headers, order_id, *, key=None, **body):
    body.setdefault("reason", "damaged")
    extra = {"Idempotency-Key": key} if key else {}
    return client.post(
        f"/api/v1/orders/{order_id}/refund-requests", json=body, headers={**headers, **extra}
    )


def counters(session, item_id):
    item = session.scalar(
        select(DealItem).where(DealItem.id == item_id).execution_options(populate_existing=True)
    )
    return item.available, item.reserved, item.sold


def order_row(session, order_id):
    return session.scalar(
        select(Order).where(Order.id == order_id).execution_options(populate_existing=True)
    )


def refunds_of(session, order_id):
    return session.scalar(select(func.count()).where(Refund.order_id == order_id))


def notes_of(session, user_id):
    return [
        n.kind
        for n in session.scalars(
            select(MarketplaceNotification)
            .where(MarketplaceNotification.user_id == user_id)
            .order_by(MarketplaceNotification.id)
        )
    ]


def test_request_then_approve_refunds_through_the_refund_path(client, session, world_factory):
    w = world_factory(restock_on_refund=True)
    shopper, sh = make_user_with_auth(session, Role.SHOPPER)
    creator, ch = make_user_with_auth(session, Role.CREATOR)
    # A creator's link clicked before buying: the order carries commission to claw back.
    link = client.post(
        "/api/v1/commission/links",
        json={"target_type": "deal_item", "target_id": w.deal_item_id},
        headers=ch,
    ).json()
    assert client.get(f"/t/{link['token']}", follow_redirects=False).status_code == 302
    order = buy_and_pay(client, sh, w.deal_item_id, 2)
    client.cookies.clear()
    pending = ledger.balance(session, kind=CREATOR_PENDING, owner_id=creator.id, currency="CNY")
    assert pending > 0
    assert counters(session, w.deal_item_id) == (8, 0, 2)

    r = ask(client, sh, order["id"], reason="not_as_described", note="Colour is off")
    assert r.status_code == 201, r.text
    req = r.json()
    assert req["status"] == "open" and req["amount_minor"] == 11_800
    assert req["lines"] == [
        {"order_line_id": order["lines"][0]["id"], "quantity": 2, "amount_minor": 11_800}
    ]
    assert req["due_at"] > req["created_at"]
    assert notes_of(session, w.merchant_user.id) == ["refund_requested"]
    assert order_row(session, order["id"]).status == "paid", "asking refunds nothing yet"

    a = client.post(f"/api/v1/refund-requests/{req['id']}/approve", headers=w.headers["merchant"])
    assert a.status_code == 200, a.text
    done = a.json()
    assert done["status"] == "approved" and done["refund_id"] and done["amount_minor"] == 11_800
    assert [(t["from_status"], t["to_status"], t["actor_role"]) for t in done["transitions"]] == [
        (None, "open", "shopper"),
        ("open", "approved", "merchant"),
    ]
    assert done["transitions"][1]["actor_id"] == w.merchant_user.id
    o = order_row(session, order["id"])
    assert o.status == "refunded" and o.refunded_minor == 11_800
    assert counters(session, w.deal_item_id) == (10, 0, 0), "restocked by the item's policy"
    assert check_item(session=session, deal_item_id=w.deal_item_id, redis_client=None)["ok"]
    assert ledger.balance(session, kind=CREATOR_PENDING, owner_id=creator.id, currency="CNY") == 0
    found, _entries = reconcile.run_checks(session)  # what `juxing ledger check` runs
    assert found == []
    assert notes_of(session, shopper.id) == ["refund_approved"]
    note = session.scalar(
        select(MarketplaceNotification).where(MarketplaceNotification.user_id == shopper.id)
    )
    assert "118.00 CNY" in note.message and note.data["refund_request_id"] == req["id"]
    # The order's refunds list shows the refund, made by the approver.
    refunds = client.get(f"/api/v1/orders/{order['id']}/refunds", headers=sh).json()
    assert [x["id"] for x in refunds] == [done["refund_id"]]
    assert session.get(Refund, done["refund_id"]).created_by_id == w.merchant_user.id


def test_partial_request_without_restock_policy(client, session, world_factory):
    w = world_factory(restock_on_refund=False)
    _shopper, sh = make_user_with_auth(session, Role.SHOPPER)
    order = buy_and_pay(client, sh, w.deal_item_id, 2)
    line_id = order["lines"][0]["id"]
    r = ask(client, sh, order["id"], lines=[{"order_line_id": line_id, "quantity": 1}])
    assert r.status_code == 201, r.text
    assert r.json()["amount_minor"] == 5_900
    a = client.post(
        f"/api/v1/refund-requests/{r.json()['id']}/approve", headers=w.headers["operator"]
    )
    assert a.status_code == 200, a.text
    assert a.json()["transitions"][-1]["actor_role"] == "operator"
    o = order_row(session, order["id"])
    assert o.status == "paid" and o.refunded_minor == 5_900, "a partial refund keeps the status"
    line = session.scalar(
        select(OrderLine).where(OrderLine.id == line_id).execution_options(populate_existing=True)
    )
    assert (line.refunded_quantity, line.restocked_quantity) == (1, 0)
    assert counters(session, w.deal_item_id) == (8, 0, 2), "not restocked: the policy says no"
    # The rest can be asked for afterwards; no lines = everything left.
    rest = ask(client, sh, order["id"], reason="changed_mind")
    assert rest.status_code == 201 and rest.json()["lines"][0]["quantity"] == 1
    assert rest.json()["amount_minor"] == 5_900


def test_over_quantity_and_forged_fields_are_422_with_the_field(client, session, world, shopper):
    _user, sh = shopper
    order = buy_and_pay(client, sh, world.deal_item_id, 2)
    line_id = order["lines"][0]["id"]
    r = ask(client, sh, order["id"], lines=[{"order_line_id": line_id, "quantity": 3}])
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "refund_exceeds_quantity"
    assert err["details"]["field"] == "body.lines.0.quantity" and err["details"]["left"] == 2
    r = ask(client, sh, order["id"], lines=[{"order_line_id": 999_999, "quantity": 1}])
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == (
        "body.lines.0.order_line_id"
    )
    dup = [{"order_line_id": line_id, "quantity": 1}] * 2
    r = ask(client, sh, order["id"], lines=dup)
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == (
        "body.lines.1.order_line_id"
    )
    r = ask(client, sh, order["id"], lines=[{"order_line_id": line_id, "quantity": 0}])
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["field"] == "body.lines.0.quantity"
    r = ask(client, sh, order["id"], reason="because")
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "body.reason"
    # Clients cannot set the status or the amount.
    for forged in ({"status": "approved"}, {"amount_minor": 1}):
        r = ask(client, sh, order["id"], **forged)
        assert r.status_code == 422, forged
    assert session.scalar(select(func.count()).where(RefundRequest.order_id == order["id"])) == 0


def test_reject_then_ask_again_one_open_request_at_a_time(client, session, world, shopper):
    user, sh = shopper
    order = buy_and_pay(client, sh, world.deal_item_id, 1)
    first = ask(client, sh, order["id"]).json()
    again = ask(client, sh, order["id"], reason="other")
    assert again.status_code == 409 and again.json()["error"]["code"] == "refund_request_open"
    assert again.json()["error"]["details"]["refund_request_id"] == first["id"]
    empty = client.post(
        f"/api/v1/refund-requests/{first['id']}/reject",
        json={"reason": ""},
        headers=world.headers["merchant"],
    )
    assert empty.status_code == 422, "a rejection needs a reason"
    r = client.post(
        f"/api/v1/refund-requests/{first['id']}/reject",
        json={"reason": "The seal is broken; opened items cannot be returned."},
        headers=world.headers["merchant"],
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "rejected"
    assert r.json()["reject_reason"].startswith("The seal is broken")
    assert r.json()["decided_by_id"] == world.merchant_user.id
    assert refunds_of(session, order["id"]) == 0
    assert order_row(session, order["id"]).refunded_minor == 0
    assert notes_of(session, user.id) == ["refund_rejected"]
    late = client.post(
        f"/api/v1/refund-requests/{first['id']}/approve", headers=world.headers["merchant"]
    )
    assert late.status_code == 409 and late.json()["error"]["code"] == "refund_request_not_open"
    assert refunds_of(session, order["id"]) == 0
    second = ask(client, sh, order["id"], reason="other", note="Please look again")
    assert second.status_code == 201, "after a decision the shopper may ask again"
    listed = client.get(f"/api/v1/orders/{order['id']}/refund-requests", headers=sh).json()
    assert [x["status"] for x in listed] == ["open", "rejected"]


def test_cancel_by_the_shopper(client, session, world, shopper, make_shopper):
    _user, sh = shopper
    _other, oh = make_shopper()
    order = buy_and_pay(client, sh, world.deal_item_id, 1)
    req = ask(client, sh, order["id"]).json()
    assert client.post(f"/api/v1/refund-requests/{req['id']}/cancel", headers=oh).status_code == (
        404
    )
    r = client.post(f"/api/v1/refund-requests/{req['id']}/cancel", headers=sh)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert r.json()["transitions"][-1]["actor_role"] == "shopper"
    assert notes_of(session, world.merchant_user.id) == ["refund_requested", "refund_cancelled"]
    again = client.post(f"/api/v1/refund-requests/{req['id']}/cancel", headers=sh)
    assert again.status_code == 409
    a = client.post(
        f"/api/v1/refund-requests/{req['id']}/approve", headers=world.headers["merchant"]
    )
    assert a.status_code == 409 and refunds_of(session, order["id"]) == 0


def test_unanswered_request_is_approved_by_the_job(client, session, db, world, shopper):
    user, sh = shopper
    order = buy_and_pay(client, sh, world.deal_item_id, 1)
    req = ask(client, sh, order["id"]).json()
    row = session.get(RefundRequest, req["id"])
    assert row.due_at - row.created_at == timedelta(days=3), "the default deadline"
    assert auto_approve_refund_requests(db) == 0, "not due yet"
    assert session.scalar(select(RefundRequest.status).where(RefundRequest.id == req["id"])) == (
        "open"
    )
    session.execute(
        update(RefundRequest)
        .where(RefundRequest.id == req["id"])
        .values(due_at=utcnow() - timedelta(seconds=1))
    )
    session.flush()
    assert auto_approve_refund_requests(db) == 1
    got = client.get(f"/api/v1/refund-requests/{req['id']}", headers=sh).json()
    assert got["status"] == "approved" and got["refund_id"]
    assert got["transitions"][-1]["actor_role"] == "system"
    assert got["transitions"][-1]["actor_id"] is None
    assert order_row(session, order["id"]).status == "refunded"
    assert counters(session, world.deal_item_id) == (10, 0, 0)
    assert auto_approve_refund_requests(db) == 0, "the job never refunds twice"
    assert refunds_of(session, order["id"]) == 1
    assert notes_of(session, user.id) == ["refund_auto_approved"]
    found, _ = reconcile.run_checks(session)
    assert found == []


def test_request_made_stale_by_a_direct_refund(client, session, world, shopper):
    _user, sh = shopper
    order = buy_and_pay(client, sh, world.deal_item_id, 1)
    req = ask(client, sh, order["id"]).json()
    # The shop refunds the order itself (the existing path) while the request is open.
    direct = client.post(
        f"/api/v1/orders/{order['id']}/refunds", json={}, headers=world.headers["merchant"]
    )
    assert direct.status_code == 201, direct.text
    a = client.post(
        f"/api/v1/refund-requests/{req['id']}/approve", headers=world.headers["merchant"]
    )
    assert a.status_code == 409 and a.json()["error"]["code"] == "refund_request_stale"
    later = utcnow() + timedelta(days=4)
    outcome = refund_requests.auto_approve(
        session=session, ctx=None, provider=None, request_id=req["id"], now=later
    )
    assert outcome == "rejected"
    assert refunds_of(session, order["id"]) == 1, "nothing refunded twice"


def test_double_approve_refunds_once(client, session, world, shopper):
    _user, sh = shopper
    order = buy_and_pay(client, sh, world.deal_item_id, 2)
    req = ask(client, sh, order["id"]).json()
    mh = world.headers["merchant"]
    url = f"/api/v1/refund-requests/{req['id']}/approve"
    first = client.post(url, headers={**mh, "Idempotency-Key": "approve-1"})
    assert first.status_code == 200, first.text
    replay = client.post(url, headers={**mh, "Idempotency-Key": "approve-1"})
    assert replay.status_code == 200 and replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json() == first.json()
    second = client.post(url, headers=mh)
    assert second.status_code == 409 and second.json()["error"]["code"] == (
        "refund_request_not_open"
    )
    assert refunds_of(session, order["id"]) == 1
    assert order_row(session, order["id"]).refunded_minor == 11_800
    assert counters(session, world.deal_item_id) == (10, 0, 0)


def test_ownership_other_shopper_and_other_shop_get_404(
    client, session, world, world_factory, shopper, make_shopper
):
    _user, sh = shopper
    _other, oh = make_shopper()
    other_shop = world_factory()
    order = buy_and_pay(client, sh, world.deal_item_id, 1)
    assert ask(client, oh, order["id"]).status_code == 404, "another shopper's order"
    req = ask(client, sh, order["id"]).json()
    foreign = other_shop.headers["merchant"]
    for method, path, body in (
        ("GET", f"/api/v1/refund-requests/{req['id']}", None),
        ("POST", f"/api/v1/refund-requests/{req['id']}/approve", None),
        ("POST", f"/api/v1/refund-requests/{req['id']}/reject", {"reason": "no"}),
        ("GET", f"/api/v1/orders/{order['id']}/refund-requests", None),
    ):
        for headers in (oh, foreign):
            if headers is oh and path.endswith(("approve", "reject")):
                continue  # shoppers lack the role: 403, covered below
            r = client.request(method, path, json=body, headers=headers)
            assert r.status_code == 404, (method, path, r.status_code)
    assert client.post(f"/api/v1/refund-requests/{req['id']}/approve", headers=oh).status_code == (
        403
    )
    assert refunds_of(session, order["id"]) == 0
    # Listings show only what each caller may see.
    assert client.get("/api/v1/refund-requests", headers=oh).json()["total"] == 0
    assert client.get("/api/v1/refund-requests", headers=foreign).json()["total"] == 0
    mine = client.get("/api/v1/refund-requests?status=open", headers=world.headers["merchant"])
    assert [x["id"] for x in mine.json()["items"]] == [req["id"]]
    assert [x["id"] for x in client.get("/api/v1/refund-requests", headers=sh).json()["items"]] == [
        req["id"]
    ]


def test_order_state_and_return_window(client, session, world, shopper):
    _user, sh = shopper
    unpaid = client.post(
        "/api/v1/orders", json={"deal_item_id": world.deal_item_id, "quantity": 1}, headers=sh
    ).json()
    r = ask(client, sh, unpaid["id"])
    assert r.status_code == 409 and r.json()["error"]["code"] == "order_not_refundable"
    order = buy_and_pay(client, sh, world.deal_item_id, 1)
    mh = world.headers["merchant"]
    assert client.post(f"/api/v1/orders/{order['id']}/ship", headers=mh).is_success
    assert client.post(f"/api/v1/orders/{order['id']}/receive", headers=sh).is_success
    # Received 8 days ago: past the 7-day return window.
    session.execute(
        update(Order)
        .where(Order.id == order["id"])
        .values(received_at=utcnow() - timedelta(days=8))
    )
    session.flush()
    r = ask(client, sh, order["id"])
    assert r.status_code == 422 and r.json()["error"]["code"] == "return_window_closed"
    session.execute(
        update(Order)
        .where(Order.id == order["id"])
        .values(received_at=utcnow() - timedelta(days=6))
    )
    session.flush()
    assert ask(client, sh, order["id"]).status_code == 201, "inside the window"


def test_idempotency_key_on_create(client, session, world, shopper):
    _user, sh = shopper
    order = buy_and_pay(client, sh, world.deal_item_id, 1)
    a = ask(client, sh, order["id"], key="ask-1")
    b = ask(client, sh, order["id"], key="ask-1")
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] == b.json()["id"] and b.headers.get("Idempotent-Replayed") == "true"
    other_body = ask(client, sh, order["id"], key="ask-1", reason="other")
    assert other_body.status_code == 422
    assert other_body.json()["error"]["code"] == "idempotency_key_reused"
    assert session.scalar(select(func.count()).where(RefundRequest.order_id == order["id"])) == 1
