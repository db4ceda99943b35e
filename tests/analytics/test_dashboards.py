"""Dashboard figures equal the same figures computed directly from the orders and events."""

from __future__ import annotations

import csv
import io
import random
from collections import defaultdict
from datetime import timedelta

from factories import make_user_with_auth
from juxing.analytics import rollups
from juxing.analytics.dashboards import gini
from juxing.kit.time import utcnow
from juxing.models.accounts import Role
from juxing.models.catalog import Merchant, Product, Sku
from juxing.models.commission import Click, Commission, TrackingLink
from juxing.models.events import BehaviorEvent
from juxing.models.feed import FeedImpression
from juxing.models.orders import Order, OrderLine, Refund

API = "/api/v1/dashboards"


def _world(session):
    rng = random.Random(11)
    now = utcnow().replace(second=0, microsecond=0)
    start = now - timedelta(hours=6)
    m_user, m_auth = make_user_with_auth(session, Role.MERCHANT)
    other_user, other_auth = make_user_with_auth(session, Role.MERCHANT)
    creator, c_auth = make_user_with_auth(session, Role.CREATOR)
    creator2, c2_auth = make_user_with_auth(session, Role.CREATOR)
    shopper, _ = make_user_with_auth(session, Role.SHOPPER)
    _op, op_auth = make_user_with_auth(session, Role.OPERATOR)
    shop = Merchant(owner_id=m_user.id, name=f"Dash shop {m_user.id}", tier="new")
    big = Merchant(owner_id=other_user.id, name=f"Big shop {other_user.id}", tier="key_account")
    session.add_all([shop, big])
    session.flush()
    products, skus = [], []
    for merchant in (shop, big):
        for i in range(2):
            p = Product(merchant_id=merchant.id, title=f"P{i}")
            session.add(p)
            session.flush()
            s = Sku(product_id=p.id, name="default", list_price_minor=1000 * (i + 1), stock=100)
            session.add(s)
            session.flush()
            products.append(p)
            skus.append(s)
    link = TrackingLink(
        code=f"c{creator.id}",
        signature="x",
        creator_id=creator.id,
        target_type="post",
        target_id=1,
        target_key=f"post:{creator.id}",
        product_id=products[0].id,
        post_id=777,
    )
    session.add(link)
    session.flush()
    orders = []
    for n in range(40):
        k = rng.randrange(4)
        merchant = shop if k < 2 else big
        created = start + timedelta(minutes=rng.randrange(0, 350))
        paid = rng.random() < 0.7
        qty = rng.randint(1, 3)
        amount = skus[k].list_price_minor * qty
        o = Order(
            shopper_id=shopper.id,
            merchant_id=merchant.id,
            status="paid" if paid else "pending_payment",
            currency="CNY",
            subtotal_minor=amount,
            total_minor=amount,
            created_at=created,
            paid_at=created + timedelta(minutes=2) if paid else None,
        )
        session.add(o)
        session.flush()
        line = OrderLine(
            order_id=o.id,
            sku_id=skus[k].id,
            product_id=products[k].id,
            title="x",
            quantity=qty,
            unit_price_minor=skus[k].list_price_minor,
            amount_minor=amount,
        )
        session.add(line)
        session.flush()
        orders.append((o, line))
        if paid and k == 0 and rng.random() < 0.8:
            session.add(
                Commission(
                    order_id=o.id,
                    order_line_id=line.id,
                    merchant_id=merchant.id,
                    shopper_id=shopper.id,
                    creator_id=creator.id,
                    product_id=products[k].id,
                    link_id=link.id,
                    decision="attributed",
                    status=rng.choice(["pending", "available"]),
                    window_days=7,
                    rule_scope="merchant",
                    currency="CNY",
                    amount_minor=amount,
                    base_minor=amount // 10,
                    fee_minor=amount // 100,
                    bonus_minor=0,
                    explanation="test",
                    placed_at=o.created_at,
                    paid_at=o.paid_at,
                )
            )
        if paid and rng.random() < 0.2:
            session.add(
                Refund(
                    order_id=o.id,
                    amount_minor=amount // 2,
                    currency="CNY",
                    created_at=o.paid_at + timedelta(minutes=5),
                )
            )
    for n in range(25):
        session.add(
            Click(
                link_id=link.id,
                creator_id=creator.id,
                product_id=products[0].id,
                post_id=777,
                ip_hash="i",
                device_hash="d",
                clicked_at=start + timedelta(minutes=rng.randrange(350)),
            )
        )
    for n in range(300):
        k = rng.randrange(4)
        session.add(
            BehaviorEvent(
                source="app",
                user_id=shopper.id,
                action=rng.choice(["view", "view", "click", "cart"]),
                target_type="product",
                target_id=products[k].id,
                client_event_id=f"e{n}",
                occurred_at=start + timedelta(minutes=rng.randrange(350)),
                received_at=now,
            )
        )
        session.add(
            FeedImpression(
                feed_id="f",
                user_id=shopper.id,
                item_type="product",
                item_id=products[k].id,
                merchant_id=products[k].merchant_id,
                position=0,
                reason="test",
                shown_at=start + timedelta(minutes=rng.randrange(350)),
            )
        )
    session.flush()
    return dict(
        now=now,
        start=start,
        shop=shop,
        big=big,
        products=products,
        orders=orders,
        creator=creator,
        creator2=creator2,
        m_auth=m_auth,
        other_auth=other_auth,
        c_auth=c_auth,
        c2_auth=c2_auth,
        op_auth=op_auth,
        shopper=shopper,
    )


