"""Alembic migrations build exactly the schema the models describe, on either database."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import juxing.models  # noqa: F401
from juxing.models.base import Base


def test_migrated_schema_matches_models(real_db):
    with real_db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == [], f"models and migrations differ; run a new revision: {diff}"


def test_upgrade_from_empty_sqlite_file(tmp_path):
    from sqlalchemy import create_engine, inspect

    from juxing.kit.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    upgrade(url)
    upgrade(url)  # a second run is a no-op
    tables = set(inspect(create_engine(url)).get_table_names())
    assert {"users", "user_roles", "api_tokens", "idempotency_records"} <= tables
