"""Test fixtures: a real database (SQLite by default, PostgreSQL when
``JUXING_TEST_DATABASE_URL`` is set), each test inside a transaction that is rolled back.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from juxing.app import create_app
from juxing.config import Settings
from juxing.kit.db import Database
from juxing.models.base import Base

TEST_SECRET = "test-secret-key-0123456789-abcdefghijklmnop"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _test_url() -> str:
    url = os.environ.get("JUXING_TEST_DATABASE_URL")
    if url:
        return url
    folder = Path(tempfile.mkdtemp(prefix="juxing-test-"))
    return f"sqlite:///{folder / 'test.db'}"


def _reset_schema(url: str) -> None:
    db = Database(url)
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        else:
            Base.metadata.drop_all(conn)
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    db.dispose()


@pytest.fixture(scope="session")
def database_url() -> str:
    """The test database, built from the models (``tests/test_migrations.py`` checks that
    the Alembic migrations build the same schema)."""
    import juxing.models  # noqa: F401  (registers every table)

    url = _test_url()
    _reset_schema(url)
    db = Database(url)
    Base.metadata.create_all(db.engine)
    db.dispose()
    return url


@pytest.fixture(scope="session")
def real_db(database_url: str) -> Iterator[Database]:
    """A Database that really commits (for concurrency and crash tests)."""
    db = Database(database_url)
    yield db
    db.dispose()


@pytest.fixture
def committed_db(real_db: Database) -> Iterator[Database]:
    """Like ``real_db``, and every table is emptied after the test."""
    yield real_db
    with real_db.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


class TransactionalDatabase(Database):
    """A Database whose every session runs inside one outer transaction, rolled back at
    the end of the test; ``commit`` only releases a savepoint."""

    def __init__(self, base: Database, connection: Connection) -> None:
        self.url = base.url
        self.engine = base.engine
        self._connection = connection

    def new_session(self, *, write: bool = True) -> Session:
        return Session(
            bind=self._connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )

    def dedicated_sessions(self) -> tuple[Callable[[], Session], Callable[[], None]]:
        return self.new_session, lambda: None

    @contextmanager
    def dbapi_connection(self) -> Iterator[Any]:
        yield self._connection.connection.driver_connection

    def ping(self) -> None:
        self._connection.execute(text("SELECT 1"))

    def dispose(self) -> None:  # the shared engine outlives a test
        pass


@pytest.fixture
def db(real_db: Database) -> Iterator[TransactionalDatabase]:
    conn = real_db.engine.connect()
    outer = conn.begin()
    try:
        yield TransactionalDatabase(real_db, conn)
    finally:
        outer.rollback()
        conn.close()


@pytest.fixture
def session(db: TransactionalDatabase) -> Iterator[Session]:
    """A session in the test's transaction, for arranging data and checking results."""
    s = Session(
        bind=db._connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    yield s
    s.close()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        env="test",
        database_url=database_url,
        secret_key=TEST_SECRET,
        inprocess_jobs=False,
        redis_url=os.environ.get("JUXING_TEST_REDIS_URL"),
    )


@pytest.fixture
def app(settings: Settings, db: TransactionalDatabase):  # type: ignore[no-untyped-def]
    return create_app(settings, db=db)


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("JUXING_TEST_REDIS_URL")
    if not url:
        pytest.skip("JUXING_TEST_REDIS_URL is not set")
    return url


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture
def live_server():  # type: ignore[no-untyped-def]
    """Serve an app with uvicorn in a thread; yields a function app -> base URL."""
    import socket
    import threading
    import time

    import uvicorn

    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app) -> str:  # type: ignore[no-untyped-def]
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)
