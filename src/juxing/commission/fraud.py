"""Fraud rules. A flagged commission is held for operator review (release or void).

- ``self_purchase``: a creator buying through their own link earns nothing (attribution);
  ``linked_device`` catches the disguised kind: the attributing click came from an IP or
  device the creator used for their own signed-in clicks.
- ``click_flood``: too many clicks from one IP or device on one creator's links in an hour.
- ``abnormal_conversion``: more orders per click than a real audience produces (7 days).
- ``refund_pattern``: the same shopper keeps buying through the creator and refunding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from juxing.commission.policy import POLICY
from juxing.models.commission import Click, Commission, CommissionStatus
from juxing.models.orders import Order


@dataclass(frozen=True)
class Flag:
    rule: str
    details: dict[str, Any] = field(default_factory=dict)


def evaluate(session: Session, *, commission: Commission, at: datetime) -> list[Flag]:
    """Every rule that fires for a just-accrued commission."""
    click = session.get(Click, commission.click_id) if commission.click_id else None
    if click is None:
        return []
    flags: list[Flag] = []
    flags += _linked_device(session, click)
    flags += _click_flood(session, click)
    flags += _abnormal_conversion(session, creator_id=commission.creator_id, at=at)
    flags += _refund_pattern(
        session, shopper_id=commission.shopper_id, creator_id=commission.creator_id, at=at
    )
    return flags


def _linked_device(session: Session, click: Click) -> list[Flag]:
    own = session.scalar(
        select(func.count())
        .select_from(Click)
        .where(
            Click.shopper_id == click.creator_id,
            or_(Click.ip_hash == click.ip_hash, Click.device_hash == click.device_hash),
            Click.clicked_at >= click.clicked_at - timedelta(days=30),
        )
    )
    if own:
        return [Flag("linked_device", {"click_id": click.id, "creator_own_clicks": int(own)})]
    return []


def _click_flood(session: Session, click: Click) -> list[Flag]:
    since = click.clicked_at - timedelta(hours=1)
    flags = []
    for name, column, value in (
        ("ip", Click.ip_hash, click.ip_hash),
        ("device", Click.device_hash, click.device_hash),
    ):
        n = session.scalar(
            select(func.count())
            .select_from(Click)
            .where(
                column == value,
                Click.creator_id == click.creator_id,
                Click.clicked_at >= since,
                Click.clicked_at <= click.clicked_at,
            )
        )
        if n and n >= POLICY.flood_clicks_per_hour:
            flags.append(Flag("click_flood", {"by": name, "clicks_in_hour": int(n)}))
    return flags


def _abnormal_conversion(session: Session, *, creator_id: int, at: datetime) -> list[Flag]:
    since = at - timedelta(days=7)
    orders = session.scalar(
        select(func.count(func.distinct(Commission.order_id))).where(
            Commission.creator_id == creator_id,
            Commission.placed_at >= since,
            Commission.decision == "attributed",
        )
    )
    if not orders or orders < POLICY.conversion_min_orders:
        return []
    clicks = session.scalar(
        select(func.count())
        .select_from(Click)
        .where(Click.creator_id == creator_id, Click.clicked_at >= since)
    )
    ratio = orders / max(int(clicks or 0), 1)
    if ratio > POLICY.conversion_max_ratio:
        return [
            Flag(
                "abnormal_conversion",
                {"orders_7d": int(orders), "clicks_7d": int(clicks or 0), "ratio": round(ratio, 3)},
            )
        ]
    return []


def _fully_refunded(session: Session, *, shopper_id: int, creator_id: int, at: datetime) -> int:
    since = at - timedelta(days=POLICY.refund_pattern_days)
    n = session.scalar(
        select(func.count(func.distinct(Commission.order_id))).where(
            Commission.shopper_id == shopper_id,
            Commission.creator_id == creator_id,
            Commission.placed_at >= since,
            Commission.amount_minor > 0,
            Commission.refunded_minor >= Commission.amount_minor,
        )
    )
    return int(n or 0)


def _refund_pattern(
    session: Session, *, shopper_id: int, creator_id: int, at: datetime
) -> list[Flag]:
    n = _fully_refunded(session, shopper_id=shopper_id, creator_id=creator_id, at=at)
    if n >= POLICY.refund_pattern_count:
        return [Flag("refund_pattern", {"shopper_id": shopper_id, "refunded_orders": n})]
    return []


def after_refund(session: Session, *, order: Order, at: datetime) -> None:
    """A refund may complete a buy-then-refund pattern: hold that pair's pending commission."""
    from juxing.commission.service import hold

    creators = set(
        session.scalars(
            select(Commission.creator_id).where(
                Commission.order_id == order.id, Commission.decision == "attributed"
            )
        )
    )
    for creator_id in creators:
        flags = _refund_pattern(session, shopper_id=order.shopper_id, creator_id=creator_id, at=at)
        if not flags:
            continue
        for c in session.scalars(
            select(Commission).where(
                Commission.shopper_id == order.shopper_id,
                Commission.creator_id == creator_id,
                Commission.status == CommissionStatus.PENDING,
            )
        ).all():
            hold(session, commission=c, flags=flags, at=at)
