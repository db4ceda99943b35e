"""Commission reconciliation on top of the ledger's own checks.

Proves, with set-based SQL over every commission and payout:
- every paid attributed order line has its entries, exactly as its recorded rate says;
- every refund has its reversal (the line's refunded amount was clawed back in proportion);
- no paid order still has an un-accrued attributed line;
- every payout's entries match its status;
and (``juxing.ledger.check_ledger``) that each transaction balances, all entries sum to
zero and every balance equals the sum of its entries. Each run is recorded.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import and_, case, func, literal, select
from sqlalchemy.orm import Session

from juxing.kit.time import utcnow
from juxing.ledger.reconcile import Discrepancy, check_ledger
from juxing.ledger.service import (
    CREATOR_AVAILABLE,
    CREATOR_PENDING,
    MERCHANT_COMMISSION,
    PAYOUTS_IN_TRANSIT,
    PAYOUTS_SETTLED,
    PLATFORM_REVENUE,
)
from juxing.models.commission import Commission, CommissionStatus, Payout, PayoutStatus
from juxing.models.ledger import LedgerAccount, LedgerEntry, LedgerTransaction, ReconciliationRun
from juxing.models.orders import Order, OrderLine

MAX_STORED = 200


def _kind_sum(kind: str):
    return func.sum(case((LedgerAccount.kind == kind, LedgerEntry.amount_minor), else_=0))


def _sums_by_source(source: str, kinds: list[str]):
    e, t, a = LedgerEntry, LedgerTransaction, LedgerAccount
    return (
        select(t.source_id.label("sid"), *[_kind_sum(k).label(k) for k in kinds])
        .select_from(e)
        .join(t, t.id == e.transaction_id)
        .join(a, a.id == e.account_id)
        .where(t.source == source)
        .group_by(t.source_id)
        .subquery()
    )


def _kept(part, c):
    return case(
        (c.amount_minor > 0, part - (part * c.refunded_minor) // c.amount_minor), else_=part
    )


def check_commissions(session: Session, *, limit: int = 1000) -> list[Discrepancy]:
    """Every commission's entries equal what its rate, refunds and status say."""
    c, ol, o = Commission, OrderLine, Order
    kinds = [MERCHANT_COMMISSION, PLATFORM_REVENUE, CREATOR_PENDING, CREATOR_AVAILABLE]
    s = _sums_by_source("commission", kinds)
    live = c.status != CommissionStatus.VOIDED.value
    zero = literal(0)
    base, bonus, fee = _kept(c.base_minor, c), _kept(c.bonus_minor, c), _kept(c.fee_minor, c)
    exp_m = case((live, -base), else_=zero)
    exp_p = case((live, fee - bonus), else_=zero)
    exp_cr = case((live, base - fee + bonus), else_=zero)
    exp_pend = case((c.matured_at.is_(None), exp_cr), else_=zero)
    exp_avail = case((c.matured_at.is_not(None), exp_cr), else_=zero)
    got = {k: func.coalesce(getattr(s.c, k), zero) for k in kinds}
    paid = c.status.in_(
        [
            CommissionStatus.PENDING.value,
            CommissionStatus.HELD.value,
            CommissionStatus.AVAILABLE.value,
            CommissionStatus.VOIDED.value,
        ]
    )
    expected_base = (c.amount_minor * c.base_rate_bp) // 10000
    rows = session.execute(
        select(
            c.id,
            c.order_id,
            c.order_line_id,
            c.status,
            exp_m,
            exp_p,
            exp_pend,
            exp_avail,
            got[MERCHANT_COMMISSION],
            got[PLATFORM_REVENUE],
            got[CREATOR_PENDING],
            got[CREATOR_AVAILABLE],
            c.refunded_minor,
            ol.refunded_minor,
            c.amount_minor,
            ol.amount_minor,
            c.base_minor,
            expected_base,
            o.paid_at,
        )
        .select_from(c)
        .join(ol, ol.id == c.order_line_id)
        .join(o, o.id == c.order_id)
        .outerjoin(s, s.c.sid == c.id)
        .where(
            (got[MERCHANT_COMMISSION] != exp_m)
            | (got[PLATFORM_REVENUE] != exp_p)
            | (got[CREATOR_PENDING] != exp_pend)
            | (got[CREATOR_AVAILABLE] != exp_avail)
            | and_(paid, c.refunded_minor != ol.refunded_minor)
            | and_(paid, c.amount_minor != ol.amount_minor)
            | and_(paid, c.base_minor != expected_base)
            | and_(c.status == CommissionStatus.PLACED.value, o.paid_at.is_not(None))
        )
        .limit(limit)
    ).all()
    found = []
    for r in rows:
        cid, oid, lid, status = r[0], r[1], r[2], r[3]
        expected, actual = r[4:8], r[8:12]
        subject = f"commission:{cid} (order {oid} line {lid})"
        if status == CommissionStatus.PLACED.value and r[18] is not None:
            found.append(Discrepancy("accrual_missing", subject, {"status": status}))
        if status != CommissionStatus.PLACED.value and r[12] != r[13]:
            found.append(
                Discrepancy(
                    "refund_not_reversed",
                    subject,
                    {"clawed_back_for_minor": int(r[12]), "line_refunded_minor": int(r[13])},
                )
            )
        if status != CommissionStatus.PLACED.value and (r[14] != r[15] or r[16] != r[17]):
            found.append(
                Discrepancy(
                    "commission_amount_mismatch",
                    subject,
                    {
                        "commission_amount_minor": int(r[14]),
                        "line_amount_minor": int(r[15]),
                        "base_minor": int(r[16]),
                        "rate_says_minor": int(r[17]),
                    },
                )
            )
        if tuple(map(int, expected)) != tuple(map(int, actual)):
            names = ["merchant", "platform", "creator_pending", "creator_available"]
            found.append(
                Discrepancy(
                    "commission_entries_mismatch",
                    subject,
                    {
                        "status": status,
                        "expected": dict(zip(names, map(int, expected), strict=True)),
                        "ledger": dict(zip(names, map(int, actual), strict=True)),
                    },
                )
            )
    return found[:limit]


