"""``juxing import userbehavior FILE``: stream a Tianchi UserBehavior CSV into the event log.

The file (``user_id,item_id,category_id,behavior_type,timestamp``, no header) is read line by
line and written in batches, each in its own transaction; the full data set (100M rows) is
never held in memory. Every event gets a client event id made from its content
(``item:behavior:timestamp`` of that user), so re-running an import, or resuming one that
crashed, stores nothing twice. Malformed lines are reported with their line numbers and
skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from juxing.feed.events import insert_new
from juxing.kit.db import Database
from juxing.recsys.io import MAX_ID, MAX_TS, MIN_TS

SOURCE = "userbehavior"
BEHAVIOR_ACTION = {"pv": "view", "cart": "cart", "fav": "fav", "buy": "buy"}
BATCH = 5000


@dataclass
class ImportReport:
    lines: int = 0
    inserted: int = 0
    already_present: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)


def parse_line(raw: bytes) -> tuple[int, int, int, str, int] | str:
    """One row as (user, item, category, action, timestamp), or the reason it is malformed."""
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return "not valid UTF-8"
    parts = text.split(",")
    if len(parts) != 5:
        return f"expected 5 comma-separated fields, found {len(parts)}"
    user_s, item_s, cat_s, behavior, ts_s = (p.strip() for p in parts)
    try:
        user, item, cat, ts = int(user_s), int(item_s), int(cat_s), int(ts_s)
    except ValueError:
        return "user_id, item_id, category_id and timestamp must be integers"
    if not (0 < user <= MAX_ID and 0 < item <= MAX_ID and 0 <= cat <= MAX_ID):
        return "ids must be positive 64-bit integers"
    action = BEHAVIOR_ACTION.get(behavior)
    if action is None:
        return f"unknown behavior_type {behavior[:20]!r} (expected pv, cart, fav or buy)"
    if not MIN_TS <= ts < MAX_TS:
        return f"timestamp {ts} is outside 2000..2100"
    return user, item, cat, action, ts


def import_userbehavior(
    db: Database,
    path: str | Path,
    *,
    batch_size: int = BATCH,
    on_bytes: Callable[[int], None] | None = None,
    on_bad: Callable[[int, str], None] | None = None,
) -> ImportReport:
    """Stream ``path`` into the behaviour-event log; returns counts and the malformed lines."""
    report = ImportReport()
    batch: list[dict[str, Any]] = []
    received = datetime.now(UTC)

    def flush() -> None:
        if not batch:
            return
        with db.session() as session:
            inserted = insert_new(session, batch)
        report.inserted += len(inserted)
        report.already_present += len(batch) - len(inserted)
        batch.clear()

    with open(path, "rb") as fh:
        for no, raw in enumerate(fh, start=1):
            report.lines = no
            if on_bytes is not None:
                on_bytes(len(raw))
            if not raw.strip():
                continue
            parsed = parse_line(raw)
            if isinstance(parsed, str):
                report.bad.append((no, parsed))
                if on_bad is not None:
                    on_bad(no, parsed)
                continue
            user, item, cat, action, ts = parsed
            batch.append(
                {
                    "source": SOURCE,
                    "user_id": user,
                    "action": action,
                    "target_type": "product",
                    "target_id": item,
                    "category_id": cat,
                    "dwell_ms": None,
                    "client_event_id": f"{item}:{action}:{ts}",
                    "occurred_at": datetime.fromtimestamp(ts, UTC),
                    "received_at": received,
                }
            )
            if len(batch) >= batch_size:
                flush()
    flush()
    return report
