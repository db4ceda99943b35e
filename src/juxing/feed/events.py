"""The behaviour-event store: batch inserts that skip already-stored client event ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from juxing.models.events import BehaviorEvent

EVENT_COLUMNS = (
    "source",
    "user_id",
    "action",
    "target_type",
    "target_id",
    "category_id",
    "dwell_ms",
    "client_event_id",
    "occurred_at",
    "received_at",
)
RECENT_EVENTS = 50


def insert_new(session: Session, rows: Sequence[dict[str, Any]]) -> list[str]:
    """Insert ``rows``; those whose (source, user, client_event_id) exists are skipped.

    Returns the client event ids of the rows actually inserted (one statement: INSERT .. ON CONFLICT
    DO NOTHING RETURNING, on SQLite and PostgreSQL alike).
    """
    if not rows:
        return []
    table = cast(Table, BehaviorEvent.__table__)
    dialect = session.get_bind().dialect.name
    stmt: Any
    if dialect == "postgresql":
        stmt = postgresql.insert(table).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).on_conflict_do_nothing()
    else:  # pragma: no cover - only the two supported databases
        stmt = insert(table)
    stmt = stmt.returning(table.c.client_event_id)
    return list(session.execute(stmt, list(rows)).scalars().all())


def recent_items(session: Session, *, user_id: int, limit: int = RECENT_EVENTS) -> list[Any]:
    """The user's latest events on products and posts, newest first (one index range scan)."""
    t = BehaviorEvent.__table__
    stmt = (
        select(t.c.action, t.c.target_type, t.c.target_id, t.c.occurred_at)
        .where(t.c.user_id == user_id, t.c.source == "app")
        .order_by(t.c.occurred_at.desc(), t.c.id.desc())
        .limit(limit)
    )
    return list(session.execute(stmt).all())
