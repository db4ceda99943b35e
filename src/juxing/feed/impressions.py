"""Feed impressions: a journal on local disk first, the database in batches.

Every served page's impressions are appended, as one JSON line, to a journal segment of the
serving process (``<data_dir>/feed/impressions/``: one ``write`` to the page cache, before
the response is sent) and kept in memory; the engine's background thread writes the buffered
pages to ``feed_impressions`` every ``FLUSH_EVERY_S`` (large batches amortise the random
inserts into the ``(item_type, item_id, shown_at)`` index) and then deletes the segments they
came from. So nothing acknowledged is lost when the process dies: each process holds an
exclusive ``flock`` on its segments, and any process (at start, then every minute) replays a
segment whose lock it can take, i.e. whose writer is gone, skipping pages whose ``feed_id`` is
in the table already. A failed batch stays buffered and journaled and is retried.
(An operating-system crash can lose what the page cache had not written yet; the journal is
not fsynced on every page.)

Impressions are kept for ``Settings.feed_impressions_retention_days`` (30 by default):
``prune`` (the ``feed.prune_impressions`` job) deletes older rows in small id ranges.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select

from juxing.kit.db import Database
from juxing.models.feed import FeedImpression

log = logging.getLogger("juxing.feed")

JOURNAL_DIR = "impressions"
SUFFIX = ".jsonl"
FLUSH_EVERY_S = 5.0
RECOVER_EVERY_S = 60.0
WRITE_CACHE_KIB = 65_536  # SQLite page cache while a batch is written (64 MiB)
DEFAULT_CACHE_KIB = 2_000  # SQLite's default, restored after the batch
PRUNE_BATCH = 5_000  # ids per delete transaction of ``prune`` (a short write lock each)
PRUNE_MAX_BATCHES = 200  # per run: at most ~1 M rows, the next run goes on
COLUMNS = (
    "feed_id",
    "user_id",
    "item_type",
    "item_id",
    "merchant_id",
    "position",
    "reason",
    "policy_id",
    "shown_at",
)
# A page: (feed_id, user_id, policy_id, shown_at ISO text, first position,
#          [(item_type, item_id, merchant_id, reason_code), ...])
Page = tuple[str, int | None, int | None, str, int, list[tuple[str, int, int | None, str]]]


def journal_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "feed" / JOURNAL_DIR


class _Segment:
    """One journal file, locked by its writer for as long as it exists."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{os.getpid()}-{time.time_ns()}"
        tmp = folder / f"{name}.tmp"
        self.fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # Visible to the recovery scan (``*.jsonl``) only once locked.
        self.path = folder / f"{name}{SUFFIX}"
        os.replace(tmp, self.path)

    def append(self, line: bytes) -> None:
        os.write(self.fd, line)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        os.close(self.fd)


