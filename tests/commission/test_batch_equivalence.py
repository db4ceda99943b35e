"""Property: the set-based batch path and the per-request path give the same commissions
and the same ledger on the same random data; a batch re-run posts nothing."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from factories import make_user
from juxing.commission import batch, reconcile, service
from juxing.kit.time import utcnow
from juxing.models.accounts import Role
from juxing.models.catalog import Sku
from juxing.models.commission import (
    Click,
    Commission,
    CommissionRule,
    CreatorLevelBonus,
    TrackingLink,
)
from juxing.models.content import CreatorProfile, Post, PostProductCard
from juxing.models.ledger import LedgerAccount, LedgerEntry, LedgerTransaction
from juxing.models.orders import Order, OrderLine

_seq = itertools.count(1)

rates = st.one_of(st.none(), st.sampled_from([0, 150, 500, 1200, 3000]))
clicks = st.lists(
    st.tuples(
        st.integers(0, 2),  # creator
        st.integers(0, 3),  # target: product 0..2, or 3 = the post featuring products 0 and 1
        st.integers(0, 3),  # who: shopper 0..2, or 3 = shopper 0's visitor cookie only
        st.floats(0, 25),  # days before "now"
    ),
    max_size=14,
)
orders = st.lists(
    st.tuples(
        st.integers(0, 2),  # shopper (2 is also creator 2: self-purchases)
        st.booleans(),  # carries shopper 0's visitor cookie
        st.lists(st.integers(0, 2), min_size=1, max_size=2, unique=True),  # products
        st.integers(1, 200_000),  # amount per line
        st.booleans(),  # through the deal item (product 0 only)
        st.floats(0, 3),  # days before "now" it was placed
    ),
    min_size=1,
    max_size=8,
)
scenarios = st.fixed_dictionaries(
    {
        "merchant_rate": rates,
        "merchant_window": st.one_of(st.none(), st.integers(1, 20)),
        "product_rate": rates,
        "deal_rate": rates,
        "campaign_rate": rates,
        "campaign_window": st.one_of(st.none(), st.integers(1, 20)),
        "levels": st.lists(st.integers(0, 5), min_size=3, max_size=3),  # 0 = no profile
        "level4_bonus": st.one_of(st.none(), st.integers(0, 300)),
        "clicks": clicks,
        "orders": orders,
    }
)


def _build(world: Any, s: Session, sc: dict[str, Any]) -> list[int]:
    now = utcnow()
    merchant = world.merchant()
    products = [world.product(merchant) for _ in range(3)]
    deal = world.deal_item(merchant, products[0], rate_bp=sc["deal_rate"])
    for scope, target, rate, window in (
        ("merchant", 0, sc["merchant_rate"], sc["merchant_window"]),
        ("product", products[1].id, sc["product_rate"], None),
        ("campaign", deal.campaign_id, sc["campaign_rate"], sc["campaign_window"]),
    ):
        if rate is not None or window is not None:
            s.add(
                CommissionRule(
                    merchant_id=merchant.id,
                    scope=scope,
                    target_id=target,
                    rate_bp=rate,
                    window_days=window,
                )
            )
    if sc["level4_bonus"] is not None:
        s.merge(CreatorLevelBonus(level=4, bonus_bp=sc["level4_bonus"]))
    creators = [make_user(s, Role.CREATOR) for _ in range(2)]
    creators.append(make_user(s, Role.CREATOR, Role.SHOPPER))
    for c, level in zip(creators, sc["levels"], strict=True):
        if level:
            n = next(_seq)
            s.add(CreatorProfile(user_id=c.id, handle=f"c{n}", display_name=f"C{n}", level=level))
    shoppers = [make_user(s), make_user(s), creators[2]]
    visitor = f"vid-{next(_seq)}"
    post = Post(author_id=creators[0].id, title="Picks")
    s.add(post)
    s.flush()
    for pos, p in enumerate(products[:2]):
        s.add(PostProductCard(post_id=post.id, position=pos, product_id=p.id))
    s.flush()
    post_links: dict[int, TrackingLink] = {}
    for creator_i, target, who, days in sc["clicks"]:
        creator = creators[creator_i]
        if target < 3:
            link = world.link(creator, products[target])
        else:
            if creator.id not in post_links:
                n = next(_seq)
                post_links[creator.id] = TrackingLink(
                    code=f"p{n:07d}",
                    signature="0" * 16,
                    creator_id=creator.id,
                    target_type="post",
                    target_id=post.id,
                    target_key=f"post:{post.id}",
                    post_id=post.id,
                )
                s.add(post_links[creator.id])
                s.flush()
            link = post_links[creator.id]
        at = now - timedelta(days=days)
        if who == 3:
            world.click(link, visitor=visitor, at=at)
        else:
            world.click(link, shopper=shoppers[who], at=at)
    order_ids = []
    for shopper_i, with_cookie, product_is, amount, via_deal, days in sc["orders"]:
        placed = now - timedelta(days=days)
        order = Order(
            shopper_id=shoppers[shopper_i].id,
            merchant_id=merchant.id,
            status="paid",
            currency="CNY",
            subtotal_minor=amount * len(product_is),
            discount_minor=0,
            total_minor=amount * len(product_is),
            refunded_minor=0,
            visitor_id=visitor if with_cookie else None,
            created_at=placed,
            paid_at=placed + timedelta(minutes=1),
        )
        s.add(order)
        s.flush()
        for i in product_is:
            sku = s.scalar(select(Sku).where(Sku.product_id == products[i].id))
            assert sku is not None
            s.add(
                OrderLine(
                    order_id=order.id,
                    sku_id=sku.id,
                    product_id=products[i].id,
                    deal_item_id=deal.id if via_deal and i == 0 else None,
                    title="t",
                    quantity=1,
                    unit_price_minor=amount,
                    amount_minor=amount,
                    refunded_minor=0,
                    refunded_quantity=0,
                    restocked_quantity=0,
                )
            )
        order_ids.append(order.id)
    s.flush()
    return order_ids


def _snapshot(s: Session) -> dict[str, Any]:
    s.expire_all()
    commissions = {
        c.order_line_id: (
            c.creator_id,
            c.click_id,
            c.link_id,
            c.decision,
            "pending" if c.status == "held" else c.status,
            c.window_days,
            c.rule_scope,
            c.rule_id,
            c.base_rate_bp,
            c.bonus_bp,
            c.fee_bp,
            c.amount_minor,
            c.base_minor,
            c.bonus_minor,
            c.fee_minor,
        )
        for c in s.scalars(select(Commission))
    }
    by_line = {c.id: c.order_line_id for c in s.scalars(select(Commission))}
    entries: dict[tuple[str, int], dict[str, int]] = {}
    for txn, code, amount in s.execute(
        select(LedgerTransaction, LedgerAccount.code, LedgerEntry.amount_minor)
        .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
        .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
    ):
        key = (txn.kind, by_line[txn.source_id])
        entries.setdefault(key, {})[code] = amount
    balances = {
        a.code: a.balance_minor for a in s.scalars(select(LedgerAccount)) if a.balance_minor
    }
    return {"commissions": commissions, "entries": entries, "balances": balances}


@pytest.mark.slow
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sc=scenarios)
def test_batch_equals_the_request_path(world, session, sc):
    outer = session.begin_nested()
    try:
        order_ids = _build(world, session, sc)
        trial = session.begin_nested()
        for oid in order_ids:  # what the OrderPlaced and OrderPaid handlers do
            service.attribute_order(session, order_id=oid)
            service.accrue_order(session, order_id=oid)
        session.flush()
        live = _snapshot(session)
        trial.rollback()
        session.expire_all()
        res = batch.attribute_and_post(session, order_ids=order_ids)
        session.flush()
        assert _snapshot(session) == live
        assert res.attributed == len(live["commissions"])
        assert reconcile.run_checks(session)[0] == []
        again = batch.attribute_and_post(session, order_ids=order_ids)
        assert (again.attributed, again.transactions) == (0, 0)
        assert _snapshot(session) == live
    finally:
        outer.rollback()
        session.expire_all()


def test_batch_run_chunks_and_reruns_are_no_ops(world, session):
    """``run``-style chunking by id range posts each order once; a second pass is empty."""
    sc = {
        "merchant_rate": 800,
        "merchant_window": None,
        "product_rate": 1500,
        "deal_rate": 2000,
        "campaign_rate": None,
        "campaign_window": 5,
        "levels": [4, 0, 1],
        "level4_bonus": 120,
        "clicks": [(0, 0, 0, 1.0), (1, 1, 0, 0.5), (0, 3, 3, 0.2), (2, 2, 2, 0.1)],
        "orders": [
            (0, True, [0, 1], 10_000, True, 0.0),
            (0, False, [2], 7_777, False, 0.0),
            (2, False, [2], 5_000, False, 0.0),
            (1, False, [0], 5_000, False, 0.0),
        ],
    }
    order_ids = _build(world, session, sc)
    lo, hi = min(order_ids), max(order_ids)
    first = batch.attribute_and_post(session, id_range=(lo, lo + 1))
    second = batch.attribute_and_post(session, id_range=(lo + 2, hi))
    assert first.orders + second.orders == len(order_ids)
    rows = {c.order_line_id: c for c in session.scalars(select(Commission))}
    decisions = sorted(c.decision for c in rows.values())
    assert decisions == ["attributed", "attributed", "self_purchase"]
    # The visitor-cookie click on creator 0's post link (newest for product 0 and 1) wins.
    lines = session.scalars(select(OrderLine).where(OrderLine.order_id == order_ids[0])).all()
    post_click = session.scalar(select(Click).where(Click.post_id.is_not(None)))
    assert post_click is not None
    assert {rows[ln.id].click_id for ln in lines} == {post_click.id}
    deal_line = next(ln for ln in lines if ln.deal_item_id is not None)
    assert (rows[deal_line.id].rule_scope, rows[deal_line.id].base_rate_bp) == ("deal_item", 2000)
    assert rows[deal_line.id].bonus_bp == 120  # level 4 bonus from the operator table
    assert rows[deal_line.id].window_days == 5  # the campaign's window
    assert reconcile.run_checks(session)[0] == []
    entries = session.scalar(select(func.count()).select_from(LedgerEntry))
    again = batch.attribute_and_post(session, id_range=(lo, hi))
    # Orders no click sold are looked at again (they have no commission row), but nothing
    # is attributed or posted twice.
    assert (again.orders, again.attributed, again.transactions) == (2, 0, 0)
    assert session.scalar(select(func.count()).select_from(LedgerEntry)) == entries
