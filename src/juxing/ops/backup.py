"""Online backup and restore of the embedded SQLite database.

``backup`` uses SQLite's online backup API: it copies one consistent snapshot (a read
transaction; in WAL mode writers keep going) into a temporary file, checks the copy's
integrity and only then renames it into place, so a half-written backup never exists under
the requested name.

``restore`` checks the backup (integrity and a Juxing schema), refuses while any other
process has the database open unless forced, keeps a copy of the current database next to
it, and copies the backup in through the same backup API, so the live file, its WAL and
every open connection stay consistent.

PostgreSQL is backed up with ``pg_dump``/``pg_restore`` (see docs/operations.md).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from juxing.kit.time import utcnow

BUSY_TIMEOUT_S = 30.0


class BackupError(Exception):
    """A backup or restore that could not be done; the message says why."""


@dataclass(frozen=True)
class BackupResult:
    """What a backup or restore wrote."""

    path: Path
    bytes: int
    tables: dict[str, int]
    kept: Path | None = None


def sqlite_path(database_url: str) -> Path:
    """The file behind a ``sqlite:///`` URL; refuses other databases."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        raise BackupError(
            "juxing backup/restore work on the embedded SQLite database; "
            "for PostgreSQL use pg_dump and pg_restore (docs/operations.md)."
        )
    return Path(url.database)


def integrity_problems(path: Path) -> list[str]:
    """``PRAGMA integrity_check`` of a database file; empty when it is sound."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
    try:
        rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    finally:
        conn.close()
    return [] if rows == ["ok"] else rows


def table_counts(path: Path) -> dict[str, int]:
    """Rows per table of a database file (for reports and comparisons)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
    try:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        # Table names come from the file's own catalogue, quoted as identifiers.
        return {
            n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]  # noqa: S608
            for n in names
        }
    finally:
        conn.close()


def backup(*, database_url: str, target: Path) -> BackupResult:
    """Copy the live database into ``target`` (online, one consistent snapshot)."""
    source_path = sqlite_path(database_url)
    if not source_path.exists():
        raise BackupError(f"there is no database at {source_path}")
    target = target.resolve()
    if target == source_path.resolve():
        raise BackupError("the backup file must not be the database itself")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    partial.unlink(missing_ok=True)
    source = sqlite3.connect(source_path, timeout=BUSY_TIMEOUT_S)
    dest = sqlite3.connect(partial)
    try:
        # pages=-1: the whole database in one step, i.e. one read transaction and one
        # snapshot; WAL mode lets the server keep writing meanwhile.
        source.backup(dest, pages=-1)
        dest.execute("PRAGMA journal_mode=DELETE")  # a backup is one self-contained file
    finally:
        dest.close()
        source.close()
    problems = integrity_problems(partial)
    if problems:
        partial.unlink(missing_ok=True)
        raise BackupError("the copy failed its integrity check: " + "; ".join(problems[:5]))
    os.replace(partial, target)
    return BackupResult(path=target, bytes=target.stat().st_size, tables=table_counts(target))


def _check_backup_file(path: Path) -> None:
    if not path.is_file():
        raise BackupError(f"there is no backup file at {path}")
    with path.open("rb") as fh:
        if fh.read(16) != b"SQLite format 3\x00":
            raise BackupError(f"{path} is not an SQLite database")
    problems = integrity_problems(path)
    if problems:
        raise BackupError(f"{path} failed its integrity check: " + "; ".join(problems[:5]))
    if "alembic_version" not in table_counts(path):
        raise BackupError(f"{path} is not a Juxing database (no schema version)")


@contextlib.contextmanager
def _exclusive(path: Path, *, force: bool):
    """A connection to ``path``; unless forced, one that proves nobody else has it open."""
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        if not force:
            conn.execute("PRAGMA busy_timeout=200")
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            try:
                conn.execute("BEGIN EXCLUSIVE")
                conn.execute("COMMIT")  # the lock stays held in exclusive locking mode
            except sqlite3.OperationalError as exc:
                raise BackupError(
                    f"the database {path} is in use (a running server or worker?); stop it, "
                    "or restore with --force to replace the data under it"
                ) from exc
        yield conn
    finally:
        conn.close()


def restore(
    *, database_url: str, source: Path, force: bool = False, keep_current: bool = True
) -> BackupResult:
    """Replace the database's contents with the backup ``source``."""
    target = sqlite_path(database_url)
    source = source.resolve()
    _check_backup_file(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    kept: Path | None = None
    with _exclusive(target, force=force) as conn:
        has_tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
        if keep_current and has_tables:
            stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
            kept = target.with_name(f"{target.name}.before-restore-{stamp}")
            copy = sqlite3.connect(kept)
            try:
                conn.backup(copy, pages=-1)
                copy.execute("PRAGMA journal_mode=DELETE")
            finally:
                copy.close()
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        try:
            src.backup(conn, pages=-1)
        finally:
            src.close()
        conn.execute("PRAGMA journal_mode=WAL")
    problems = integrity_problems(target)
    if problems:  # pragma: no cover - the backup API either copies everything or raises
        raise BackupError("the restored database failed its integrity check: " + problems[0])
    return BackupResult(
        path=target, bytes=target.stat().st_size, tables=table_counts(target), kept=kept
    )


def default_backup_name(now: datetime | None = None) -> str:
    """``juxing-YYYYmmddTHHMMSSZ.db``."""
    return f"juxing-{(now or utcnow()).strftime('%Y%m%dT%H%M%SZ')}.db"
