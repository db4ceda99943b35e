"""Domain events of the deals engine, published with ``kit.signals.publish(session, event)``
inside the transaction that caused them (commission, feed and analytics subscribe).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class OrderPlaced:
    """An order was created (stock reserved, price locked, payment pending). The shopper,
    visitor cookie and time of placement ride along so that subscribers on the buy path can
    decide without loading the order."""

    order_id: int
    shopper_id: int
    visitor_id: str | None
    placed_at: datetime


@dataclass(frozen=True)
class OrderPaid:
    """The payment provider confirmed the order's payment."""

    order_id: int


@dataclass(frozen=True)
class OrderCancelled:
    """An unpaid order was cancelled (by the shopper, a timeout or an expired group)."""

    order_id: int


@dataclass(frozen=True)
class OrderReceived:
    """The shopper confirmed receipt (or it was auto-confirmed); return windows start here."""

    order_id: int


@dataclass(frozen=True)
class OrderRefunded:
    """Money went back to the shopper: ``amount_minor`` of the order, full or partial."""

    order_id: int
    refund_id: int
    amount_minor: int
