"""The periodic jobs and ``juxing ledger check`` against a really committed database."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select, text
from typer.testing import CliRunner

from factories import make_user
from juxing.commission import tasks
from juxing.config import get_settings
from juxing.kit.time import utcnow
from juxing.models.accounts import Role
from juxing.models.commission import Commission, CommissionRule
from juxing.models.ledger import ReconciliationRun

from .conftest import World


def test_jobs_and_cli_check(committed_db, monkeypatch):
    with committed_db.session() as s:
        w = World(s)
        merchant = w.merchant()
        product = w.product(merchant)
        s.add(CommissionRule(merchant_id=merchant.id, scope="merchant", target_id=0, rate_bp=900))
        creator, shopper = make_user(s, Role.CREATOR), make_user(s)
        w.click(w.link(creator, product), shopper=shopper)
        order = w.place(shopper, merchant, [(product, 20_000)])
        w.pay(order)
        w.receive(order, at=utcnow() - timedelta(days=8))
    assert tasks.mature_available(committed_db) == 1
    assert tasks.mature_available(committed_db) == 0
    with committed_db.session() as s:
        assert s.scalar(select(Commission.status)) == "available"
    assert tasks.reconcile_daily(committed_db) is True
    assert tasks.reconcile_daily(committed_db) is False  # once a day
    with committed_db.session() as s:
        (run,) = s.scalars(select(ReconciliationRun)).all()
        assert run.ok and run.checked_entries == 5  # accrual 3 legs, maturity 2

    monkeypatch.setenv("JUXING_DATABASE_URL", committed_db.url)
    get_settings.cache_clear()
    try:
        from juxing.cli import app

        ok = CliRunner().invoke(app, ["ledger", "check", "--json"])
        assert ok.exit_code == 0, ok.output
        assert json.loads(ok.output)["ok"] is True
        with committed_db.engine.begin() as conn:
            conn.execute(text("UPDATE ledger_accounts SET balance_minor = balance_minor + 3"))
        bad = CliRunner().invoke(app, ["ledger", "check"])
        assert bad.exit_code == 1 and "balance_mismatch" in bad.output
    finally:
        get_settings.cache_clear()
