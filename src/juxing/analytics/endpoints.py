"""HTTP endpoints: dashboards (JSON, or one table as CSV) and audience segments."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from sqlalchemy import select

from juxing.analytics import dashboards, service
from juxing.kit.auth import (
    CreatorOrOperator,
    CurrentUser,
    MerchantOrOperator,
    OperatorUser,
    ensure_owner,
)
from juxing.kit.db import DbSession
from juxing.kit.errors import NotFound
from juxing.kit.time import utcnow
from juxing.models.accounts import Role
from juxing.models.catalog import Merchant

router = APIRouter(tags=["analytics"])

Format = Literal["json", "csv"]


def _respond(data: dict[str, Any], fmt: str, table: str | None, name: str) -> Any:
    if fmt == "csv":
        body = dashboards.to_csv(dashboards.table(data, table or "series"))
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{name}-{table or "series"}.csv"'
            },
        )
    if table:
        return {"table": table, "rows": dashboards.table(data, table)}
    return data


@router.get("/dashboards/creator")
def creator_dashboard(
    user: CreatorOrOperator,
    session: DbSession,
    creator_id: int | None = Query(
        default=None, ge=1, description="Operators only; creators see their own."
    ),
    start: datetime | None = None,
    end: datetime | None = None,
    table: str | None = Query(default=None, max_length=40),
    format: Format = "json",
) -> Any:
    """A creator's clicks, orders, conversion, earnings, top posts and products (hourly)."""
    cid = user.id if creator_id is None else creator_id
    if cid != user.id and not user.has_role(Role.OPERATOR):
        raise NotFound("No such creator.")
    s, e = dashboards.window(start, end, default=timedelta(days=7), now=utcnow())
    data = dashboards.creator_dashboard(session=session, creator_id=cid, start=s, end=e)
    return _respond(data, format, table, f"creator-{cid}")


@router.get("/dashboards/merchant/{merchant_id}")
def merchant_dashboard(
    merchant_id: int,
    user: MerchantOrOperator,
    session: DbSession,
    start: datetime | None = None,
    end: datetime | None = None,
    table: str | None = Query(default=None, max_length=40),
    format: Format = "json",
) -> Any:
    """A shop's GMV by campaign/creator/channel, commission and ROI, funnel, sell-through."""
    owner = session.scalar(select(Merchant.owner_id).where(Merchant.id == merchant_id))
    if owner is None:
        raise NotFound("No such merchant.")
    ensure_owner(owner, user, what="merchant")
    s, e = dashboards.window(start, end, default=timedelta(days=7), now=utcnow())
    data = dashboards.merchant_dashboard(session=session, merchant_id=merchant_id, start=s, end=e)
    return _respond(data, format, table, f"merchant-{merchant_id}")


@router.get("/dashboards/operator")
def operator_dashboard(
    user: OperatorUser,
    session: DbSession,
    start: datetime | None = None,
    end: datetime | None = None,
    table: str | None = Query(default=None, max_length=40),
    format: Format = "json",
) -> Any:
    """The live festival view: GMV and orders per minute, long-tail shares, Gini, backlog."""
    s, e = dashboards.window(start, end, default=timedelta(hours=1), now=utcnow())
    data = dashboards.operator_dashboard(session=session, start=s, end=e)
    return _respond(data, format, table, "operator")


@router.get("/segments")
def list_segments(user: MerchantOrOperator, session: DbSession) -> list[dict[str, Any]]:
    """The audience segments: name, size, description and traits."""
    return [
        {
            "key": s.key,
            "name": s.name,
            "description": s.description,
            "size": s.size,
            "traits": s.traits,
            "computed_at": s.computed_at.isoformat(),
        }
        for s in service.list_segments(session=session)
    ]


@router.post("/segments/compute")
def compute_segments(
    user: OperatorUser, session: DbSession, k: int = Query(default=6, ge=2, le=20)
) -> dict[str, Any]:
    """Recompute the segments now (operator; the daily job does this too)."""
    result = service.compute_segments(session=session, k=k)
    return {"segments": len(result.segments), "shoppers": len(result.user_ids)}


@router.get("/segments/creators/{creator_id}")
def creator_audience(creator_id: int, user: CurrentUser, session: DbSession) -> dict[str, Any]:
    """A creator's engaged audience as a mix of segments (merchants, operators, the creator)."""
    if creator_id != user.id and not user.has_role(Role.MERCHANT, Role.OPERATOR):
        raise NotFound("No such creator.")
    return service.creator_audience(session=session, creator_id=creator_id)
