"""Reconciliation: prove that the ledger is balanced and that balances equal their entries.

Every check is set-based SQL, so it runs over millions of entries in seconds. Domains that
post to the ledger (commission, escrow) add their own checks on top (``commission.reconcile``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, literal_column, select
from sqlalchemy.orm import Session

from juxing.models.ledger import LedgerAccount, LedgerEntry, LedgerTransaction


@dataclass(frozen=True)
class Discrepancy:
    """One thing that does not add up: which check, about what, and the numbers."""

    check: str
    subject: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_ledger(session: Session, *, limit: int = 1000) -> tuple[list[Discrepancy], int]:
    """Run the ledger's own invariants; returns (discrepancies, entries checked)."""
    found: list[Discrepancy] = []
    e, t, a = LedgerEntry, LedgerTransaction, LedgerAccount

    entry_count = session.scalar(select(func.count()).select_from(e)) or 0

    # 1. Every transaction balances, in one currency.
    rows = session.execute(
        select(e.transaction_id, func.sum(e.amount_minor), func.count())
        .group_by(e.transaction_id)
        .having((func.sum(e.amount_minor) != 0) | (func.min(e.currency) != func.max(e.currency)))
        .limit(limit)
    ).all()
    for txn_id, total, n in rows:
        found.append(
            Discrepancy(
                "transaction_unbalanced",
                f"transaction:{txn_id}",
                {"sum_minor": int(total), "entries": int(n)},
            )
        )

    # 2. No transaction without entries.
    empty = session.execute(
        select(t.id, t.reference)
        .where(~select(e.id).where(e.transaction_id == t.id).exists())
        .limit(limit)
    ).all()
    for txn_id, ref in empty:
        found.append(Discrepancy("transaction_empty", f"transaction:{txn_id}", {"ref": ref}))

    # 3. The sum of all entries is zero (per currency).
    for currency, total in session.execute(
        select(e.currency, func.sum(e.amount_minor)).group_by(e.currency)
    ).all():
        if int(total or 0) != 0:
            found.append(
                Discrepancy("ledger_not_zero", f"currency:{currency}", {"sum_minor": int(total)})
            )

    # 4. Every balance equals the sum of its entries; entries match their account's currency.
    sums = (
        select(
            e.account_id.label("account_id"),
            func.sum(e.amount_minor).label("total"),
            func.min(e.currency).label("cmin"),
            func.max(e.currency).label("cmax"),
        )
        .group_by(e.account_id)
        .subquery()
    )
    summed = func.coalesce(sums.c.total, literal_column("0"))
    mismatches = session.execute(
        select(a.id, a.code, a.currency, a.balance_minor, summed, sums.c.cmin, sums.c.cmax)
        .outerjoin(sums, sums.c.account_id == a.id)
        .where(
            (a.balance_minor != summed)
            | (
                sums.c.cmin.is_not(None)
                & ((sums.c.cmin != a.currency) | (sums.c.cmax != a.currency))
            )
        )
        .limit(limit)
    ).all()
    for acc_id, code, currency, bal, tot, cmin, cmax in mismatches:
        if int(bal) != int(tot):
            found.append(
                Discrepancy(
                    "balance_mismatch",
                    f"account:{code}",
                    {"account_id": acc_id, "balance_minor": int(bal), "entries_minor": int(tot)},
                )
            )
        else:
            found.append(
                Discrepancy(
                    "entry_currency_mismatch",
                    f"account:{code}",
                    {"account_currency": currency, "entry_currencies": sorted({cmin, cmax})},
                )
            )
    return found[:limit], int(entry_count)
