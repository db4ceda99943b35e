"""HTTP endpoints of shoppers' refund requests (退款申请); see ``deals.refund_requests``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from juxing.deals import orders
from juxing.deals import refund_requests as service
from juxing.deals.endpoints import Ctx, Provider, deals_settings
from juxing.kit.auth import CurrentUser, MerchantOrOperator, ShopperUser
from juxing.kit.db import DbSession
from juxing.kit.idempotency import Idempotent
from juxing.kit.schemas import Limit, Offset, Page, StrictModel
from juxing.models.refund_requests import RefundRequest

router = APIRouter(tags=["refund requests"])

Reason = Literal[
    "not_received", "damaged", "not_as_described", "wrong_item", "changed_mind", "other"
]
Status = Literal["open", "approved", "rejected", "cancelled"]


class RefundRequestLineIn(StrictModel):
    order_line_id: int
    quantity: Annotated[int, Field(ge=1, le=1000)]


class RefundRequestIn(StrictModel):
    """What the shopper asks for; the amounts are computed from the order lines."""

    reason: Reason
    note: Annotated[str, Field(max_length=500)] = ""
    # None: every unit not refunded yet (a full refund).
    lines: Annotated[list[RefundRequestLineIn], Field(min_length=1, max_length=100)] | None = None


class ApproveIn(StrictModel):
    note: Annotated[str, Field(max_length=200)] = ""


class RejectIn(StrictModel):
    reason: Annotated[str, Field(min_length=1, max_length=200)]


class RefundRequestLineOut(BaseModel):
    order_line_id: int
    quantity: int
    amount_minor: int


class TransitionOut(BaseModel):
    from_status: str | None
    to_status: str
    actor_id: int | None
    actor_role: str
    note: str
    created_at: datetime


class RefundRequestOut(BaseModel):
    id: int
    order_id: int
    shopper_id: int
    merchant_id: int
    status: str
    reason: str
    note: str
    amount_minor: int
    currency: str
    reject_reason: str | None
    refund_id: int | None
    created_at: datetime
    due_at: datetime
    decided_at: datetime | None
    decided_by_id: int | None
    lines: list[RefundRequestLineOut]
    transitions: list[TransitionOut]


def request_out(r: RefundRequest) -> RefundRequestOut:
    return RefundRequestOut(
        id=r.id,
        order_id=r.order_id,
        shopper_id=r.shopper_id,
        merchant_id=r.merchant_id,
        status=r.status,
        reason=r.reason,
        note=r.note,
        amount_minor=r.amount_minor,
        currency=r.currency,
        reject_reason=r.reject_reason,
        refund_id=r.refund_id,
        created_at=r.created_at,
        due_at=r.due_at,
        decided_at=r.decided_at,
        decided_by_id=r.decided_by_id,
        lines=[RefundRequestLineOut.model_validate(x, from_attributes=True) for x in r.lines],
        transitions=[TransitionOut.model_validate(t, from_attributes=True) for t in r.transitions],
    )


@router.post("/orders/{order_id}/refund-requests", status_code=201, response_model=RefundRequestOut)
def create_refund_request(
    order_id: int,
    body: RefundRequestIn,
    request: Request,
    user: ShopperUser,
    session: DbSession,
    idem: Idempotent,
) -> JSONResponse:
    """Ask for a refund of your own paid, shipped or received order (Idempotency-Key)."""
    lines = [(x.order_line_id, x.quantity) for x in body.lines] if body.lines else None
    days = deals_settings(request).refund_request_auto_approve_days
    return idem.run(
        lambda: request_out(
            service.create(
                session=session,
                user=user,
                order_id=order_id,
                reason=body.reason,
                note=body.note,
                lines=lines,
                auto_approve_days=days,
            )
        ),
        status_code=201,
    )


@router.get("/orders/{order_id}/refund-requests", response_model=list[RefundRequestOut])
def order_refund_requests(
    order_id: int, user: CurrentUser, session: DbSession
) -> list[RefundRequestOut]:
    """An order's refund requests (its shopper, its shop's owner, operators)."""
    orders.visible_order(session=session, order_id=order_id, user=user)
    return [request_out(r) for r in service.of_order(session=session, order_id=order_id)]


@router.get("/refund-requests", response_model=Page[RefundRequestOut])
def list_refund_requests(
    user: CurrentUser,
    session: DbSession,
    status: Status | None = None,
    merchant_id: Annotated[int | None, Query(ge=1)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[RefundRequestOut]:
    """Your requests as a shopper and those of your shops (operators: all), newest first."""
    rows, total = service.list_for(
        session=session,
        user=user,
        status=status,
        merchant_id=merchant_id,
        limit=limit,
        offset=offset,
    )
    return Page(items=[request_out(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/refund-requests/{request_id}", response_model=RefundRequestOut)
def get_refund_request(request_id: int, user: CurrentUser, session: DbSession) -> RefundRequestOut:
    """One request with its lines and every transition."""
    return request_out(service.visible(session=session, request_id=request_id, user=user))


@router.post("/refund-requests/{request_id}/approve", response_model=RefundRequestOut)
def approve_refund_request(
    request_id: int,
    user: MerchantOrOperator,
    session: DbSession,
    ctx: Ctx,
    provider: Provider,
    idem: Idempotent,
    body: Annotated[ApproveIn | None, Body()] = None,
) -> JSONResponse:
    """Approve (the shop's owner or an operator): the refund is made once, by the same path
    as a refund the shop starts; approving again is 409."""
    return idem.run(
        lambda: request_out(
            service.approve(
                session=session,
                ctx=ctx,
                provider=provider,
                request_id=request_id,
                user=user,
                note=body.note if body else "",
            )
        ),
        status_code=200,
    )


@router.post("/refund-requests/{request_id}/reject", response_model=RefundRequestOut)
def reject_refund_request(
    request_id: int, body: RejectIn, user: MerchantOrOperator, session: DbSession
) -> RefundRequestOut:
    """Reject with a reason the shopper sees (the shop's owner or an operator)."""
    return request_out(
        service.reject(session=session, request_id=request_id, user=user, reason=body.reason)
    )


@router.post("/refund-requests/{request_id}/cancel", response_model=RefundRequestOut)
def cancel_refund_request(
    request_id: int, user: CurrentUser, session: DbSession
) -> RefundRequestOut:
    """Withdraw your open request."""
    return request_out(service.cancel(session=session, request_id=request_id, user=user))