def test_dashboards_equal_direct_computation(client, session):
    w = _world(session)
    start, end = w["start"].replace(minute=0), w["now"] + timedelta(hours=1)
    rollups.refresh(session, start=start, end=end)
    q = {"start": start.isoformat(), "end": end.isoformat()}

    # Merchant: computed straight from the rows.
    shop = w["shop"].id
    paid = [(o, ln) for o, ln in w["orders"] if o.merchant_id == shop and o.paid_at]
    gmv = sum(ln.amount_minor for _o, ln in paid)
    comms = [c for c in session.query(Commission).all() if c.merchant_id == shop]
    refunds = sum(
        r.amount_minor for r in session.query(Refund).all() if r.order_id in {o.id for o, _ in paid}
    )
    events = defaultdict(int)
    mine = {p.id for p in w["products"] if p.merchant_id == shop}
    for e in session.query(BehaviorEvent).all():
        if e.target_id in mine:
            events[e.action] += 1
    r = client.get(f"{API}/merchant/{shop}", params=q, headers=w["m_auth"])
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["totals"]["gmv_minor"] == gmv
    assert d["totals"]["paid_orders"] == len(paid)
    assert d["totals"]["refunds_minor"] == refunds
    assert d["totals"]["commission_cost_minor"] == sum(c.base_minor for c in comms)
    creator_gmv = sum(c.amount_minor for c in comms)
    assert d["totals"]["creator_gmv_minor"] == creator_gmv
    funnel = {s["step"]: s["count"] for s in d["tables"]["funnel"]}
    placed = sum(1 for o, _ in w["orders"] if o.merchant_id == shop)
    assert funnel == {
        "view": events["view"],
        "click": events["click"],
        "cart": events["cart"],
        "order": placed,
        "paid": len(paid),
    }
    channels = {c["channel"]: c["gmv_minor"] for c in d["tables"]["gmv_by_channel"]}
    assert channels.get("post", 0) == creator_gmv and channels.get("direct", 0) == gmv - creator_gmv
    assert sum(s["gmv"] for s in d["tables"]["series"]) == gmv

    # CSV export of a table carries the same numbers.
    r = client.get(
        f"{API}/merchant/{shop}",
        params={**q, "table": "funnel", "format": "csv"},
        headers=w["m_auth"],
    )
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {x["step"]: int(x["count"]) for x in rows} == funnel

    # Creator: clicks, orders, conversion, earnings.
    mine_c = [c for c in session.query(Commission).all() if c.creator_id == w["creator"].id]
    r = client.get(f"{API}/creator", params=q, headers=w["c_auth"])
    t = r.json()["totals"]
    assert t["clicks"] == 25
    assert t["orders"] == len({c.order_id for c in mine_c})
    assert t["conversion"] == round(len({c.order_id for c in mine_c}) / 25, 6)
    assert t["earnings_minor"] == sum(c.base_minor - c.fee_minor for c in mine_c)
    assert t["earnings_available_minor"] == sum(
        c.base_minor - c.fee_minor for c in mine_c if c.status == "available"
    )
    assert r.json()["tables"]["top_posts"][0] == {
        "post_id": "777",
        "gmv_minor": sum(c.amount_minor for c in mine_c),
        "clicks": 25,
    }

    # Operator: per-minute GMV, long-tail shares, exposure Gini.
    r = client.get(f"{API}/operator", params=q, headers=w["op_auth"])
    d = r.json()
    all_paid = [(o, ln) for o, ln in w["orders"] if o.paid_at]
    assert d["totals"]["gmv_minor"] == sum(ln.amount_minor for _o, ln in all_paid)
    per_min = defaultdict(int)
    for o, ln in all_paid:
        per_min[o.paid_at.replace(second=0, microsecond=0).isoformat()] += ln.amount_minor
    assert {x["bucket"]: x["gmv"] for x in d["tables"]["per_minute"]} == dict(per_min)
    exp = defaultdict(int)
    for i in session.query(FeedImpression).all():
        exp[i.merchant_id] += 1
    tiers = {m.id: m.tier for m in session.query(Merchant).all()}
    total = sum(exp.values())
    tail = sum(v for m, v in exp.items() if tiers[m] in ("new", "growing"))
    assert d["totals"]["long_tail_exposure_share"] == round(tail / total, 6)
    assert d["totals"]["exposure_gini"] == gini([exp.get(m, 0) for m in tiers])
    gmv_tail = sum(
        ln.amount_minor for o, ln in all_paid if tiers[o.merchant_id] in ("new", "growing")
    )
    assert d["totals"]["long_tail_gmv_share"] == round(
        gmv_tail / sum(ln.amount_minor for _o, ln in all_paid), 6
    )

    # Refreshing again is idempotent.
    rollups.refresh(session, start=start, end=end)
    assert (
        client.get(f"{API}/merchant/{shop}", params=q, headers=w["m_auth"]).json()["totals"][
            "gmv_minor"
        ]
        == gmv
    )


def test_dashboards_check_role_and_ownership(client, session):
    w = _world(session)
    assert client.get(f"{API}/merchant/{w['shop'].id}", headers=w["other_auth"]).status_code == 404
    assert client.get(f"{API}/merchant/{w['shop'].id}", headers=w["c_auth"]).status_code == 403
    assert (
        client.get(
            f"{API}/creator", params={"creator_id": w["creator"].id}, headers=w["c2_auth"]
        ).status_code
        == 404
    )
    assert client.get(f"{API}/operator", headers=w["m_auth"]).status_code == 403
    r = client.get(f"{API}/merchant/{w['shop'].id}", params={"table": "nope"}, headers=w["m_auth"])
    assert r.status_code == 404


def test_gini():
    assert gini([5, 5, 5, 5]) == 0.0
    assert gini([0, 0, 0, 10]) == 0.75
    assert gini([]) is None
