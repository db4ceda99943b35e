"""Payouts: available balance → in transit → paid (or failed, and back), with a statement."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from juxing import ledger
from juxing.commission.policy import POLICY
from juxing.kit.errors import Conflict, NotFound, Unprocessable
from juxing.kit.time import utcnow
from juxing.ledger.service import (
    CREATOR_AVAILABLE,
    PAYOUTS_IN_TRANSIT,
    PAYOUTS_SETTLED,
)
from juxing.models.commission import Payout, PayoutStatus
from juxing.models.ledger import LedgerEntry, LedgerTransaction


def request_payout(
    session: Session, *, creator_id: int, currency: str, amount_minor: int | None = None
) -> Payout:
    """Pay out ``amount_minor`` (default: the whole available balance) above the minimum."""
    available = ledger.account(
        session, kind=CREATOR_AVAILABLE, owner_id=creator_id, currency=currency
    )
    session.refresh(available, ["balance_minor"])
    amount = available.balance_minor if amount_minor is None else amount_minor
    if amount < POLICY.payout_minimum_minor:
        raise Unprocessable(
            f"A payout must be at least {POLICY.payout_minimum_minor} minor units.",
            code="payout_below_minimum",
            details={
                "field": "body.amount_minor",
                "minimum_minor": POLICY.payout_minimum_minor,
                "available_minor": available.balance_minor,
            },
        )
    previous = session.scalar(
        select(Payout)
        .where(Payout.creator_id == creator_id, Payout.currency == currency)
        .order_by(Payout.id.desc())
        .limit(1)
    )
    with session.begin_nested():  # a refused overdraft leaves no payout row behind
        return _create_payout(session, available, creator_id, currency, amount, previous)


def _create_payout(session, available, creator_id, currency, amount, previous):
    now = utcnow()
    payout = Payout(
        creator_id=creator_id,
        amount_minor=amount,
        currency=currency,
        status=PayoutStatus.IN_TRANSIT.value,
        period_start=previous.requested_at if previous is not None else None,
        requested_at=now,
    )
    session.add(payout)
    session.flush()
    in_transit = ledger.account(session, kind=PAYOUTS_IN_TRANSIT, currency=currency)
    txn = ledger.post(
        session,
        reference=f"payout:{payout.id}:request",
        kind="payout_request",
        source="payout",
        source_id=payout.id,
        legs=[ledger.Leg(available, -amount), ledger.Leg(in_transit, amount)],
        memo=f"payout {payout.id} to creator {creator_id}",
        at=now,
        no_overdraft={available.id},
    )
    assert txn is not None
    payout.entry_id = session.scalar(
        select(LedgerEntry.id).where(
            LedgerEntry.transaction_id == txn.id, LedgerEntry.account_id == available.id
        )
    )
    session.flush()
    return payout


def settle_payout(
    session: Session, *, payout_id: int, operator_id: int, paid: bool, reason: str | None = None
) -> Payout:
    """The bank confirmed (paid) or bounced (failed: the money returns to available)."""
    payout = get_payout(session, payout_id=payout_id)
    new_status = PayoutStatus.PAID if paid else PayoutStatus.FAILED
    now = utcnow()
    result = session.execute(
        update(Payout)
        .where(Payout.id == payout.id, Payout.status == PayoutStatus.IN_TRANSIT)
        .values(
            status=new_status.value,
            settled_at=now,
            settled_by_id=operator_id,
            failure_reason=None if paid else (reason or "failed")[:200],
        )
        .execution_options(synchronize_session=False)
    )
    session.refresh(payout)
    if not result.rowcount:  # type: ignore[attr-defined]
        if payout.status == new_status.value:
            return payout  # a retry of the same settlement
        raise Conflict("This payout was already settled.", code="payout_settled")
    in_transit = ledger.account(session, kind=PAYOUTS_IN_TRANSIT, currency=payout.currency)
    if paid:
        to = ledger.account(session, kind=PAYOUTS_SETTLED, currency=payout.currency)
    else:
        to = ledger.account(
            session, kind=CREATOR_AVAILABLE, owner_id=payout.creator_id, currency=payout.currency
        )
    ledger.post(
        session,
        reference=f"payout:{payout.id}:{new_status.value}",
        kind=f"payout_{new_status.value}",
        source="payout",
        source_id=payout.id,
        legs=[ledger.Leg(in_transit, -payout.amount_minor), ledger.Leg(to, payout.amount_minor)],
        memo=f"payout {payout.id} {new_status.value}" + (f": {reason}" if reason else ""),
        at=now,
    )
    return payout


def get_payout(session: Session, *, payout_id: int) -> Payout:
    payout = session.get(Payout, payout_id)
    if payout is None:
        raise NotFound("No such payout.")
    return payout


def list_payouts(
    session: Session, *, creator_id: int | None, limit: int, offset: int
) -> tuple[list[Payout], int]:
    """Payouts, newest first (one creator's, or all for operators)."""
    stmt = select(Payout)
    if creator_id is not None:
        stmt = stmt.where(Payout.creator_id == creator_id)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(Payout.id.desc()).limit(limit).offset(offset)).all()
    return list(rows), int(total)


@dataclass(frozen=True)
class StatementLine:
    at: datetime
    kind: str
    reference: str
    memo: str
    amount_minor: int
    balance_minor: int


@dataclass(frozen=True)
class PayoutStatement:
    payout: Payout
    opening_minor: int
    closing_minor: int
    lines: list[StatementLine]


def statement(session: Session, *, payout: Payout) -> PayoutStatement:
    """Movements of the creator's available balance since the previous payout, up to this one."""
    account = ledger.account(
        session, kind=CREATOR_AVAILABLE, owner_id=payout.creator_id, currency=payout.currency
    )
    previous_entry = session.scalar(
        select(func.max(Payout.entry_id)).where(
            Payout.creator_id == payout.creator_id,
            Payout.currency == payout.currency,
            Payout.id < payout.id,
        )
    )
    low = previous_entry or 0
    opening = session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount_minor), 0)).where(
            LedgerEntry.account_id == account.id, LedgerEntry.id <= low
        )
    )
    rows = session.execute(
        select(LedgerEntry, LedgerTransaction)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(
            LedgerEntry.account_id == account.id,
            LedgerEntry.id > low,
            LedgerEntry.id <= (payout.entry_id or 0),
        )
        .order_by(LedgerEntry.id)
    ).all()
    running = int(opening or 0)
    lines = []
    for entry, txn in rows:
        running += entry.amount_minor
        lines.append(
            StatementLine(
                at=entry.created_at,
                kind=txn.kind,
                reference=txn.reference,
                memo=txn.memo,
                amount_minor=entry.amount_minor,
                balance_minor=running,
            )
        )
    return PayoutStatement(
        payout=payout, opening_minor=int(opening or 0), closing_minor=running, lines=lines
    )
