"""Creator earnings and merchant commission statements (JSON rows and CSV)."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from juxing import ledger
from juxing.commission.money import Split, kept_split
from juxing.ledger.service import CREATOR_AVAILABLE, CREATOR_PENDING, MERCHANT_COMMISSION
from juxing.models.commission import Commission

MAX_ROWS = 50_000


@dataclass(frozen=True)
class StatementRow:
    commission_id: int
    order_id: int
    order_line_id: int
    product_id: int
    creator_id: int
    merchant_id: int
    placed_at: datetime
    paid_at: datetime | None
    status: str
    rule_scope: str
    base_rate_bp: int
    bonus_bp: int
    currency: str
    amount_minor: int
    refunded_minor: int
    commission_minor: int  # merchant statement: charged; creator statement: earned
    clicked_at: datetime | None


def _rows(
    session: Session, *, where: list, since: datetime | None, until: datetime | None, side: str
) -> list[StatementRow]:
    stmt = select(Commission).where(*where).order_by(Commission.placed_at, Commission.id)
    if since is not None:
        stmt = stmt.where(Commission.placed_at >= since)
    if until is not None:
        stmt = stmt.where(Commission.placed_at < until)
    out = []
    for c in session.scalars(stmt.limit(MAX_ROWS)):
        k = kept_split(
            Split(base=c.base_minor, bonus=c.bonus_minor, fee=c.fee_minor),
            refunded_minor=c.refunded_minor,
            amount_minor=c.amount_minor,
        )
        voided = c.status == "voided"
        value = 0 if voided else (k.creator if side == "creator" else k.base)
        out.append(
            StatementRow(
                commission_id=c.id,
                order_id=c.order_id,
                order_line_id=c.order_line_id,
                product_id=c.product_id,
                creator_id=c.creator_id,
                merchant_id=c.merchant_id,
                placed_at=c.placed_at,
                paid_at=c.paid_at,
                status=c.status,
                rule_scope=c.rule_scope,
                base_rate_bp=c.base_rate_bp,
                bonus_bp=c.bonus_bp,
                currency=c.currency,
                amount_minor=c.amount_minor,
                refunded_minor=c.refunded_minor,
                commission_minor=value,
                clicked_at=c.clicked_at,
            )
        )
    return out


def creator_statement(
    session: Session, *, creator_id: int, since: datetime | None, until: datetime | None
) -> list[StatementRow]:
    """A creator's attributed lines with what each earned after refunds."""
    return _rows(
        session,
        where=[Commission.creator_id == creator_id, Commission.decision == "attributed"],
        since=since,
        until=until,
        side="creator",
    )


def merchant_statement(
    session: Session, *, merchant_id: int, since: datetime | None, until: datetime | None
) -> list[StatementRow]:
    """A merchant's attributed lines with the commission charged after refunds."""
    return _rows(
        session,
        where=[Commission.merchant_id == merchant_id, Commission.decision == "attributed"],
        since=since,
        until=until,
        side="merchant",
    )


def to_csv(rows: list[StatementRow]) -> str:
    buf = io.StringIO()
    fields = list(StatementRow.__dataclass_fields__)
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for r in rows:
        d = asdict(r)
        for key in ("placed_at", "paid_at", "clicked_at"):
            d[key] = d[key].isoformat() if d[key] is not None else ""
        writer.writerow(d)
    return buf.getvalue()


@dataclass(frozen=True)
class Earnings:
    currency: str
    pending_minor: int
    available_minor: int
    held_count: int


def creator_earnings(session: Session, *, creator_id: int, currency: str) -> Earnings:
    """The creator's pending and available balances, straight from the ledger."""
    from sqlalchemy import func

    held = session.scalar(
        select(func.count())
        .select_from(Commission)
        .where(Commission.creator_id == creator_id, Commission.status == "held")
    )
    return Earnings(
        currency=currency,
        pending_minor=ledger.balance(
            session, kind=CREATOR_PENDING, owner_id=creator_id, currency=currency
        ),
        available_minor=ledger.balance(
            session, kind=CREATOR_AVAILABLE, owner_id=creator_id, currency=currency
        ),
        held_count=int(held or 0),
    )


def merchant_charged(session: Session, *, merchant_id: int, currency: str) -> int:
    """Total commission charged to the merchant (positive), from the ledger."""
    return -ledger.balance(
        session, kind=MERCHANT_COMMISSION, owner_id=merchant_id, currency=currency
    )
