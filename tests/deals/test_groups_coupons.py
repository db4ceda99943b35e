"""Group deals (拼团) that fill and that expire, and festival coupons whose budget and
per-shopper cap hold, also under concurrency."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import func, select

from juxing.deals import coupons, orders
from juxing.deals.payments import SimulatedProvider
from juxing.kit.errors import JuxingError
from juxing.kit.time import utcnow
from juxing.models.accounts import Role
from juxing.models.deals import Coupon, CouponClaim, DealItem, GroupBuy


def _pay(client, h, order_id):
    p = client.post(f"/api/v1/orders/{order_id}/pay", headers=h).json()
    out = client.post(f"/api/v1/payments/{p['id']}/simulate", json={}, headers=h).json()
    return out["outcomes"]


def test_group_fills_then_orders_proceed(client, session, world_factory, make_shopper):
    w = world_factory(stock=10, group_size=3, group_window_s=3600)
    shoppers = [make_shopper() for _ in range(3)]
    _u, h0 = shoppers[0]
    need = client.post("/api/v1/orders", json={"deal_item_id": w.deal_item_id}, headers=h0)
    assert need.status_code == 422 and need.json()["error"]["code"] == "group_required"
    first = client.post(
        "/api/v1/orders", json={"deal_item_id": w.deal_item_id, "start_group": True}, headers=h0
    ).json()
    group = session.get(GroupBuy, first["group_id"])
    code = group.code
    assert _pay(client, h0, first["id"]) == ["paid"]
    shipped = client.post(f"/api/v1/orders/{first['id']}/ship", headers=w.headers["merchant"])
    assert shipped.status_code == 409 and shipped.json()["error"]["code"] == "group_not_filled"
    dup = client.post(
        "/api/v1/orders", json={"deal_item_id": w.deal_item_id, "group_code": code}, headers=h0
    )
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "group_already_joined"
    ids = [first["id"]]
    for _u, h in shoppers[1:]:
        o = client.post(
            "/api/v1/orders", json={"deal_item_id": w.deal_item_id, "group_code": code}, headers=h
        ).json()
        assert _pay(client, h, o["id"]) == ["paid"]
        ids.append(o["id"])
    info = client.get(f"/api/v1/groups/{code}").json()
    assert info["status"] == "filled" and info["paid_count"] == 3
    assert sorted(info["order_ids"]) == sorted(ids)
    _u4, h4 = make_shopper()
    full = client.post(
        "/api/v1/orders", json={"deal_item_id": w.deal_item_id, "group_code": code}, headers=h4
    )
    assert full.status_code == 409 and full.json()["error"]["code"] == "group_closed"
    ok = client.post(f"/api/v1/orders/{first['id']}/ship", headers=w.headers["merchant"])
    assert ok.status_code == 200 and ok.json()["status"] == "shipped"


def test_group_expires_every_member_refunded(client, session, db, world_factory, make_shopper):
    w = world_factory(stock=10, group_size=3, group_window_s=600)
    (_a, ha), (_b, hb) = make_shopper(), make_shopper()
    first = client.post(
        "/api/v1/orders",
        json={"deal_item_id": w.deal_item_id, "start_group": True, "quantity": 2},
        headers=ha,
    ).json()
    _pay(client, ha, first["id"])
    code = session.get(GroupBuy, first["group_id"]).code
    second = client.post(
        "/api/v1/orders", json={"deal_item_id": w.deal_item_id, "group_code": code}, headers=hb
    ).json()
    provider = SimulatedProvider("test")
    ctx = orders.Buying(redis_client=None)
    with db.session() as s:
        assert orders.expire_groups(session=s, ctx=ctx, provider=provider) == 0
        assert (
            orders.expire_groups(
                session=s, ctx=ctx, provider=provider, now=utcnow() + timedelta(minutes=11)
            )
            == 1
        )
    a = client.get(f"/api/v1/orders/{first['id']}", headers=ha).json()
    b = client.get(f"/api/v1/orders/{second['id']}", headers=hb).json()
    assert a["status"] == "refunded" and a["refunded_minor"] == a["total_minor"]
    assert b["status"] == "cancelled" and b["cancel_reason"] == "group_expired"
    assert len(provider.refunds) == 1
    session.expire_all()
    item = session.get(DealItem, w.deal_item_id)
    assert (item.available, item.reserved, item.sold) == (10, 0, 0), "the stock returns"
    assert client.get(f"/api/v1/groups/{code}").json()["status"] == "expired"


def _coupon_body(**extra):
    now = utcnow()
    return {
        "title": "Star Festival 红包",
        "kind": "amount",
        "amount_off_minor": 1_000,
        "min_spend_minor": 5_000,
        "valid_from": (now - timedelta(hours=1)).isoformat(),
        "valid_until": (now + timedelta(days=1)).isoformat(),
        "per_shopper_cap": 1,
        "budget_minor": 2_000,
        **extra,
    }


def test_coupon_claim_scan_apply_and_release(client, session, world, make_shopper):
    oh = world.headers["operator"]
    c = client.post(
        "/api/v1/coupons",
        headers=oh,
        json=_coupon_body(code="STARLOGO", festival_id=world.festival_id),
    )
    assert c.status_code == 201, c.text
    assert c.json()["scan_url"] == "/api/v1/coupons/scan/STARLOGO"
    _u, h = make_shopper()
    claim = client.post("/api/v1/coupons/scan/STARLOGO", headers=h)
    assert claim.status_code == 201 and claim.json()["via"] == "scan"
    again = client.post("/api/v1/coupons/claim", json={"code": "STARLOGO"}, headers=h)
    assert again.status_code == 409 and again.json()["error"]["code"] == "coupon_cap_reached"
    order = client.post(
        "/api/v1/orders",
        headers=h,
        json={"deal_item_id": world.deal_item_id, "coupon_claim_id": claim.json()["id"]},
    ).json()
    assert order["discount_minor"] == 1_000 and order["total_minor"] == 4_900
    assert session.get(Coupon, c.json()["id"]).budget_used_minor == 1_000
    reuse = client.post(
        "/api/v1/orders",
        headers=h,
        json={"deal_item_id": world.deal_item_id, "coupon_claim_id": claim.json()["id"]},
    )
    assert reuse.status_code == 422 and reuse.json()["error"]["code"] == "coupon_already_used"
    client.post(f"/api/v1/orders/{order['id']}/cancel", headers=h)
    session.expire_all()
    assert session.get(Coupon, c.json()["id"]).budget_used_minor == 0, "budget returned"
    mine = client.get("/api/v1/me/coupons", headers=h).json()
    assert mine[0]["status"] == "claimed" and mine[0]["coupon"]["code"] == "STARLOGO"
    # a merchant cannot issue a platform coupon; a shopper cannot issue any
    bad = client.post("/api/v1/coupons", headers=world.headers["merchant"], json=_coupon_body())
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "merchant_required"
    assert client.post("/api/v1/coupons", headers=h, json=_coupon_body()).status_code == 403
    small = client.post("/api/v1/coupons", headers=oh, json=_coupon_body(min_spend_minor=9_000))
    cl = client.post("/api/v1/coupons/claim", json={"coupon_id": small.json()["id"]}, headers=h)
    r = client.post(
        "/api/v1/orders",
        headers=h,
        json={"deal_item_id": world.deal_item_id, "coupon_claim_id": cl.json()["id"]},
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "coupon_min_spend"


def test_coupon_budget_and_cap_under_concurrency(committed_db, builders):
    build_world, make_user = builders
    db = committed_db
    with db.session() as s:
        w = build_world(s, stock=200, per_user_limit=5, with_headers=False)
        operator = s.merge(w.operator)
        coupon = coupons.create_coupon(
            session=s,
            user=operator,
            title="Budget test",
            kind="amount",
            amount_off_minor=1_000,
            valid_from=utcnow() - timedelta(hours=1),
            valid_until=utcnow() + timedelta(days=1),
            budget_minor=7_000,
            per_shopper_cap=2,
        )
        coupon_id = coupon.id
        shoppers = [make_user(s, Role.SHOPPER) for _ in range(8)]
        s.expunge_all()
    ctx = orders.Buying(redis_client=None)
    barrier = threading.Barrier(16)
    errors: list[str] = []

    def shop(shopper) -> None:
        barrier.wait()
        for _ in range(3):  # one more claim than the cap, in parallel with itself
            try:
                with db.session() as s:
                    claim = coupons.claim_coupon(session=s, shopper=shopper, coupon_id=coupon_id)
                    claim_id = claim.id
                with db.session() as s:
                    orders.reserve(
                        session=s,
                        ctx=ctx,
                        shopper=shopper,
                        deal_item_id=w.deal_item_id,
                        coupon_claim_id=claim_id,
                    )
            except JuxingError as exc:
                errors.append(exc.code)

    threads = [threading.Thread(target=shop, args=(sh,)) for sh in shoppers for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with db.session() as s:
        c = s.get(Coupon, coupon_id)
        assert c.budget_used_minor <= c.budget_minor == 7_000
        used = s.scalar(
            select(func.count()).where(
                CouponClaim.coupon_id == coupon_id, CouponClaim.status == "used"
            )
        )
        assert c.budget_used_minor == used * 1_000 and used == 7
        per = s.execute(
            select(CouponClaim.shopper_id, func.count())
            .where(CouponClaim.coupon_id == coupon_id)
            .group_by(CouponClaim.shopper_id)
        ).all()
        assert all(n <= 2 for _sid, n in per)
    assert "coupon_cap_reached" in errors and "coupon_budget_exhausted" in errors
