"""The double-entry ledger: accounts, balanced transactions, immutable entries.

Every transaction's entries sum to zero (per currency), so the sum of all entries is zero;
an account's ``balance_minor`` is a cached sum of its entries, kept by conditional updates
and proved by reconciliation. Entries are never updated or deleted: corrections are new
transactions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from juxing.kit.time import utcnow
from juxing.models.base import Base, BigId, IdMixin


class LedgerAccount(IdMixin, Base):
    """One account: a (kind, owner, currency). ``code`` is its stable human-readable name."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        UniqueConstraint("code"),
        Index("ix_ledger_accounts_kind_owner", "kind", "owner_id"),
    )

    # e.g. "creator_available:42:CNY", "platform_revenue:-:CNY"
    code: Mapped[str] = mapped_column(String(96))
    kind: Mapped[str] = mapped_column(String(32))
    # A user id (creators) or merchant id (merchants); None for platform accounts.
    owner_id: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    balance_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LedgerTransaction(IdMixin, Base):
    """A balanced set of entries. ``reference`` is unique, so posting is idempotent."""

    __tablename__ = "ledger_transactions"
    __table_args__ = (
        UniqueConstraint("reference"),
        Index("ix_ledger_transactions_source", "source", "source_id"),
    )

    reference: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32), index=True)
    # What caused it: ("commission", commission id), ("payout", payout id), ...
    source: Mapped[str] = mapped_column(String(32))
    source_id: Mapped[int | None] = mapped_column(BigInteger)
    memo: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class LedgerEntry(IdMixin, Base):
    """One signed amount on one account; immutable once written.

    Both indexes carry the amount and currency, so reconciliation's sums per transaction
    and per account (and a posting's balance delta) are read from the index alone.
    """

    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index(
            "ix_ledger_entries_transaction_cover",
            "transaction_id",
            "account_id",
            "amount_minor",
            "currency",
        ),
        Index("ix_ledger_entries_account_cover", "account_id", "id", "amount_minor", "currency"),
    )

    transaction_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("ledger_transactions.id", ondelete="RESTRICT")
    )
    account_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("ledger_accounts.id", ondelete="RESTRICT")
    )
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReconciliationRun(IdMixin, Base):
    """One run of the ledger check (daily job, ``juxing ledger check`` or the API)."""

    __tablename__ = "reconciliation_runs"

    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    finished_at: Mapped[datetime | None]
    ok: Mapped[bool] = mapped_column(Boolean, default=False)
    trigger: Mapped[str] = mapped_column(String(16), default="job")
    checked_entries: Mapped[int] = mapped_column(Integer, default=0)
    discrepancy_count: Mapped[int] = mapped_column(Integer, default=0)
    # The first discrepancies found (bounded), each {"check", "subject", "details"}.
    discrepancies: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class LedgerImmutableError(RuntimeError):
    """Raised when code tries to change or delete a written ledger entry or transaction."""


@event.listens_for(Session, "before_flush")
def _refuse_ledger_edits(session: Session, _ctx: object, _instances: object) -> None:
    for obj in session.deleted:
        if isinstance(obj, LedgerEntry | LedgerTransaction):
            raise LedgerImmutableError("ledger entries are immutable: post a correction instead")
    for obj in session.dirty:
        if isinstance(obj, LedgerEntry | LedgerTransaction) and session.is_modified(obj):
            raise LedgerImmutableError("ledger entries are immutable: post a correction instead")
