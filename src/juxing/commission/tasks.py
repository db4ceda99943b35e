"""Periodic jobs: pending → available after the return window; the daily reconciliation."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from juxing.commission import reconcile, service
from juxing.kit.db import Database
from juxing.kit.time import utcnow
from juxing.models.ledger import ReconciliationRun
from juxing.worker.registry import periodic

log = logging.getLogger("juxing.commission")


@periodic("commission.mature_available", every_s=60)
def mature_available(db: Database) -> int:
    """Make commission available whose return window closed (batches of 500)."""
    total = 0
    while True:
        with db.session() as session:
            n = service.mature_due(session, limit=500)
        total += n
        if n < 500:
            return total


@periodic("ledger.reconcile_daily", every_s=600)
def reconcile_daily(db: Database) -> bool:
    """Once a day: check the ledger and every commission; log each discrepancy."""
    with db.session() as session:
        last = session.scalar(
            select(ReconciliationRun.started_at)
            .where(ReconciliationRun.trigger == "job")
            .order_by(ReconciliationRun.started_at.desc())
            .limit(1)
        )
        if last is not None and utcnow() - last < timedelta(days=1):
            return False
        run, found = reconcile.run_reconciliation(session, trigger="job")
    for d in found:
        log.error("ledger discrepancy %s %s %s", d.check, d.subject, d.details)
    log.info("reconciliation run %s: %d discrepancies", run.id, len(found))
    return True
