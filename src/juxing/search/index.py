"""The full-text index DDL that Alembic autogenerate cannot see, for both databases.

- SQLite: an FTS5 table ``search_fts`` over ``search_documents.tokens`` (external content,
  ``content_rowid = id``), kept in step by three triggers.
- PostgreSQL: a trigger that sets ``search_documents.tsv = to_tsvector('simple', tokens)``;
  the GIN index on ``tsv`` is declared on the model.

``install`` runs whenever the ``search_documents`` table is created, whether by
``Base.metadata.create_all`` (tests) or by the migration's ``op.create_table`` (Alembic fires
the same ``after_create`` event), so the index exists wherever the table does. It is idempotent
and rebuilds the index from the documents. A later migration that rebuilds the table on SQLite
(batch mode) must call ``install`` again.

``search_fts`` and its shadow tables are not models: a comparator registered with Alembic's
autogenerate drops them from the comparison, so ``make migration`` and the migration test do
not try to remove them.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate.compare import comparators
from alembic.util import DispatchPriority, PriorityDispatchResult
from sqlalchemy import Connection, Table, event, text

FTS_TABLE = "search_fts"
FTS_SHADOW_SUFFIXES = ("", "_data", "_idx", "_docsize", "_config", "_content")

SQLITE_DDL = (
    "DROP TABLE IF EXISTS search_fts",
    "CREATE VIRTUAL TABLE search_fts USING fts5("
    "tokens, content='search_documents', content_rowid='id', "
    "tokenize = 'unicode61 remove_diacritics 2')",
    "DROP TRIGGER IF EXISTS search_documents_ai",
    "DROP TRIGGER IF EXISTS search_documents_ad",
    "DROP TRIGGER IF EXISTS search_documents_au",
    """CREATE TRIGGER search_documents_ai AFTER INSERT ON search_documents BEGIN
        INSERT INTO search_fts(rowid, tokens) VALUES (new.id, new.tokens);
    END""",
    """CREATE TRIGGER search_documents_ad AFTER DELETE ON search_documents BEGIN
        INSERT INTO search_fts(search_fts, rowid, tokens) VALUES ('delete', old.id, old.tokens);
    END""",
    """CREATE TRIGGER search_documents_au AFTER UPDATE OF tokens ON search_documents BEGIN
        INSERT INTO search_fts(search_fts, rowid, tokens) VALUES ('delete', old.id, old.tokens);
        INSERT INTO search_fts(rowid, tokens) VALUES (new.id, new.tokens);
    END""",
    "INSERT INTO search_fts(search_fts) VALUES ('rebuild')",
)

SQLITE_DROP = (
    "DROP TRIGGER IF EXISTS search_documents_ai",
    "DROP TRIGGER IF EXISTS search_documents_ad",
    "DROP TRIGGER IF EXISTS search_documents_au",
    f"DROP TABLE IF EXISTS {FTS_TABLE}",
)

POSTGRES_DDL = (
    """CREATE OR REPLACE FUNCTION search_documents_tsv() RETURNS trigger AS $$
    BEGIN
        NEW.tsv := to_tsvector('simple'::regconfig, coalesce(NEW.tokens, ''));
        RETURN NEW;
    END
    $$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS search_documents_tsv ON search_documents",
    """CREATE TRIGGER search_documents_tsv BEFORE INSERT OR UPDATE OF tokens
    ON search_documents FOR EACH ROW EXECUTE FUNCTION search_documents_tsv()""",
    "UPDATE search_documents SET tsv = to_tsvector('simple'::regconfig, tokens)",
)

POSTGRES_DROP = (
    "DROP TRIGGER IF EXISTS search_documents_tsv ON search_documents",
    "DROP FUNCTION IF EXISTS search_documents_tsv()",
)


def install(conn: Connection) -> None:
    """Create (or re-create) the full-text index machinery on ``conn``'s database."""
    statements = SQLITE_DDL if conn.dialect.name == "sqlite" else POSTGRES_DDL
    for statement in statements:
        conn.execute(text(statement))


def uninstall(conn: Connection) -> None:
    """Drop what ``install`` created (migration 0002's downgrade)."""
    statements = SQLITE_DROP if conn.dialect.name == "sqlite" else POSTGRES_DROP
    for statement in statements:
        conn.execute(text(statement))


FTS_TABLES = frozenset(FTS_TABLE + suffix for suffix in FTS_SHADOW_SUFFIXES)


@event.listens_for(Table, "after_create")
def _install_after_create(table: Table, conn: Connection, **_kw: Any) -> None:
    if table.name == "search_documents":
        install(conn)


@comparators.dispatch_for("schema", priority=DispatchPriority.LAST)
def _ignore_fts_tables(_autogen_context: Any, upgrade_ops: Any, _schemas: Any) -> Any:
    """Autogenerate: the FTS5 table and its shadow tables are not models; leave them be."""
    from alembic.operations import ops

    upgrade_ops.ops[:] = [
        op
        for op in upgrade_ops.ops
        if not (isinstance(op, ops.DropTableOp) and op.table_name in FTS_TABLES)
    ]
    return PriorityDispatchResult.CONTINUE
