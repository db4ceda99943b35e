"""The commission arithmetic, as pure functions over integer minor units."""

from __future__ import annotations

from dataclasses import dataclass

BP = 10_000


@dataclass(frozen=True)
class Split:
    """One line's commission: merchant-paid base, platform-paid bonus, platform fee."""

    base: int
    bonus: int
    fee: int

    @property
    def creator(self) -> int:
        return self.base - self.fee + self.bonus

    @property
    def platform(self) -> int:
        return self.fee - self.bonus


def split(*, amount_minor: int, base_rate_bp: int, bonus_bp: int, fee_bp: int) -> Split:
    """Commission on what was actually paid; every part rounds down."""
    base = amount_minor * base_rate_bp // BP
    bonus = amount_minor * bonus_bp // BP if base > 0 else 0
    fee = base * fee_bp // BP
    return Split(base=base, bonus=bonus, fee=fee)


def kept(part: int, *, refunded_minor: int, amount_minor: int) -> int:
    """What remains of ``part`` after refunds of ``refunded_minor`` of ``amount_minor``.

    Clawback is proportional and cumulative: a full refund leaves exactly zero, and
    clawing back refund by refund gives the same total as one refund of the sum.
    """
    if amount_minor <= 0:
        return 0
    refunded = min(max(refunded_minor, 0), amount_minor)
    return part - part * refunded // amount_minor


def kept_split(s: Split, *, refunded_minor: int, amount_minor: int) -> Split:
    return Split(
        base=kept(s.base, refunded_minor=refunded_minor, amount_minor=amount_minor),
        bonus=kept(s.bonus, refunded_minor=refunded_minor, amount_minor=amount_minor),
        fee=kept(s.fee, refunded_minor=refunded_minor, amount_minor=amount_minor),
    )
