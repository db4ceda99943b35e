"""Brief escrow on the double-entry ledger: hold a fixed fee, release it, or return it.

On acceptance the fee moves from the merchant's marketing balance (``merchant_available``)
to the merchant's escrow account (``brief_escrow``); approval moves it on to the creator's
``creator_available``; expiry or a dispute decided for the merchant moves it back. Each
movement is one balanced ledger transaction with a unique reference
(``brief:<application id>:hold`` / ``:settle``), so a retried step posts nothing twice and a
fee can be settled only once, either way.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from juxing.kit.errors import Unprocessable
from juxing.ledger import service as ledger
from juxing.ledger.service import InsufficientBalance, Leg

MERCHANT_AVAILABLE = "merchant_available"  # a merchant's prepaid marketing balance
MERCHANT_DEPOSITS = "merchant_deposits"  # money merchants paid in (negative, grows)
BRIEF_ESCROW = "brief_escrow"  # fees held for accepted creators, per merchant
CREATOR_AVAILABLE = ledger.CREATOR_AVAILABLE


def _move(
    session: Session,
    *,
    reference: str,
    kind: str,
    source_id: int | None,
    memo: str,
    debit: tuple[str, int | None],
    credit: tuple[str, int | None],
    amount_minor: int,
    currency: str,
    guard: bool,
) -> None:
    src = ledger.account(session, kind=debit[0], owner_id=debit[1], currency=currency)
    dst = ledger.account(session, kind=credit[0], owner_id=credit[1], currency=currency)
    try:
        ledger.post(
            session,
            reference=reference,
            kind=kind,
            source="brief_application" if source_id is not None else "merchant",
            source_id=source_id,
            legs=[Leg(src, -amount_minor), Leg(dst, amount_minor)],
            memo=memo,
            no_overdraft=(src.id,) if guard else (),
        )
    except InsufficientBalance as exc:
        raise Unprocessable(
            "The merchant's balance does not cover the fixed fee.",
            code="insufficient_balance",
            details={"needed_minor": amount_minor, "currency": currency},
        ) from exc


def merchant_balance(session: Session, *, merchant_id: int, currency: str) -> int:
    """The merchant's marketing balance (what fees can be reserved from)."""
    return ledger.balance(session, kind=MERCHANT_AVAILABLE, owner_id=merchant_id, currency=currency)


def escrowed(session: Session, *, merchant_id: int, currency: str) -> int:
    """Fees of the merchant's briefs currently held in escrow."""
    return ledger.balance(session, kind=BRIEF_ESCROW, owner_id=merchant_id, currency=currency)


def top_up(
    session: Session, *, merchant_id: int, amount_minor: int, currency: str, reference: str
) -> None:
    """Record money a merchant paid in to their marketing balance (idempotent by reference)."""
    _move(
        session,
        reference=f"merchant_top_up:{merchant_id}:{reference}",
        kind="merchant_top_up",
        source_id=None,
        memo=f"marketing balance top-up for merchant {merchant_id}",
        debit=(MERCHANT_DEPOSITS, None),
        credit=(MERCHANT_AVAILABLE, merchant_id),
        amount_minor=amount_minor,
        currency=currency,
        guard=False,
    )


def hold_fee(
    session: Session, *, application_id: int, merchant_id: int, amount_minor: int, currency: str
) -> str:
    """Reserve a fixed fee from the merchant's balance into escrow; returns the reference."""
    reference = f"brief:{application_id}:hold"
    _move(
        session,
        reference=reference,
        kind="brief_escrow_hold",
        source_id=application_id,
        memo=f"escrow for brief application {application_id}",
        debit=(MERCHANT_AVAILABLE, merchant_id),
        credit=(BRIEF_ESCROW, merchant_id),
        amount_minor=amount_minor,
        currency=currency,
        guard=True,
    )
    return reference


def release_fee(
    session: Session,
    *,
    application_id: int,
    merchant_id: int,
    creator_id: int,
    amount_minor: int,
    currency: str,
) -> None:
    """Pay an escrowed fee out to the creator's available balance."""
    _move(
        session,
        reference=f"brief:{application_id}:settle",
        kind="brief_escrow_release",
        source_id=application_id,
        memo=f"brief fee released to creator {creator_id}",
        debit=(BRIEF_ESCROW, merchant_id),
        credit=(CREATOR_AVAILABLE, creator_id),
        amount_minor=amount_minor,
        currency=currency,
        guard=True,
    )


def return_fee(
    session: Session, *, application_id: int, merchant_id: int, amount_minor: int, currency: str
) -> None:
    """Give an escrowed fee back to the merchant's balance."""
    _move(
        session,
        reference=f"brief:{application_id}:settle",
        kind="brief_escrow_return",
        source_id=application_id,
        memo="brief fee returned to merchant",
        debit=(BRIEF_ESCROW, merchant_id),
        credit=(MERCHANT_AVAILABLE, merchant_id),
        amount_minor=amount_minor,
        currency=currency,
        guard=True,
    )
