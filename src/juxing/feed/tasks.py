"""Periodic jobs of the feed: republish the catalog snapshot the API processes serve from.

Building a snapshot groups the last 30 days of events and 7 days of impressions; it runs in
the worker (or the embedded job thread) on a slow schedule, never in a request. API processes
pick the new file up within seconds (``FeedEngine.refresh``).

Impressions older than ``Settings.feed_impressions_retention_days`` are deleted every ten
minutes, in short transactions (``impressions.prune``).
"""

from __future__ import annotations

from datetime import timedelta

from juxing.config import get_settings
from juxing.feed.impressions import prune
from juxing.feed.training import publish_snapshot
from juxing.kit.db import Database
from juxing.kit.time import utcnow
from juxing.worker.registry import periodic

SNAPSHOT_EVERY_S = 300.0
PRUNE_EVERY_S = 600.0


@periodic("feed.snapshot", every_s=SNAPSHOT_EVERY_S)
def refresh_snapshot(db: Database) -> int:
    """Rebuild and publish ``<data_dir>/feed/snapshot.pkl``; returns its size in bytes."""
    path = publish_snapshot(db, get_settings().data_dir)
    return path.stat().st_size


@periodic("feed.prune_impressions", every_s=PRUNE_EVERY_S)
def prune_impressions(db: Database) -> int:
    """Delete the impressions older than the retention; returns how many."""
    days = get_settings().feed_impressions_retention_days
    return prune(db, before=utcnow() - timedelta(days=days))
