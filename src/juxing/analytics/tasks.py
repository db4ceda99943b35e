"""Periodic jobs of analytics: the nightly segmentation and the dashboard rollups."""

from __future__ import annotations

from juxing.analytics import rollups, service
from juxing.kit.db import Database
from juxing.worker.registry import periodic


@periodic("analytics.compute_segments", every_s=24 * 3600)
def compute_segments(db: Database) -> int:
    """Regroup shoppers into audience segments from the behaviour log (daily)."""
    with db.session() as session:
        return len(service.compute_segments(session=session).segments)


@periodic("analytics.refresh_rollups", every_s=60)
def refresh_rollups(db: Database) -> int:
    """Recompute the dashboard rollups for the recent window (idempotent)."""
    with db.session() as session:
        return rollups.refresh_recent(session)
