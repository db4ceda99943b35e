"""The commission domain's knobs, in one place (documented in docs/commission.md)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CommissionPolicy:
    """Defaults an operator can tune by editing this object at start-up (tests patch it)."""

    # Attribution: last click within this many days before the order (campaign rules override).
    default_window_days: int = 15
    max_window_days: int = 90
    # Pending -> available this many days after the shopper confirmed receipt.
    return_window_days: int = 7
    # The platform's service fee, as basis points of the merchant-paid commission.
    platform_fee_bp: int = 1000
    # Platform-paid bonus by creator level (basis points of the amount paid).
    level_bonus_bp: dict[int, int] = field(
        default_factory=lambda: {1: 0, 2: 0, 3: 50, 4: 100, 5: 150}
    )
    payout_minimum_minor: int = 1000
    # Fraud rules.
    flood_clicks_per_hour: int = 30  # clicks from one IP or device on one creator's links
    conversion_min_orders: int = 10  # abnormal click-to-order ratio needs this many orders...
    conversion_max_ratio: float = 0.5  # ...and more orders per click than this (7 days)
    refund_pattern_count: int = 2  # fully refunded attributed orders, same shopper+creator...
    refund_pattern_days: int = 30  # ...within this many days


POLICY = CommissionPolicy()
