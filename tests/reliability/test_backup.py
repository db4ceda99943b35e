"""`juxing backup` / `juxing restore` of the embedded SQLite database."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from juxing.kit.migrate import upgrade
from juxing.ops.backup import BackupError, backup, integrity_problems, restore, table_counts

PASSWORD = "correct horse battery"


def _dump(path: Path) -> list[str]:
    """Every table's rows, as SQL text, in a stable order."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return sorted(line for line in conn.iterdump() if line.startswith("INSERT"))
    finally:
        conn.close()


def _new_database(folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{folder / 'juxing.db'}"
    upgrade(url)
    conn = sqlite3.connect(folder / "juxing.db")
    with conn:
        conn.execute("CREATE TABLE probe_a (id INTEGER PRIMARY KEY, v TEXT)")
        conn.execute("CREATE TABLE probe_b (id INTEGER PRIMARY KEY, v TEXT)")
    conn.close()
    return url


class PairWriter(threading.Thread):
    """Commits a row into probe_a and probe_b per transaction, as fast as it can."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.stop = threading.Event()
        self.committed = 0

    def run(self) -> None:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        while not self.stop.is_set():
            conn.execute("BEGIN IMMEDIATE")
            cur = conn.execute("INSERT INTO probe_a (v) VALUES (?)", ("x" * 200,))
            conn.execute("INSERT INTO probe_b (id, v) VALUES (?, ?)", (cur.lastrowid, "y" * 200))
            conn.execute("COMMIT")
            self.committed += 1
        conn.close()


def test_backup_under_writes_is_a_consistent_snapshot_and_restores_equal(
    tmp_path: Path,
) -> None:
    url = _new_database(tmp_path / "live")
    db_file = tmp_path / "live" / "juxing.db"
    writer = PairWriter(db_file)
    writer.start()
    try:
        while writer.committed < 200:
            time.sleep(0.01)
        snapshots = []
        for i in range(3):
            result = backup(database_url=url, target=tmp_path / f"b{i}.db")
            snapshots.append(result)
            time.sleep(0.05)
    finally:
        writer.stop.set()
        writer.join(timeout=10)
    assert writer.committed > 200
    sizes = []
    for result in snapshots:
        assert integrity_problems(result.path) == []
        # One snapshot: every transaction is in the copy entirely or not at all.
        assert result.tables["probe_a"] == result.tables["probe_b"] > 0
        assert "alembic_version" in result.tables
        sizes.append(result.tables["probe_a"])
    assert sizes == sorted(sizes)  # later backups see as much or more

    # Restore into a new, empty place: identical contents.
    fresh_url = f"sqlite:///{tmp_path / 'fresh' / 'juxing.db'}"
    restored = restore(database_url=fresh_url, source=snapshots[1].path)
    assert restored.kept is None
    assert _dump(tmp_path / "fresh" / "juxing.db") == _dump(snapshots[1].path)

    # Restore over the (now idle) live database: identical, and the old one is kept aside.
    before = _dump(db_file)
    restored = restore(database_url=url, source=snapshots[0].path)
    assert _dump(db_file) == _dump(snapshots[0].path)
    assert restored.kept is not None and _dump(restored.kept) == before
    assert integrity_problems(db_file) == []
    # The restored database is in WAL mode again and takes writes.
    conn = sqlite3.connect(db_file)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with conn:
        conn.execute("INSERT INTO probe_a (v) VALUES ('after')")
    conn.close()


def test_refusals(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="pg_dump"):
        backup(database_url="postgresql+psycopg://u@h/db", target=tmp_path / "x.db")
    with pytest.raises(BackupError, match="no database"):
        backup(database_url=f"sqlite:///{tmp_path / 'none.db'}", target=tmp_path / "x.db")
    url = _new_database(tmp_path / "live")
    with pytest.raises(BackupError, match="must not be the database"):
        backup(database_url=url, target=tmp_path / "live" / "juxing.db")

    not_sqlite = tmp_path / "text.db"
    not_sqlite.write_text("hello")
    with pytest.raises(BackupError, match="not an SQLite database"):
        restore(database_url=url, source=not_sqlite)
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(BackupError, match="not a Juxing database"):
        restore(database_url=url, source=foreign)
    truncated = tmp_path / "truncated.db"
    good = backup(database_url=url, target=tmp_path / "good.db").path
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(BackupError):
        restore(database_url=url, source=truncated)
    # Nothing was changed by the refusals.
    assert table_counts(tmp_path / "live" / "juxing.db") == table_counts(good)


def test_restore_refuses_an_open_database_unless_forced(tmp_path: Path) -> None:
    url = _new_database(tmp_path / "live")
    snapshot = backup(database_url=url, target=tmp_path / "b.db").path
    holder = sqlite3.connect(tmp_path / "live" / "juxing.db")  # like a server's pooled one
    holder.execute("SELECT count(*) FROM probe_a").fetchone()
    try:
        with pytest.raises(BackupError, match="in use"):
            restore(database_url=url, source=snapshot)
        restore(database_url=url, source=snapshot, force=True)
    finally:
        holder.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _juxing(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "juxing.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_backup_and_restore_against_a_running_server(tmp_path: Path) -> None:
    """A real `juxing serve` on SQLite: back up online, restore with --force, and the
    server answers from the restored data."""
    port = _free_port()
    env = {
        **os.environ,
        "JUXING_DATA_DIR": str(tmp_path / "data"),
        "JUXING_INPROCESS_JOBS": "false",
        "JUXING_PORT": str(port),
        "JUXING_ENV": "development",
    }
    for key in ("JUXING_DATABASE_URL", "JUXING_REDIS_URL", "JUXING_RATE_LIMITS_ENABLED"):
        env.pop(key, None)
    log = tmp_path / "server.log"
    with log.open("wb") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "juxing.cli", "serve"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        with httpx.Client(timeout=10) as http:
            deadline = time.monotonic() + 180  # a shared, loaded CI machine starts slowly
            while True:
                try:
                    if http.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert server.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)

            def register(email: str) -> None:
                body = {"email": email, "password": PASSWORD, "display_name": "B"}
                r = http.post(f"{base}/accounts/register", json=body)
                assert r.status_code == 201, r.text

            def token_status(email: str) -> int:
                body = {"email": email, "password": PASSWORD, "name": "t"}
                return http.post(f"{base}/auth/token", json=body).status_code

            register("before@example.test")
            done = _juxing(env, "backup", str(tmp_path / "b.db"))
            assert done.returncode == 0, done.stdout + done.stderr
            assert "backed up to" in done.stdout
            register("after@example.test")

            refused = _juxing(env, "restore", str(tmp_path / "b.db"))
            assert refused.returncode == 1
            assert "in use" in refused.stdout

            forced = _juxing(env, "restore", "--force", str(tmp_path / "b.db"))
            assert forced.returncode == 0, forced.stdout + forced.stderr
            assert "kept as" in forced.stdout
            # The running server now answers from the restored data.
            assert token_status("before@example.test") == 201
            assert token_status("after@example.test") == 401
    finally:
        server.terminate()
        server.wait(timeout=20)
