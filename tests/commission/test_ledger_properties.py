"""Hypothesis stateful testing: random sequences of clicks, orders, payments, refunds,
confirmations, maturity, fraud reviews and payouts; the ledger invariants are checked after
every step (reconciliation finds nothing; balances match an independent model)."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from factories import make_user
from juxing import ledger
from juxing.commission import payouts, reconcile, service
from juxing.commission.money import Split, kept_split
from juxing.commission.policy import POLICY
from juxing.kit.db import Database
from juxing.kit.errors import Conflict, Unprocessable
from juxing.kit.time import utcnow
from juxing.ledger.service import CREATOR_AVAILABLE, CREATOR_PENDING, InsufficientBalance
from juxing.models.accounts import Role
from juxing.models.commission import Commission, CommissionRule, Payout
from juxing.models.ledger import LedgerEntry

from .conftest import World


class CommissionMachine(RuleBasedStateMachine):
    url: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.db = Database(self.url)
        self.conn = self.db.engine.connect()
        self.outer = self.conn.begin()
        self.s = Session(bind=self.conn, join_transaction_mode="create_savepoint")
        self.w = World(self.s)
        self.clock = utcnow()
        self.merchant = self.w.merchant()
        self.products = [self.w.product(self.merchant) for _ in range(2)]
        self.s.add(
            CommissionRule(
                merchant_id=self.merchant.id, scope="merchant", target_id=0, rate_bp=1500
            )
        )
        self.creators = [make_user(self.s, Role.CREATOR, Role.SHOPPER) for _ in range(2)]
        self.shoppers = [make_user(self.s) for _ in range(2)] + [self.creators[0]]
        self.links = {(c.id, p.id): self.w.link(c, p) for c in self.creators for p in self.products}
        self.orders: list = []
        self.operator = make_user(self.s, Role.OPERATOR)

    def teardown(self) -> None:
        self.s.close()
        self.outer.rollback()
        self.conn.close()
        self.db.dispose()

    @rule(c=st.integers(0, 1), who=st.integers(0, 2), p=st.integers(0, 1), ago=st.integers(1, 600))
    def click(self, c, who, p, ago):
        creator, product = self.creators[c], self.products[p]
        self.w.click(
            self.links[(creator.id, product.id)],
            shopper=self.shoppers[who],
            at=self.clock - timedelta(minutes=ago),
            ip=f"10.0.0.{who}",
            device=f"dev-{who}",
        )

    @rule(
        who=st.integers(0, 2),
        amounts=st.lists(st.integers(1, 50_000), min_size=1, max_size=2),
        pay=st.booleans(),
    )
    def place(self, who, amounts, pay):
        lines = [(self.products[i % 2], a) for i, a in enumerate(amounts)]
        order = self.w.place(self.shoppers[who], self.merchant, lines, at=self.clock)
        self.orders.append(order)
        if pay:
            self.w.pay(order, at=self.clock)

    @precondition(lambda self: self.orders)
    @rule(i=st.integers(0, 100))
    def pay_or_cancel(self, i):
        order = self.orders[i % len(self.orders)]
        if order.status == "pending_payment":
            if i % 4 == 0:
                self.w.cancel(order)
            else:
                self.w.pay(order, at=self.clock)

    @precondition(lambda self: self.orders)
    @rule(i=st.integers(0, 100), part=st.integers(1, 100))
    def refund(self, i, part):
        order = self.orders[i % len(self.orders)]
        if order.paid_at is None:
            return
        line = self.w.lines(order)[i % len(self.w.lines(order))]
        left = line.amount_minor - line.refunded_minor
        amount = max(1, left * part // 100)
        if left > 0:
            self.w.refund(order, line, min(amount, left))

    @precondition(lambda self: self.orders)
    @rule(i=st.integers(0, 100))
    def receive(self, i):
        order = self.orders[i % len(self.orders)]
        if order.paid_at is not None and order.received_at is None:
            self.w.receive(order, at=self.clock)

    @rule(days=st.integers(1, 10))
    def time_passes(self, days):
        self.clock += timedelta(days=days)
        service.mature_due(self.s, at=self.clock)

    @rule(c=st.integers(0, 1), amount=st.none() | st.integers(1, 20_000))
    def payout(self, c, amount):
        with contextlib.suppress(Unprocessable, InsufficientBalance):
            payouts.request_payout(
                self.s, creator_id=self.creators[c].id, currency="CNY", amount_minor=amount
            )

    @rule(paid=st.booleans())
    def settle(self, paid):
        p = self.s.scalar(select(Payout).where(Payout.status == "in_transit").limit(1))
        if p is not None:
            payouts.settle_payout(self.s, payout_id=p.id, operator_id=self.operator.id, paid=paid)

    @rule(release=st.booleans())
    def review(self, release):
        c = self.s.scalar(select(Commission).where(Commission.status == "held").limit(1))
        if c is None:
            return
        act = service.release if release else service.void
        act(self.s, commission_id=c.id, operator_id=self.operator.id, reason="property test")
        with pytest.raises(Conflict):
            act(self.s, commission_id=c.id, operator_id=self.operator.id, reason="again")

    @invariant()
    def reconciliation_finds_nothing(self):
        found, _ = reconcile.run_checks(self.s)
        assert found == [], found

    @invariant()
    def sum_of_all_entries_is_zero(self):
        assert (
            self.s.scalar(select(func.coalesce(func.sum(LedgerEntry.amount_minor), 0))) or 0
        ) == 0

    @invariant()
    def creator_balances_match_an_independent_model(self):
        for creator in self.creators:
            pending = available = 0
            for c in self.s.scalars(select(Commission).where(Commission.creator_id == creator.id)):
                if c.status in ("placed", "cancelled", "no_commission", "voided"):
                    continue
                k = kept_split(
                    Split(c.base_minor, c.bonus_minor, c.fee_minor),
                    refunded_minor=c.refunded_minor,
                    amount_minor=c.amount_minor,
                ).creator
                if c.matured_at is None:
                    pending += k
                else:
                    available += k
            for p in self.s.scalars(select(Payout).where(Payout.creator_id == creator.id)):
                if p.status != "failed":
                    available -= p.amount_minor

            def bal(kind):
                return ledger.balance(self.s, kind=kind, owner_id=creator.id, currency="CNY")

            assert bal(CREATOR_PENDING) == pending
            assert bal(CREATOR_AVAILABLE) == available
            # A self-purchase never earns.
            assert not self.s.scalar(
                select(func.count())
                .select_from(Commission)
                .where(Commission.creator_id == Commission.shopper_id, Commission.base_minor > 0)
            )


def _run(database_url, monkeypatch, *, examples: int, steps: int) -> None:
    from hypothesis.stateful import run_state_machine_as_test

    monkeypatch.setattr(POLICY, "flood_clicks_per_hour", 4)  # so that holds happen too
    CommissionMachine.url = database_url
    run_state_machine_as_test(
        CommissionMachine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


def test_ledger_invariants_hold_under_random_operations(database_url, monkeypatch):
    _run(database_url, monkeypatch, examples=4, steps=15)


@pytest.mark.slow
def test_ledger_invariants_hold_under_many_random_operations(database_url, monkeypatch):
    _run(database_url, monkeypatch, examples=40, steps=40)
