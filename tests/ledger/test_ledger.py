"""The ledger: balanced, idempotent, immutable postings; overdraft refusal; concurrency."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select, text

from juxing import ledger
from juxing.ledger import InsufficientBalance, Leg, UnbalancedTransaction
from juxing.models.ledger import LedgerEntry, LedgerImmutableError, LedgerTransaction


def _acc(session, kind, owner=None, currency="CNY"):
    return ledger.account(session, kind=kind, owner_id=owner, currency=currency)


def _post(session, ref, legs, **kw):
    return ledger.post(
        session, reference=ref, kind="test", source="test", source_id=None, legs=legs, **kw
    )


def test_balanced_posting_moves_balances_and_is_idempotent(session):
    a, b = _acc(session, "a", 1), _acc(session, "b", 1)
    t1 = _post(session, "r1", [Leg(a, -300), Leg(b, 300)])
    t2 = _post(session, "r1", [Leg(a, -300), Leg(b, 300)])
    assert t1 is not None and t2 is not None and t1.id == t2.id
    assert ledger.balance(session, kind="a", owner_id=1, currency="CNY") == -300
    assert ledger.balance(session, kind="b", owner_id=1, currency="CNY") == 300
    assert len(session.scalars(select(LedgerEntry)).all()) == 2
    assert _post(session, "r0", [Leg(a, 0), Leg(b, 0)]) is None
    assert ledger.check_ledger(session)[0] == []


def test_unbalanced_and_mixed_currency_are_refused(session):
    a, b, usd = _acc(session, "a"), _acc(session, "b"), _acc(session, "c", currency="USD")
    with pytest.raises(UnbalancedTransaction):
        _post(session, "x", [Leg(a, -1), Leg(b, 2)])
    with pytest.raises(UnbalancedTransaction):
        _post(session, "y", [Leg(a, -1), Leg(usd, 1)])
    assert session.scalar(select(LedgerTransaction.id)) is None


def test_entries_are_immutable(session):
    a, b = _acc(session, "a"), _acc(session, "b")
    txn = _post(session, "r", [Leg(a, -5), Leg(b, 5)])
    entry = session.scalars(select(LedgerEntry)).first()
    entry.amount_minor = 6
    with pytest.raises(LedgerImmutableError), session.begin_nested():
        session.flush()
    session.expire(entry)
    session.delete(session.get(LedgerTransaction, txn.id))
    with pytest.raises(LedgerImmutableError), session.begin_nested():
        session.flush()


def test_no_overdraft_refuses_and_leaves_nothing(session):
    a, b = _acc(session, "a"), _acc(session, "b")
    _post(session, "fund", [Leg(b, -100), Leg(a, 100)])
    with pytest.raises(InsufficientBalance):
        _post(session, "too-much", [Leg(a, -101), Leg(b, 101)], no_overdraft={a.id})
    _post(session, "ok", [Leg(a, -100), Leg(b, 100)], no_overdraft={a.id})
    assert ledger.balance(session, kind="a", currency="CNY") == 0
    assert (
        session.scalar(
            select(LedgerTransaction.id).where(LedgerTransaction.reference == "too-much")
        )
        is None
    )
    assert ledger.check_ledger(session)[0] == []


def test_tampering_is_found(session):
    a, b = _acc(session, "a"), _acc(session, "b")
    _post(session, "r", [Leg(a, -5), Leg(b, 5)])
    session.execute(
        text("UPDATE ledger_accounts SET balance_minor = 99 WHERE id = :i"), {"i": a.id}
    )
    found, entries = ledger.check_ledger(session)
    assert entries == 2 and [d.check for d in found] == ["balance_mismatch"]


def test_concurrent_postings_keep_balances_exact(committed_db):
    with committed_db.session() as s:
        ids = [_acc(s, "pool", i).id for i in range(4)]
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for k in range(15):
                with committed_db.session() as s:
                    accs = [s.get(ledger.service.LedgerAccount, i) for i in ids]
                    src, dst = accs[(n + k) % 4], accs[(n + k + 1) % 4]
                    _post(s, f"w{n}-{k}", [Leg(src, -7), Leg(dst, 7)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with committed_db.session() as s:
        found, entries = ledger.check_ledger(s)
        assert found == [] and entries == 4 * 15 * 2
