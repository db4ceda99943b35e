"""Pending → available, clawbacks (also after confirmation), payouts, fraud holds,
reconciliation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from factories import make_user
from juxing import ledger
from juxing.commission import payouts, reconcile, service
from juxing.commission.policy import POLICY
from juxing.kit.errors import Conflict, Unprocessable
from juxing.kit.time import utcnow
from juxing.ledger.service import CREATOR_AVAILABLE, CREATOR_PENDING, InsufficientBalance
from juxing.models.accounts import Role
from juxing.models.commission import Commission, CommissionReview, CommissionRule, FraudFlag


def _bal(session, kind, owner):
    return ledger.balance(session, kind=kind, owner_id=owner, currency="CNY")


def _sale(world, session, *, amount=100_000, creator=None, shopper=None, rate_bp=1000, **click):
    merchant = world.merchant()
    product = world.product(merchant)
    session.add(
        CommissionRule(merchant_id=merchant.id, scope="merchant", target_id=0, rate_bp=rate_bp)
    )
    session.flush()
    creator = creator or make_user(session, Role.CREATOR)
    shopper = shopper or make_user(session)
    world.click(world.link(creator, product), shopper=shopper, **click)
    order = world.place(shopper, merchant, [(product, amount)])
    world.pay(order)
    (c,) = session.scalars(select(Commission).where(Commission.order_id == order.id))
    return order, c, creator


def _assert_reconciled(session):
    found, _ = reconcile.run_checks(session)
    assert found == []


def test_pending_becomes_available_after_the_return_window(world, session):
    order, c, creator = _sale(world, session)
    earned = c.creator_minor  # 10000 - 1000 fee
    assert earned == 9000 and _bal(session, CREATOR_PENDING, creator.id) == earned
    t = utcnow()
    world.receive(order, at=t)
    assert service.mature_due(session, at=t + timedelta(days=6)) == 0
    assert service.mature_due(session, at=t + timedelta(days=7, seconds=1)) == 1
    assert _bal(session, CREATOR_PENDING, creator.id) == 0
    assert _bal(session, CREATOR_AVAILABLE, creator.id) == earned
    assert service.mature_due(session, at=t + timedelta(days=8)) == 0  # no double move
    _assert_reconciled(session)


def test_refund_claws_back_proportionally_before_and_after_confirmation(world, session):
    order, _c, creator = _sale(world, session)
    (line,) = world.lines(order)
    world.refund(order, line, 25_000)  # a quarter, while pending
    assert _bal(session, CREATOR_PENDING, creator.id) == 9000 - 2250
    t = utcnow()
    world.receive(order, at=t)
    service.mature_due(session, at=t + timedelta(days=8))
    assert _bal(session, CREATOR_AVAILABLE, creator.id) == 6750
    payouts.request_payout(session, creator_id=creator.id, currency="CNY")
    assert _bal(session, CREATOR_AVAILABLE, creator.id) == 0
    # The rest is refunded after confirmation and payout: the balance goes negative...
    world.refund(order, line, 75_000)
    assert _bal(session, CREATOR_AVAILABLE, creator.id) == -6750
    _assert_reconciled(session)
    # ...and is netted against later earnings.
    order2, _c2, _ = _sale(world, session, creator=creator)
    world.receive(order2, at=t)
    service.mature_due(session, at=t + timedelta(days=8))
    assert _bal(session, CREATOR_AVAILABLE, creator.id) == 9000 - 6750
    with pytest.raises(Unprocessable):
        payouts.request_payout(session, creator_id=creator.id, currency="CNY", amount_minor=999)
    _assert_reconciled(session)


def test_payout_cannot_overdraw_and_failed_payout_returns_money(world, session):
    order, _c, creator = _sale(world, session)
    t = utcnow()
    world.receive(order, at=t)
    service.mature_due(session, at=t + timedelta(days=8))
    with pytest.raises(InsufficientBalance):
        payouts.request_payout(session, creator_id=creator.id, currency="CNY", amount_minor=9001)
    p = payouts.request_payout(session, creator_id=creator.id, currency="CNY", amount_minor=5000)
    operator = make_user(session, Role.OPERATOR)
    payouts.settle_payout(
        session, payout_id=p.id, operator_id=operator.id, paid=False, reason="bank"
    )
    assert _bal(session, CREATOR_AVAILABLE, creator.id) == 9000
    with pytest.raises(Conflict):
        payouts.settle_payout(session, payout_id=p.id, operator_id=operator.id, paid=True)
    p2 = payouts.request_payout(session, creator_id=creator.id, currency="CNY")
    payouts.settle_payout(session, payout_id=p2.id, operator_id=operator.id, paid=True)
    st = payouts.statement(session, payout=p2)
    assert st.closing_minor == 0 and st.lines[-1].amount_minor == -9000
    _assert_reconciled(session)


def test_click_flood_holds_and_operator_voids_with_audit(world, session, monkeypatch):
    monkeypatch.setattr(POLICY, "flood_clicks_per_hour", 5)
    merchant = world.merchant()
    product = world.product(merchant)
    session.add(
        CommissionRule(merchant_id=merchant.id, scope="merchant", target_id=0, rate_bp=1000)
    )
    creator, shopper = make_user(session, Role.CREATOR), make_user(session)
    link = world.link(creator, product)
    now = utcnow()
    for i in range(6):
        world.click(link, visitor=f"bot-{i}", at=now - timedelta(minutes=30 - i), ip="6.6.6.6")
    world.click(link, shopper=shopper, at=now - timedelta(minutes=10), ip="6.6.6.6")
    order = world.place(shopper, merchant, [(product, 50_000)])
    world.pay(order)
    (c,) = session.scalars(select(Commission).where(Commission.order_id == order.id))
    assert c.status == "held"
    assert {f.rule for f in session.scalars(select(FraudFlag))} == {"click_flood"}
    # Held commission never matures.
    world.receive(order, at=now)
    assert service.mature_due(session, at=now + timedelta(days=30)) == 0
    operator = make_user(session, Role.OPERATOR)
    service.void(session, commission_id=c.id, operator_id=operator.id, reason="bot traffic")
    assert _bal(session, CREATOR_PENDING, creator.id) == 0
    actions = [
        r.action for r in session.scalars(select(CommissionReview).order_by(CommissionReview.id))
    ]
    assert actions == ["hold", "void"]
    with pytest.raises(Conflict):
        service.release(session, commission_id=c.id, operator_id=operator.id, reason="oops")
    world.refund(order, world.lines(order)[0], 50_000)  # refund after void: nothing left to claw
    _assert_reconciled(session)


def test_linked_device_and_release(world, session):
    merchant = world.merchant()
    product = world.product(merchant)
    session.add(
        CommissionRule(merchant_id=merchant.id, scope="merchant", target_id=0, rate_bp=1000)
    )
    creator, alt = make_user(session, Role.CREATOR, Role.SHOPPER), make_user(session)
    link = world.link(creator, product)
    world.click(link, shopper=creator, device="creator-phone")  # the creator's own device
    world.click(link, shopper=alt, device="creator-phone")  # a second account, same phone
    order = world.place(alt, merchant, [(product, 10_000)])
    world.pay(order)
    (c,) = session.scalars(select(Commission).where(Commission.order_id == order.id))
    assert c.status == "held"
    operator = make_user(session, Role.OPERATOR)
    service.release(session, commission_id=c.id, operator_id=operator.id, reason="family account")
    t = utcnow()
    world.receive(order, at=t)
    assert service.mature_due(session, at=t + timedelta(days=8)) == 1
    _assert_reconciled(session)


def test_buy_then_refund_pattern_holds(world, session):
    merchant = world.merchant()
    product = world.product(merchant)
    session.add(
        CommissionRule(merchant_id=merchant.id, scope="merchant", target_id=0, rate_bp=1000)
    )
    creator, shopper = make_user(session, Role.CREATOR), make_user(session)
    link = world.link(creator, product)
    statuses = []
    for _ in range(3):
        world.click(link, shopper=shopper)
        order = world.place(shopper, merchant, [(product, 10_000)])
        world.pay(order)
        world.refund(order, world.lines(order)[0], 10_000)
        (c,) = session.scalars(select(Commission).where(Commission.order_id == order.id))
        statuses.append(c.status)
    world.click(link, shopper=shopper)
    order = world.place(shopper, merchant, [(product, 10_000)])
    world.pay(order)
    (c,) = session.scalars(select(Commission).where(Commission.order_id == order.id))
    assert c.status == "held"
    assert "refund_pattern" in {f.rule for f in session.scalars(select(FraudFlag))}
    _assert_reconciled(session)


def test_reconciliation_reports_every_discrepancy(world, session):
    order, _c, creator = _sale(world, session)
    _assert_reconciled(session)
    acc = ledger.account(session, kind=CREATOR_PENDING, owner_id=creator.id, currency="CNY")
    session.execute(
        text("UPDATE ledger_accounts SET balance_minor = balance_minor + 1 WHERE id = :i"),
        {"i": acc.id},
    )
    # A refund the commission domain never saw (the deals side changed the line only).
    session.execute(
        text("UPDATE order_lines SET refunded_minor = 500 WHERE order_id = :o"), {"o": order.id}
    )
    # A stray, unbalanced entry written behind the ledger's back.
    txn = ledger.post(
        session,
        reference="manual:1",
        kind="manual",
        source="test",
        source_id=None,
        legs=[
            ledger.Leg(acc, 5),
            ledger.Leg(ledger.account(session, kind="x", currency="CNY"), -5),
        ],
    )
    session.execute(
        text(
            "INSERT INTO ledger_entries "
            "(transaction_id, account_id, amount_minor, currency, created_at) "
            "VALUES (:t, :a, 7, 'CNY', :at)"
        ),
        {"t": txn.id, "a": acc.id, "at": utcnow().replace(tzinfo=None)},
    )
    found, _ = reconcile.run_checks(session)
    checks = {d.check for d in found}
    assert {
        "balance_mismatch",
        "refund_not_reversed",
        "transaction_unbalanced",
        "ledger_not_zero",
    } <= checks
