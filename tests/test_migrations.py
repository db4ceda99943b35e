"""Alembic migrations build exactly the schema the models describe, on either database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

import juxing.models  # noqa: F401
from juxing.kit.db import Database
from juxing.kit.migrate import upgrade
from juxing.models.base import Base


@pytest.fixture
def fresh_url(database_url: str, tmp_path) -> Iterator[str]:
    """An empty database of the same kind as the test database."""
    if not database_url.startswith("postgresql"):
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    url = make_url(database_url)
    name = f"{url.database}_migrations"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_migrations_build_the_models_schema(fresh_url):
    upgrade(fresh_url)
    upgrade(fresh_url)  # a second run is a no-op
    db = Database(fresh_url)
    try:
        with db.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, Base.metadata)
        assert diff == [], f"models and migrations differ; run `make migration`: {diff}"
        assert {"users", "user_roles", "api_tokens"} <= set(inspect(db.engine).get_table_names())
    finally:
        db.dispose()