class ImpressionLog:
    """Pages of impressions, journaled (when ``folder`` is given) and written in batches."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self._pages: list[Page] = []
        self._lock = threading.Lock()
        self._segment: _Segment | None = None
        self._sealed: list[_Segment] = []  # segments whose pages are all in memory

    def add(self, page: Page, *, rows_text: str | None = None) -> None:
        """Journal and buffer one page; ``rows_text`` is ``rows_text(page's items)`` when
        the caller has it already (a kept page's)."""
        line = _line(page, rows_text) if self.folder is not None else b""
        with self._lock:
            if self.folder is not None:
                if self._segment is None:
                    self._segment = _Segment(self.folder)
                self._segment.append(line)
            self._pages.append(page)

    @property
    def pending(self) -> int:
        return len(self._pages)

    def flush(self, db: Database) -> int:
        """Write the buffered pages; returns the number of impression rows written."""
        with self._lock:
            pages, self._pages = self._pages, []
            sealed = self._sealed + ([self._segment] if self._segment is not None else [])
            self._sealed, self._segment = [], None
        if not pages:
            for seg in sealed:
                seg.remove()
            return 0
        try:
            n = write_pages(db, pages)
        except Exception:
            log.exception("could not write %d feed pages' impressions; will retry", len(pages))
            with self._lock:
                self._pages = pages + self._pages
                self._sealed = sealed + self._sealed
            return 0
        for seg in sealed:
            seg.remove()
        return n

    def close(self, db: Database) -> None:
        """Flush; what cannot be written stays in the journal for the next process."""
        self.flush(db)
        with self._lock:
            if self._pages:
                log.error(
                    "%d feed pages' impressions are not in the database yet; they stay in the "
                    "journal %s and are replayed by the next serving process",
                    len(self._pages),
                    self.folder,
                )


def _json(value: int | None) -> str:
    return "null" if value is None else str(value)


def rows_text(items: list[tuple[str, int, int | None, str]]) -> str:
    """A page's impression rows as journal text."""
    return ",".join(f'["{t}",{i},{_json(m)},"{r}"]' for t, i, m, r in items)


def _line(page: Page, rows: str | None = None) -> bytes:
    """The page as one JSON line, formatted by hand (``json.dumps`` of a page costs more
    than the rest of the journaling): its strings are hex ids, timestamps and the item
    types and reason codes of the feed, none of which needs escaping."""
    feed_id, user_id, policy_id, shown, offset, items = page
    if rows is None:
        rows = rows_text(items)
    text = f'["{feed_id}",{_json(user_id)},{_json(policy_id)},"{shown}",{offset},[{rows}]]\n'
    return text.encode()


def rows_of(pages: Iterable[Page], *, sqlite: bool) -> Iterator[tuple[Any, ...]]:
    for feed_id, user_id, policy_id, shown, offset, items in pages:
        # UTCDateTime keeps naive UTC text on SQLite, an aware timestamp on PostgreSQL.
        at: Any = shown if sqlite else datetime.fromisoformat(shown).replace(tzinfo=UTC)
        for pos, (item_type, item_id, merchant_id, reason) in enumerate(items, start=offset):
            yield (feed_id, user_id, item_type, item_id, merchant_id, pos, reason, policy_id, at)


def write_pages(db: Database, pages: list[Page]) -> int:
    """Insert the pages' rows with one driver-level ``executemany`` (SQLAlchemy's per-row
    parameter processing would cost more than the inserts)."""
    dialect = db.engine.dialect
    rows = list(rows_of(pages, sqlite=dialect.name == "sqlite"))
    if not rows:
        return 0
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    columns, marks = ", ".join(COLUMNS), ", ".join([mark] * len(COLUMNS))
    # Only constant identifiers are interpolated; the values are bound parameters.
    sql = f"INSERT INTO {FeedImpression.__tablename__} ({columns}) VALUES ({marks})"  # noqa: S608
    with db.session() as session:
        conn = session.connection()
        if dialect.name != "sqlite":
            conn.exec_driver_sql(sql, rows)
            return len(rows)
        # Most of a row's cost is its random insert into the (item_type, item_id, shown_at)
        # index: a page cache that holds more of that index for the batch costs ~20% less
        # CPU per row; given back after the batch (this is a pooled connection).
        conn.exec_driver_sql(f"PRAGMA cache_size=-{WRITE_CACHE_KIB}")
        try:
            conn.exec_driver_sql(sql, rows)
        finally:
            conn.exec_driver_sql(f"PRAGMA cache_size=-{DEFAULT_CACHE_KIB}")
    return len(rows)


def prune(
    db: Database,
    *,
    before: datetime,
    batch: int = PRUNE_BATCH,
    max_batches: int = PRUNE_MAX_BATCHES,
) -> int:
    """Delete the impressions shown before ``before``; returns how many.

    Oldest ids first, one range of ``batch`` ids per transaction, through the primary key
    (there is no index on ``shown_at`` alone, and adding one would make every insert dearer):
    ids grow with time, so the old rows are the lowest ids. A run stops at the first range
    that keeps a row (a recent one) or after ``max_batches`` ranges. A row written late with
    an old ``shown_at`` (a replayed journal) sits above recent ones and goes once they have
    gone. Idempotent: each statement re-checks ``shown_at``, so runs in several processes at
    once only delete what is old, each row once."""
    id_, shown_at = FeedImpression.id, FeedImpression.shown_at
    deleted = 0
    with db.session(write=False) as session:
        low = session.scalar(select(func.min(id_)))
    for _ in range(max_batches):
        if low is None:
            break
        high = low + batch
        with db.session() as session:
            result = session.execute(
                delete(FeedImpression)
                .where(id_ >= low, id_ < high, shown_at < before)
                .execution_options(synchronize_session=False)
            )
            deleted += max(getattr(result, "rowcount", 0), 0)
            if session.scalar(select(id_).where(id_ >= low, id_ < high).limit(1)) is not None:
                break  # this range keeps recent rows: so do the ranges above it
            low = session.scalar(select(func.min(id_)).where(id_ >= high))
    return deleted


def shown_text(at: datetime) -> str:
    """``at`` as naive UTC text in the format ``UTCDateTime`` stores on SQLite."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def recover(db: Database, folder: Path) -> int:
    """Replay the journal segments of processes that are gone; returns rows written."""
    try:
        names = sorted(p for p in folder.iterdir() if p.name.endswith(SUFFIX))
    except FileNotFoundError:
        return 0
    written = 0
    for path in names:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its process is alive and owns it
            with os.fdopen(os.dup(fd), "rb") as f:
                pages = list(_parse(f.read(), path))
            written += write_pages(db, _not_written(db, pages))
            path.unlink(missing_ok=True)
            log.warning("replayed %d feed pages' impressions from %s", len(pages), path.name)
        finally:
            os.close(fd)
    return written


def _parse(data: bytes, path: Path) -> Iterator[Page]:
    for n, line in enumerate(data.splitlines(), start=1):
        try:
            feed_id, user_id, policy_id, shown, offset, items = json.loads(line)
        except ValueError:
            # The last line of a killed writer may be torn; anything else is worth a look.
            log.warning("skipping unreadable line %d of impressions journal %s", n, path.name)
            continue
        yield (feed_id, user_id, policy_id, shown, offset, [tuple(i) for i in items])


def _not_written(db: Database, pages: list[Page]) -> list[Page]:
    """Pages whose feed_id is not in the table (a crash may come after a batch's commit)."""
    ids = list({p[0] for p in pages})
    present: set[str] = set()
    col = FeedImpression.__table__.c.feed_id
    with db.session(write=False) as session:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            present.update(session.scalars(select(col).where(col.in_(chunk)).distinct()))
    return [p for p in pages if p[0] not in present]


@dataclass
class Touches:
    """API tokens whose ``last_used_at`` is due, recorded by the background thread."""

    ids: set[int]
    lock: threading.Lock

    @classmethod
    def new(cls) -> Touches:
        return cls(set(), threading.Lock())

    def add(self, token_id: int) -> None:
        with self.lock:
            self.ids.add(token_id)

    def flush(self, db: Database, now: datetime) -> int:
        from sqlalchemy import update

        from juxing.kit.auth import TOKEN_TOUCH_AFTER
        from juxing.models.accounts import ApiToken

        with self.lock:
            ids, self.ids = self.ids, set()
        if not ids:
            return 0
        stale = now - TOKEN_TOUCH_AFTER
        try:
            with db.session() as session:
                session.execute(
                    update(ApiToken)
                    .where(
                        ApiToken.id.in_(sorted(ids)),
                        (ApiToken.last_used_at.is_(None)) | (ApiToken.last_used_at < stale),
                    )
                    .values(last_used_at=now)
                )
        except Exception:
            log.exception("could not record the use of %d API tokens; will retry", len(ids))
            with self.lock:
                self.ids |= ids
            return 0
        return len(ids)
