"""Periodic sweeps of the content side (idempotent; safe in several workers at once)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from juxing.kit.db import Database
from juxing.kit.time import utcnow
from juxing.models.content import LiveRoom, LiveRoomStatus
from juxing.search.products import sweep_products
from juxing.worker.registry import periodic

LIVE_ROOM_MAX_HOURS = 12


@periodic("search.index_products", every_s=30)
def index_products(db: Database) -> int:
    """Keep products in the search index in step with the catalog and deal windows."""
    with db.session() as session:
        return sweep_products(session=session)


@periodic("content.end_stale_live_rooms", every_s=300)
def end_stale_live_rooms(db: Database) -> int:
    """End live rooms left live for more than ``LIVE_ROOM_MAX_HOURS`` (a crashed client)."""
    now = utcnow()
    with db.session() as session:
        result = session.execute(
            update(LiveRoom)
            .where(
                LiveRoom.status == LiveRoomStatus.LIVE,
                LiveRoom.started_at < now - timedelta(hours=LIVE_ROOM_MAX_HOURS),
            )
            .values(status=LiveRoomStatus.ENDED, ended_at=now, pinned_item_id=None,
                    revision=LiveRoom.revision + 1)
        )  # fmt: skip
        return int(result.rowcount)  # type: ignore[attr-defined]
