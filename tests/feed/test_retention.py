"""Impressions retention (feed/impressions.prune, the feed.prune_impressions job): old rows go
in short id ranges, recent rows stay."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, insert, select

from juxing.config import Settings
from juxing.feed import tasks
from juxing.feed.impressions import prune
from juxing.kit.time import utcnow
from juxing.models.feed import FeedImpression
from juxing.worker.registry import JOBS


def _shown(session, tag: str, ages_days: list[float]) -> None:
    """One impression per age, in this order (ids grow with it)."""
    now = utcnow()
    for n, age in enumerate(ages_days):
        session.execute(
            insert(FeedImpression).values(
                feed_id=f"{tag}{n:04d}",
                user_id=1,
                item_type="product",
                item_id=n,
                merchant_id=None,
                position=n,
                reason="trending",
                policy_id=None,
                shown_at=now - timedelta(days=age),
            )
        )
    session.flush()


def _left(session, tag: str) -> list[str]:
    col = FeedImpression.feed_id
    return list(session.scalars(select(col).where(col.like(f"{tag}%")).order_by(col)))


def test_old_impressions_go_in_batches_and_recent_ones_stay(db, session):
    session.execute(FeedImpression.__table__.delete())
    # Ten old rows, one more, four recent ones, a late old row (a replayed journal), a recent one.
    _shown(session, "r", [40] * 10 + [31, 1, 0.5, 0.5, 0.3, 45, 0])
    before = utcnow() - timedelta(days=30)
    # At most 2 ranges of 3 ids per run.
    assert prune(db, before=before, batch=3, max_batches=2) == 6
    assert len(_left(session, "r")) == 11
    assert prune(db, before=before, batch=3) == 5  # the rest, up to the first recent row
    left = _left(session, "r")
    assert left == [f"r{n:04d}" for n in range(11, 17)]  # the late old one (r0015) waits
    assert prune(db, before=before, batch=3) == 0  # idempotent
    # Once the recent rows ahead of it are old too, the late one goes with them.
    assert prune(db, before=utcnow() + timedelta(days=1), batch=3) == 6
    assert _left(session, "r") == []
    assert prune(db, before=utcnow(), batch=3) == 0  # an empty table


def test_the_job_keeps_the_configured_retention(db, session, monkeypatch):
    session.execute(FeedImpression.__table__.delete())
    _shown(session, "j", [60, 20, 9, 3])
    monkeypatch.setattr(tasks, "get_settings", lambda: Settings(feed_impressions_retention_days=10))
    assert JOBS["feed.prune_impressions"].fn is tasks.prune_impressions
    assert tasks.prune_impressions(db) == 2
    assert _left(session, "j") == ["j0002", "j0003"]
    assert Settings().feed_impressions_retention_days == 30  # the default
    total = session.scalar(select(func.count()).select_from(FeedImpression))
    assert total == 2