def check_payouts(session: Session, *, limit: int = 1000) -> list[Discrepancy]:
    """Every payout's entries match its status (requested, paid or failed)."""
    p = Payout
    kinds = [CREATOR_AVAILABLE, PAYOUTS_IN_TRANSIT, PAYOUTS_SETTLED]
    s = _sums_by_source("payout", kinds)
    zero = literal(0)
    amt = p.amount_minor
    exp_av = case((p.status == PayoutStatus.FAILED.value, zero), else_=-amt)
    exp_tr = case((p.status == PayoutStatus.IN_TRANSIT.value, amt), else_=zero)
    exp_st = case((p.status == PayoutStatus.PAID.value, amt), else_=zero)
    got = [func.coalesce(getattr(s.c, k), zero) for k in kinds]
    rows = session.execute(
        select(p.id, p.status, exp_av, exp_tr, exp_st, *got)
        .outerjoin(s, s.c.sid == p.id)
        .where((got[0] != exp_av) | (got[1] != exp_tr) | (got[2] != exp_st))
        .limit(limit)
    ).all()
    names = ["creator_available", "in_transit", "settled"]
    return [
        Discrepancy(
            "payout_entries_mismatch",
            f"payout:{r[0]}",
            {
                "status": r[1],
                "expected": dict(zip(names, map(int, r[2:5]), strict=True)),
                "ledger": dict(zip(names, map(int, r[5:8]), strict=True)),
            },
        )
        for r in rows
    ]


def run_checks(session: Session, *, limit: int = 1000) -> tuple[list[Discrepancy], int]:
    """All checks: the ledger's invariants, then commission and payout entries."""
    found, entries = check_ledger(session, limit=limit)
    found += check_commissions(session, limit=limit)
    found += check_payouts(session, limit=limit)
    return found, entries


def run_reconciliation(
    session: Session, *, trigger: str
) -> tuple[ReconciliationRun, list[Discrepancy]]:
    """Run every check and record the run (its first discrepancies are stored)."""
    started = utcnow()
    t0 = time.perf_counter()
    found, entries = run_checks(session)
    run = ReconciliationRun(
        started_at=started,
        finished_at=utcnow(),
        ok=not found,
        trigger=trigger,
        checked_entries=entries,
        discrepancy_count=len(found),
        discrepancies=[d.as_dict() for d in found[:MAX_STORED]],
    )
    session.add(run)
    session.flush()
    run_seconds = time.perf_counter() - t0
    session.info["reconcile_seconds"] = run_seconds
    return run, found


def summary(run: ReconciliationRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "ok": run.ok,
        "trigger": run.trigger,
        "checked_entries": run.checked_entries,
        "discrepancy_count": run.discrepancy_count,
        "started_at": run.started_at.isoformat(),
    }
