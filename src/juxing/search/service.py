"""Search over posts, products and creators: one ranked full-text query on either database.

Documents are upserted into ``search_documents`` by the domain that owns the source row
(``index_document``); the database keeps its full-text index in step (FTS5 triggers on SQLite,
a tsvector trigger + GIN index on PostgreSQL).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, column, delete, func, literal_column, select, table, text
from sqlalchemy.orm import Session

from juxing.kit.errors import BadRequest
from juxing.kit.time import utcnow
from juxing.models.search import SearchDocument
from juxing.search.segment import index_tokens, query_tokens

SNIPPET_CHARS = 300
FTS = table("search_fts", column("rowid"), column("tokens"))


class DocumentKind(enum.StrEnum):
    POST = "post"
    PRODUCT = "product"
    CREATOR = "creator"


@dataclass(frozen=True)
class SearchHit:
    kind: str
    id: int
    title: str
    snippet: str
    score: float
    category_id: int | None
    price_minor: int | None
    currency: str | None
    on_deal_now: bool


@dataclass(frozen=True)
class SearchResults:
    items: list[SearchHit]
    total: int
    limit: int
    offset: int
    tokens: list[str]


def index_document(
    *,
    session: Session,
    kind: DocumentKind,
    ref_id: int,
    title: str,
    texts: tuple[str | None, ...] = (),
    snippet: str = "",
    category_id: int | None = None,
    price_minor: int | None = None,
    currency: str | None = None,
    deal_starts_at: datetime | None = None,
    deal_ends_at: datetime | None = None,
    boost: int = 0,
) -> SearchDocument:
    """Insert or update the search document for ``(kind, ref_id)``."""
    doc = session.scalar(
        select(SearchDocument).where(SearchDocument.kind == kind, SearchDocument.ref_id == ref_id)
    )
    if doc is None:
        doc = SearchDocument(kind=kind, ref_id=ref_id)
        session.add(doc)
    doc.title = title[:200]
    doc.snippet = (snippet or "")[:SNIPPET_CHARS]
    doc.tokens = index_tokens(title, *texts)
    doc.category_id = category_id
    doc.price_minor = price_minor
    doc.currency = currency
    doc.deal_starts_at = deal_starts_at
    doc.deal_ends_at = deal_ends_at
    doc.boost = boost
    doc.updated_at = utcnow()
    session.flush()
    return doc


def remove_document(*, session: Session, kind: DocumentKind, ref_id: int) -> None:
    """Take ``(kind, ref_id)`` out of the index (unpublished, deleted, suspended)."""
    session.execute(
        delete(SearchDocument).where(SearchDocument.kind == kind, SearchDocument.ref_id == ref_id)
    )


def _fts5_query(tokens: list[str]) -> str:
    """An FTS5 MATCH expression: every token as a quoted phrase, all required."""
    return " ".join('"' + t.replace('"', '""') + '"' for t in tokens)


def _filters(
    stmt: Select,
    *,
    kinds: list[DocumentKind] | None,
    category_id: int | None,
    min_price_minor: int | None,
    max_price_minor: int | None,
    on_deal_now: bool,
    now: datetime,
) -> Select:
    d = SearchDocument
    if kinds:
        stmt = stmt.where(d.kind.in_([k.value for k in kinds]))
    if category_id is not None:
        stmt = stmt.where(d.category_id == category_id)
    if min_price_minor is not None:
        stmt = stmt.where(d.price_minor >= min_price_minor)
    if max_price_minor is not None:
        stmt = stmt.where(d.price_minor <= max_price_minor)
    if on_deal_now:
        stmt = stmt.where(and_(d.deal_starts_at <= now, d.deal_ends_at > now))
    return stmt


def search(
    *,
    session: Session,
    query: str,
    kinds: list[DocumentKind] | None = None,
    category_id: int | None = None,
    min_price_minor: int | None = None,
    max_price_minor: int | None = None,
    on_deal_now: bool = False,
    limit: int = 20,
    offset: int = 0,
    now: datetime | None = None,
) -> SearchResults:
    """Ranked full-text search; every query word must match (Chinese segmented by jieba)."""
    if (
        min_price_minor is not None
        and max_price_minor is not None
        and min_price_minor > max_price_minor
    ):
        raise BadRequest(
            "min_price_minor is above max_price_minor.",
            code="invalid_price_range",
            details=[{"field": "query.min_price_minor", "message": "above max_price_minor"}],
        )
    tokens = query_tokens(query)
    if not tokens:
        raise BadRequest(
            "The query has no words to search for.",
            code="empty_query",
            details=[{"field": "query.q", "message": "no searchable words"}],
        )
    now = now or utcnow()
    d = SearchDocument
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        score: Any = literal_column("bm25(search_fts)")
        base = (
            select(d, score.label("score"))
            .select_from(d)
            .join(FTS, FTS.c.rowid == d.id)
            .where(text("search_fts MATCH :fts_query").bindparams(fts_query=_fts5_query(tokens)))
        )
        order = (score.asc(), d.boost.desc(), d.id.desc())
    else:
        tsquery = func.plainto_tsquery(literal_column("'simple'::regconfig"), " ".join(tokens))
        rank = func.ts_rank_cd(d.tsv, tsquery)
        base = select(d, rank.label("score")).where(d.tsv.op("@@")(tsquery))
        order = (rank.desc(), d.boost.desc(), d.id.desc())
    base = _filters(
        base,
        kinds=kinds,
        category_id=category_id,
        min_price_minor=min_price_minor,
        max_price_minor=max_price_minor,
        on_deal_now=on_deal_now,
        now=now,
    )
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    rows = session.execute(base.order_by(*order).limit(limit).offset(offset)).all()
    items = []
    for doc, raw_score in rows:
        on_deal = bool(
            doc.deal_starts_at is not None
            and doc.deal_ends_at is not None
            and doc.deal_starts_at <= now < doc.deal_ends_at
        )
        # bm25 is "lower is better" and negative; report "higher is better" on both.
        value = float(raw_score or 0.0)
        items.append(
            SearchHit(
                kind=doc.kind,
                id=doc.ref_id,
                title=doc.title,
                snippet=doc.snippet,
                score=-value if dialect == "sqlite" else value,
                category_id=doc.category_id,
                price_minor=doc.price_minor,
                currency=doc.currency,
                on_deal_now=on_deal,
            )
        )
    return SearchResults(items=items, total=total, limit=limit, offset=offset, tokens=tokens)
