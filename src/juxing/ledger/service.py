"""Posting to the ledger: balanced, idempotent by reference, balances kept atomically."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from juxing.kit.errors import Conflict
from juxing.kit.time import utcnow
from juxing.models.ledger import LedgerAccount, LedgerEntry, LedgerTransaction

# Account kinds used by commission; other domains (escrow) add their own.
MERCHANT_COMMISSION = "merchant_commission"  # negative: commission charged to the merchant
CREATOR_PENDING = "creator_pending"  # earned, inside the return window
CREATOR_AVAILABLE = "creator_available"  # may be paid out; may go negative after clawbacks
PLATFORM_REVENUE = "platform_revenue"  # service fees minus platform-paid bonuses
PAYOUTS_IN_TRANSIT = "payouts_in_transit"  # requested payouts not yet confirmed by the bank
PAYOUTS_SETTLED = "payouts_settled"  # money that left the platform (negative, grows)


class UnbalancedTransaction(ValueError):
    """The legs of a transaction do not sum to zero (or mix currencies)."""


class InsufficientBalance(Conflict):
    code = "insufficient_balance"


@dataclass(frozen=True)
class Leg:
    """One side of a transaction: a signed amount on an account."""

    account: LedgerAccount
    amount_minor: int


def account_code(kind: str, owner_id: int | None, currency: str) -> str:
    return f"{kind}:{'-' if owner_id is None else owner_id}:{currency}"


def account(
    session: Session, *, kind: str, currency: str, owner_id: int | None = None
) -> LedgerAccount:
    """The account for (kind, owner, currency), created on first use (race-safe)."""
    code = account_code(kind, owner_id, currency)
    found = session.scalar(select(LedgerAccount).where(LedgerAccount.code == code))
    if found is not None:
        return found
    try:
        with session.begin_nested():
            created = LedgerAccount(
                code=code, kind=kind, owner_id=owner_id, currency=currency, balance_minor=0
            )
            session.add(created)
            session.flush()
        return created
    except IntegrityError:
        found = session.scalar(select(LedgerAccount).where(LedgerAccount.code == code))
        if found is None:  # pragma: no cover - the conflicting row must exist
            raise
        return found


def find_account(
    session: Session, *, kind: str, currency: str, owner_id: int | None = None
) -> LedgerAccount | None:
    """The account if it exists (reads never create accounts)."""
    code = account_code(kind, owner_id, currency)
    return session.scalar(select(LedgerAccount).where(LedgerAccount.code == code))


def balance(session: Session, *, kind: str, currency: str, owner_id: int | None = None) -> int:
    """The current balance of an account (0 if it was never used)."""
    found = find_account(session, kind=kind, currency=currency, owner_id=owner_id)
    if found is None:
        return 0
    session.refresh(found, ["balance_minor"])
    return found.balance_minor


def post(
    session: Session,
    *,
    reference: str,
    kind: str,
    source: str,
    source_id: int | None,
    legs: Sequence[Leg],
    memo: str = "",
    at: datetime | None = None,
    no_overdraft: Collection[int] = (),
) -> LedgerTransaction | None:
    """Post a balanced transaction once per ``reference``; returns None if all legs are zero.

    A repeated ``reference`` returns the first transaction and posts nothing. Accounts in
    ``no_overdraft`` (ids) may not go below zero: ``InsufficientBalance`` is raised instead.
    """
    totals: dict[int, int] = defaultdict(int)
    by_id: dict[int, LedgerAccount] = {}
    for leg in legs:
        totals[leg.account.id] += leg.amount_minor
        by_id[leg.account.id] = leg.account
    totals = {k: v for k, v in totals.items() if v != 0}
    if not totals:
        return None
    currencies = {by_id[k].currency for k in totals}
    if len(currencies) != 1:
        raise UnbalancedTransaction(f"{reference}: mixes currencies {sorted(currencies)}")
    if sum(totals.values()) != 0:
        raise UnbalancedTransaction(f"{reference}: legs sum to {sum(totals.values())}, not 0")
    existing = session.scalar(
        select(LedgerTransaction).where(LedgerTransaction.reference == reference)
    )
    if existing is not None:
        return existing
    with session.begin_nested():  # a refused overdraft leaves nothing behind
        return _write(
            session, reference, kind, source, source_id, memo, at, totals, by_id, no_overdraft
        )


def _write(
    session: Session,
    reference: str,
    kind: str,
    source: str,
    source_id: int | None,
    memo: str,
    at: datetime | None,
    totals: dict[int, int],
    by_id: dict[int, LedgerAccount],
    no_overdraft: Collection[int],
) -> LedgerTransaction:
    when = at or utcnow()
    (currency,) = {by_id[k].currency for k in totals}
    txn = LedgerTransaction(
        reference=reference,
        kind=kind,
        source=source,
        source_id=source_id,
        memo=memo[:255],
        created_at=when,
    )
    session.add(txn)
    session.flush()
    # Lock accounts in id order so that concurrent postings cannot deadlock.
    for account_id in sorted(totals):
        delta = totals[account_id]
        stmt = (
            update(LedgerAccount)
            .where(LedgerAccount.id == account_id)
            .values(balance_minor=LedgerAccount.balance_minor + delta)
        )
        if account_id in no_overdraft and delta < 0:
            stmt = stmt.where(LedgerAccount.balance_minor + delta >= 0)
        result = session.execute(stmt.execution_options(synchronize_session=False))
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise InsufficientBalance(
                "The balance is too low for this amount.",
                details={"account": by_id[account_id].code, "amount_minor": -delta},
            )
        session.add(
            LedgerEntry(
                transaction_id=txn.id,
                account_id=account_id,
                amount_minor=delta,
                currency=currency,
                created_at=when,
            )
        )
        session.expire(by_id[account_id], ["balance_minor"])
    session.flush()
    return txn


def entries_for(
    session: Session,
    *,
    account_id: int,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[tuple[LedgerEntry, LedgerTransaction]]:
    """An account's entries with their transactions, oldest first."""
    stmt = (
        select(LedgerEntry, LedgerTransaction)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerEntry.account_id == account_id)
        .order_by(LedgerEntry.id)
    )
    if since is not None:
        stmt = stmt.where(LedgerEntry.created_at >= since)
    if until is not None:
        stmt = stmt.where(LedgerEntry.created_at < until)
    return [(e, t) for e, t in session.execute(stmt).all()]
