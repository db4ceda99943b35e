"""Periodic jobs of the marketplace."""

from __future__ import annotations

from juxing.kit.db import Database
from juxing.marketplace import service
from juxing.worker.registry import periodic


@periodic("marketplace.expire_briefs", every_s=60)
def expire_briefs(db: Database) -> dict[str, int]:
    """Close overdue briefs, expire undelivered engagements (escrow back), auto-approve."""
    with db.session() as session:
        return service.expire_overdue(session=session)
