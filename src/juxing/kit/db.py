"""Database engine, sessions and the per-request unit of work.

Services never commit: the request's session dependency commits when the endpoint
returns and rolls back when it raises.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

PG_POOL_RECYCLE_S = 1800  # seconds a pooled PostgreSQL connection is used before it is replaced


def make_engine(url: str, *, sqlite_foreign_keys: bool = True, **kwargs: Any) -> Engine:
    """Create an engine with Juxing's settings for SQLite or PostgreSQL.

    Migrations pass ``sqlite_foreign_keys=False``: batch table rebuilds must not cascade.
    """
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 20)
        kwargs.setdefault("max_overflow", 40)
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            **kwargs,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy issue BEGIN itself so that BEGIN IMMEDIATE works.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA foreign_keys={'ON' if sqlite_foreign_keys else 'OFF'}")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Write units of work take the lock up front (BEGIN IMMEDIATE), so that a
            # transaction never fails half-way on a read-to-write lock upgrade under load.
            if conn.get_execution_options().get("juxing_write"):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.exec_driver_sql("BEGIN")

        return engine
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_pre_ping", True)
        # PostgreSQL keeps a prepared statement's generic plan per connection: a connection
        # opened while the tables were small would keep plans made for them. Replace pooled
        # connections after half an hour (also the dedicated ones, ``dedicated_sessions``).
        kwargs.setdefault("pool_recycle", PG_POOL_RECYCLE_S)
    return create_engine(url, **kwargs)


# Set in ``session.info`` by code that committed with ``synchronous_commit = off``
# (PostgreSQL): the unit of work then waits for durability before anything is answered.
ASYNC_COMMIT = "juxing_async_commit"


def wait_for_durability(session: Session) -> None:
    """Wait until everything this session committed is on disk: a small synchronous commit
    that writes WAL (an assigned transaction id) flushes the WAL up to its own commit
    record, which comes after every earlier commit (PostgreSQL's WAL is one sequence;
    concurrent waiters share one flush)."""
    session.execute(text("SELECT pg_current_xact_id()"))
    session.commit()


class Database:
    """An engine and its session factory."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        self.write_sessionmaker = sessionmaker(
            self.engine.execution_options(juxing_write=True), expire_on_commit=False
        )

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self, *, write: bool = True) -> Iterator[Session]:
        """A unit of work: commit on success, roll back on error.

        ``write=False`` is for read-mostly work (GET requests); on SQLite it does not
        take the write lock up front.
        """
        session = self.new_session(write=write)
        try:
            yield session
        except BaseException:
            self.end(session, commit=False)
            raise
        self.end(session, commit=True)

    def new_session(self, *, write: bool = True) -> Session:
        """A session (no connection yet: it connects on its first statement)."""
        return (self.write_sessionmaker if write else self.sessionmaker)()

    @staticmethod
    def end(session: Session, *, commit: bool) -> None:
        """End a unit of work: commit (and wait for durability where the commit did not)
        or roll back; then close. A failed commit rolls back and raises."""
        try:
            if commit:
                session.commit()
                if session.info.pop(ASYNC_COMMIT, False):
                    wait_for_durability(session)
            else:
                session.rollback()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dedicated_sessions(self) -> tuple[Callable[[], Session], Callable[[], None]]:
        """Write sessions for ONE long-lived worker thread (the buy writer), on a connection
        of its own kept open and not pinged before each unit of work (a dropped connection
        fails one unit of work and is replaced on the next); and the function that closes it."""
        engine = make_engine(self.url, pool_size=1, max_overflow=0, pool_pre_ping=False)
        maker = sessionmaker(engine.execution_options(juxing_write=True), expire_on_commit=False)
        return maker, engine.dispose

    @contextmanager
    def dbapi_connection(self) -> Iterator[Any]:
        """A pooled DB-API connection for a hot read path that bypasses the ORM: plain
        SELECTs, no unit of work (on PostgreSQL the pool's reset ends the implicit one)."""
        conn = self.engine.raw_connection()
        try:
            yield conn.driver_connection
        finally:
            conn.close()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


def get_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request's session; committed before the response is sent.

    Opening a session does no I/O (it connects on its first statement), so it happens on
    the event loop; the commit or rollback runs in a worker thread. One thread hand-off
    per request instead of two."""
    db: Database = request.app.state.db
    session = db.new_session(write=request.method not in {"GET", "HEAD", "OPTIONS"})
    try:
        yield session
    except BaseException:
        await run_in_threadpool(db.end, session, commit=False)
        raise
    await run_in_threadpool(db.end, session, commit=True)


DbSession = Annotated[Session, Depends(get_session, scope="function")]
"""A request-scoped session whose commit happens before the response is sent."""
