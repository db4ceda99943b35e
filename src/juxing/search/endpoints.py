"""``GET /api/v1/search``: posts, products and creators, ranked, filtered, paginated."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from juxing.kit.db import DbSession
from juxing.kit.schemas import Limit
from juxing.search import service
from juxing.search.service import DocumentKind

router = APIRouter(tags=["search"])


class HitOut(BaseModel):
    kind: str
    id: int
    title: str
    snippet: str
    score: float
    category_id: int | None
    price_minor: int | None
    currency: str | None
    on_deal_now: bool


class SearchPage(BaseModel):
    items: list[HitOut]
    total: int
    limit: int
    offset: int
    tokens: list[str]


@router.get("/search", response_model=SearchPage)
def search(
    session: DbSession,
    q: Annotated[str, Query(min_length=1, max_length=200, description="Chinese or English.")],
    kind: Annotated[list[DocumentKind] | None, Query()] = None,
    category_id: Annotated[int | None, Query(gt=0)] = None,
    min_price_minor: Annotated[int | None, Query(ge=0)] = None,
    max_price_minor: Annotated[int | None, Query(ge=0)] = None,
    on_deal_now: bool = False,
    limit: Limit = 20,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
):
    """Public full-text search; every word must match; best matches first."""
    return service.search(
        session=session,
        query=q,
        kinds=kind,
        category_id=category_id,
        min_price_minor=min_price_minor,
        max_price_minor=max_price_minor,
        on_deal_now=on_deal_now,
        limit=limit,
        offset=offset,
    )
