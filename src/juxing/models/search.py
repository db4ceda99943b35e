"""Search documents: one row per searchable post, product or creator.

``tokens`` holds the text already segmented into space-separated words (jieba for Chinese),
so both full-text engines index it the same way: SQLite through the FTS5 table ``search_fts``
(external content, kept in step by triggers), PostgreSQL through the ``tsv`` column (set by a
trigger) and its GIN index. The FTS table and the triggers are created
together with the table, by the migration and by ``create_all`` alike (``juxing.search.index``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from juxing.kit.time import utcnow
from juxing.models.base import Base, BigId, IdMixin
from juxing.search import index as _index  # noqa: F401  (creates the FTS index with the table)


class SearchDocument(IdMixin, Base):
    __tablename__ = "search_documents"
    __table_args__ = (
        UniqueConstraint("kind", "ref_id"),
        Index("ix_search_documents_tsv", "tsv", postgresql_using="gin"),
        Index("ix_search_documents_kind_category_id", "kind", "category_id"),
    )

    kind: Mapped[str] = mapped_column(String(16))  # post | product | creator
    ref_id: Mapped[int] = mapped_column(BigId)
    title: Mapped[str] = mapped_column(String(200))
    snippet: Mapped[str] = mapped_column(String(300), default="")
    tokens: Mapped[str] = mapped_column(Text)
    tsv: Mapped[str | None] = mapped_column(TSVECTOR().with_variant(Text(), "sqlite"))
    category_id: Mapped[int | None] = mapped_column(BigId)
    price_minor: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    # The deal window, when the document is (or shows) a deal item: "on deal now" filter.
    deal_starts_at: Mapped[datetime | None]
    deal_ends_at: Mapped[datetime | None]
    # A small static boost (creator level, follower count bucket); higher ranks first on ties.
    boost: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
