"""kit/db.py: the engines' pool settings (no connection is made)."""

from __future__ import annotations

from juxing.kit.db import PG_POOL_RECYCLE_S, Database, make_engine

PG_URL = "postgresql+psycopg://nobody@127.0.0.1:1/none"  # never connected to


def test_postgresql_connections_are_recycled():
    engine = make_engine(PG_URL)
    try:
        assert engine.pool._recycle == PG_POOL_RECYCLE_S == 1800
    finally:
        engine.dispose()
    db = Database(PG_URL)
    maker, close = db.dedicated_sessions()  # the buy writer's own connection too
    try:
        assert db.engine.pool._recycle == PG_POOL_RECYCLE_S
        assert maker.kw["bind"].pool._recycle == PG_POOL_RECYCLE_S
    finally:
        close()
        db.dispose()


def test_sqlite_connections_are_not_recycled(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        assert engine.pool._recycle == -1
    finally:
        engine.dispose()
