"""The batch path: attribute and post commission for many paid orders at once.

For backfills, replays after an outage and the ledger benchmark: it reads orders, lines,
clicks and rules in chunks, applies the same rules and arithmetic as the per-request path
(``rules``, ``money``) in memory, and writes commissions, ledger transactions and entries
with bulk inserts, then moves each touched balance with one update per account.

Differences from the per-request path, on purpose: clicks are matched by signed-in shopper
(not the anonymous visitor cookie) and by product (entry links to posts and live rooms
are not expanded), and fraud rules are not evaluated (run them per request).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from juxing import ledger
from juxing.commission.money import split
from juxing.commission.policy import POLICY
from juxing.kit.time import utcnow
from juxing.ledger.service import (
    CREATOR_PENDING,
    MERCHANT_COMMISSION,
    PLATFORM_REVENUE,
    account_code,
)
from juxing.models.commission import Click, Commission, CommissionRule, CommissionStatus
from juxing.models.deals import DealItem
from juxing.models.ledger import LedgerAccount, LedgerEntry, LedgerTransaction
from juxing.models.orders import Order, OrderLine


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


@dataclass
class BatchResult:
    orders: int = 0
    lines: int = 0
    attributed: int = 0
    transactions: int = 0


class _Accounts:
    """Account ids resolved in bulk, and balance deltas applied once per account."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.ids: dict[tuple[str, int | None, str], int] = {}
        self.delta: dict[int, int] = defaultdict(int)

    def resolve(self, keys: set[tuple[str, int | None, str]]) -> None:
        """Find or create every account in ``keys`` with two statements."""
        codes = {account_code(k, o, c): (k, o, c) for k, o, c in keys if (k, o, c) not in self.ids}
        if not codes:
            return
        found = dict(
            self.session.execute(
                select(LedgerAccount.code, LedgerAccount.id).where(
                    LedgerAccount.code.in_(list(codes))
                )
            ).all()
        )
        missing = [code for code in codes if code not in found]
        if missing:
            try:
                with self.session.begin_nested():
                    self.session.execute(
                        insert(_table(LedgerAccount)),
                        [
                            {
                                "code": code,
                                "kind": codes[code][0],
                                "owner_id": codes[code][1],
                                "currency": codes[code][2],
                                "balance_minor": 0,
                                "created_at": utcnow(),
                            }
                            for code in missing
                        ],
                    )
            except IntegrityError:  # created concurrently: fall back to one at a time
                for code in missing:
                    k, o, c = codes[code]
                    ledger.account(self.session, kind=k, owner_id=o, currency=c)
            found = dict(
                self.session.execute(
                    select(LedgerAccount.code, LedgerAccount.id).where(
                        LedgerAccount.code.in_(list(codes))
                    )
                ).all()
            )
        for code, key in codes.items():
            self.ids[key] = found[code]

    def id(self, kind: str, owner: int | None, currency: str) -> int:
        return self.ids[(kind, owner, currency)]

    def flush_balances(self) -> None:
        """One executemany of ``balance += delta``, in account-id order (no deadlocks)."""
        t = _table(LedgerAccount)
        params = [{"aid": k, "d": self.delta[k]} for k in sorted(self.delta) if self.delta[k]]
        if params:
            self.session.execute(
                update(t)
                .where(t.c.id == bindparam("aid"))
                .values(balance_minor=t.c.balance_minor + bindparam("d")),
                params,
            )
        self.delta.clear()


def _rules(session: Session, merchant_ids: set[int]) -> dict[tuple[int, str, int], CommissionRule]:
    rows = session.scalars(
        select(CommissionRule).where(CommissionRule.merchant_id.in_(merchant_ids))
    )
    return {(r.merchant_id, r.scope, r.target_id): r for r in rows}


def attribute_and_post(session: Session, *, order_ids: Sequence[int]) -> BatchResult:
    """Attribute and accrue the paid orders ``order_ids`` that have no commission yet."""
    result = BatchResult()
    rows = session.execute(
        select(
            OrderLine.id,
            OrderLine.order_id,
            OrderLine.product_id,
            OrderLine.deal_item_id,
            OrderLine.amount_minor,
            Order.shopper_id,
            Order.merchant_id,
            Order.currency,
            Order.created_at,
            Order.paid_at,
        )
        .join(Order, Order.id == OrderLine.order_id)
        .where(
            OrderLine.order_id.in_(order_ids),
            Order.paid_at.is_not(None),
            ~select(Commission.id).where(Commission.order_id == Order.id).exists(),
        )
        .order_by(OrderLine.id)
    ).all()
    if not rows:
        return result
    result.orders = len({r.order_id for r in rows})
    result.lines = len(rows)
    rules = _rules(session, {r.merchant_id for r in rows})
    deal_ids = {r.deal_item_id for r in rows if r.deal_item_id is not None}
    deals = (
        {
            d.id: (d.commission_rate_bp, d.campaign_id)
            for d in session.execute(
                select(DealItem.id, DealItem.commission_rate_bp, DealItem.campaign_id).where(
                    DealItem.id.in_(deal_ids)
                )
            )
        }
        if deal_ids
        else {}
    )
    # Clicks by shopper and product, oldest first (one query for the chunk).
    earliest = min(r.created_at for r in rows) - timedelta(days=POLICY.max_window_days)
    latest = max(r.created_at for r in rows)
    clicks: dict[tuple[int, int], list[Any]] = defaultdict(list)
    for hit in session.execute(
        select(
            Click.id,
            Click.shopper_id,
            Click.product_id,
            Click.clicked_at,
            Click.creator_id,
            Click.link_id,
        )
        .where(
            Click.shopper_id.in_({r.shopper_id for r in rows}),
            Click.clicked_at >= earliest,
            Click.clicked_at <= latest,
            Click.product_id.is_not(None),
        )
        .order_by(Click.clicked_at, Click.id)
    ):
        clicks[(hit.shopper_id, hit.product_id)].append(hit)
    fee_bp = POLICY.platform_fee_bp
    now = utcnow()
    new_commissions: list[dict[str, Any]] = []
    for r in rows:
        merchant_rule = rules.get((r.merchant_id, "merchant", 0))
        product_rule = rules.get((r.merchant_id, "product", r.product_id))
        deal = deals.get(r.deal_item_id) if r.deal_item_id is not None else None
        campaign_rule = rules.get((r.merchant_id, "campaign", deal[1])) if deal else None
        window = next(
            (x.window_days for x in (campaign_rule, merchant_rule) if x and x.window_days),
            POLICY.default_window_days,
        )
        if deal and deal[0] is not None:
            scope, rule_id, rate = "deal_item", r.deal_item_id, deal[0]
        else:
            scope, rule_id, rate = "none", None, 0
            for name, rule in (
                ("product", product_rule),
                ("campaign", campaign_rule),
                ("merchant", merchant_rule),
            ):
                if rule is not None and rule.rate_bp is not None:
                    scope, rule_id, rate = name, rule.id, rule.rate_bp
                    break
        candidates = clicks.get((r.shopper_id, r.product_id))
        if not candidates:
            continue
        i = bisect.bisect_right([c.clicked_at for c in candidates], r.created_at) - 1
        if i < 0 or candidates[i].clicked_at < r.created_at - timedelta(days=window):
            continue
        click = candidates[i]
        self_purchase = click.creator_id == r.shopper_id
        s = split(
            amount_minor=r.amount_minor,
            base_rate_bp=0 if self_purchase else rate,
            bonus_bp=0,
            fee_bp=fee_bp,
        )
        status = (
            CommissionStatus.NO_COMMISSION
            if self_purchase or rate == 0
            else CommissionStatus.PENDING
        )
        new_commissions.append(
            {
                "order_id": r.order_id,
                "order_line_id": r.id,
                "merchant_id": r.merchant_id,
                "shopper_id": r.shopper_id,
                "creator_id": click.creator_id,
                "product_id": r.product_id,
                "deal_item_id": r.deal_item_id,
                "click_id": click.id,
                "link_id": click.link_id,
                "clicked_at": click.clicked_at,
                "decision": "self_purchase" if self_purchase else "attributed",
                "status": status.value,
                "window_days": window,
                "rule_scope": scope,
                "rule_id": rule_id,
                "base_rate_bp": 0 if self_purchase else rate,
                "bonus_bp": 0,
                "fee_bp": fee_bp,
                "currency": r.currency,
                "amount_minor": r.amount_minor,
                "base_minor": s.base,
                "bonus_minor": s.bonus,
                "fee_minor": s.fee,
                "refunded_minor": 0,
                "explanation": (
                    f"batch: last click #{click.id} by creator {click.creator_id} inside the "
                    f"{window}-day window; rate {rate}bp from the {scope} rule"
                ),
                "placed_at": r.created_at,
                "paid_at": r.paid_at,
            }
        )
    if not new_commissions:
        return result
    ctable, ttable = _table(Commission), _table(LedgerTransaction)
    # Plain executemany (no RETURNING: SQLite would insert row by row), then one query
    # each to learn the ids by their unique keys.
    session.execute(insert(ctable), new_commissions)
    line_ids = [c["order_line_id"] for c in new_commissions]
    by_line = dict(
        session.execute(
            select(ctable.c.order_line_id, ctable.c.id).where(ctable.c.order_line_id.in_(line_ids))
        ).all()
    )
    result.attributed = len(new_commissions)
    postable = [(by_line[c["order_line_id"]], c) for c in new_commissions if c["base_minor"] > 0]
    txn_ids: list[int] = []
    if postable:
        session.execute(
            insert(ttable),
            [
                {
                    "reference": f"commission:{cid}:accrue",
                    "kind": "commission_accrual",
                    "source": "commission",
                    "source_id": cid,
                    "memo": f"order {c['order_id']} line {c['order_line_id']}: batch",
                    "created_at": now,
                }
                for cid, c in postable
            ],
        )
        by_source = dict(
            session.execute(
                select(ttable.c.source_id, ttable.c.id).where(
                    ttable.c.source == "commission",
                    ttable.c.kind == "commission_accrual",
                    ttable.c.source_id.in_([cid for cid, _ in postable]),
                )
            ).all()
        )
        txn_ids = [by_source[cid] for cid, _ in postable]
    accounts = _Accounts(session)
    accounts.resolve(
        {(PLATFORM_REVENUE, None, c["currency"]) for _, c in postable}
        | {(MERCHANT_COMMISSION, c["merchant_id"], c["currency"]) for _, c in postable}
        | {(CREATOR_PENDING, c["creator_id"], c["currency"]) for _, c in postable}
    )
    entries = []
    for txn_id, (_cid, row) in zip(txn_ids, postable, strict=True):
        cur = row["currency"]
        base, fee, bonus = row["base_minor"], row["fee_minor"], row["bonus_minor"]
        for account_id, amount in (
            (accounts.id(MERCHANT_COMMISSION, row["merchant_id"], cur), -base),
            (accounts.id(PLATFORM_REVENUE, None, cur), fee - bonus),
            (accounts.id(CREATOR_PENDING, row["creator_id"], cur), base - fee + bonus),
        ):
            if amount:
                entries.append(
                    {
                        "transaction_id": txn_id,
                        "account_id": account_id,
                        "amount_minor": amount,
                        "currency": cur,
                        "created_at": now,
                    }
                )
                accounts.delta[account_id] += amount
    if entries:
        session.execute(insert(_table(LedgerEntry)), entries)
    accounts.flush_balances()
    result.transactions = len(txn_ids)
    return result
