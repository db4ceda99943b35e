"""HTTP endpoints of the deals engine: festivals, campaigns, deal cards, orders, payments,
refunds, groups and coupons."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from juxing.deals import coupons, orders, service
from juxing.deals.payments import SIGNATURE_HEADER, SimulatedProvider, payment_secret, provider_for
from juxing.deals.schemas import (
    CampaignCreate,
    CampaignOut,
    ClaimIn,
    ClaimOut,
    CouponCreate,
    CouponOut,
    DealItemCreate,
    DealItemOut,
    FestivalCreate,
    FestivalOut,
    FestivalUpdate,
    GroupOut,
    OrderLineOut,
    OrderOut,
    PaymentOut,
    RefundIn,
    RefundOut,
    RejectIn,
    ReserveIn,
    SimulateIn,
    StockReport,
    TransitionOut,
)
from juxing.deals.settings import DealsSettings, get_deals_settings
from juxing.kit.auth import (
    CurrentUser,
    MerchantOrOperator,
    OperatorUser,
    ShopperUser,
)
from juxing.kit.db import DbSession
from juxing.kit.errors import NotFound
from juxing.kit.idempotency import Idempotent
from juxing.kit.ratelimit import rate_limit
from juxing.kit.schemas import Limit, Offset, Page
from juxing.models.accounts import Role
from juxing.models.deals import Campaign, Coupon, CouponClaim, DealItem, Festival, GroupBuy
from juxing.models.orders import Order, Payment, Refund

router = APIRouter(tags=["deals"])
VISITOR_COOKIE = "juxing_vid"


# --- wiring -------------------------------------------------------------------------------


def deals_settings(request: Request) -> DealsSettings:
    return getattr(request.app.state, "deals_settings", None) or get_deals_settings()


def buying(request: Request) -> orders.Buying:
    return orders.Buying(
        redis_client=request.app.state.redis,
        order_timeout_s=deals_settings(request).order_timeout_s,
    )


def payment_provider(request: Request) -> SimulatedProvider:
    ds = deals_settings(request)
    secret = payment_secret(
        configured=ds.payment_secret, secret_key=request.app.state.settings.secret_key
    )
    return provider_for(ds.payment_provider, secret=secret)


async def _buying(request: Request) -> orders.Buying:  # no I/O: no worker thread
    return buying(request)


Ctx = Annotated[orders.Buying, Depends(_buying)]
Provider = Annotated[SimulatedProvider, Depends(payment_provider)]


# --- response builders --------------------------------------------------------------------


def festival_out(f: Festival) -> FestivalOut:
    return FestivalOut(
        id=f.id,
        name=f.name,
        name_zh=f.name_zh,
        slug=f.slug,
        theme=f.theme,
        description=f.description,
        starts_at=f.starts_at,
        ends_at=f.ends_at,
    )


def item_out(i: DealItem) -> DealItemOut:
    return DealItemOut.model_validate(i, from_attributes=True)


def campaign_out(c: Campaign) -> CampaignOut:
    return CampaignOut(
        id=c.id,
        festival_id=c.festival_id,
        merchant_id=c.merchant_id,
        title=c.title,
        status=c.status,
        reject_reason=c.reject_reason,
        starts_at=c.starts_at,
        ends_at=c.ends_at,
        items=[item_out(i) for i in c.items],
    )


def order_out(o: Order) -> OrderOut:
    return OrderOut(
        id=o.id,
        shopper_id=o.shopper_id,
        merchant_id=o.merchant_id,
        status=o.status,
        currency=o.currency,
        subtotal_minor=o.subtotal_minor,
        discount_minor=o.discount_minor,
        total_minor=o.total_minor,
        refunded_minor=o.refunded_minor,
        coupon_claim_id=o.coupon_claim_id,
        group_id=o.group_id,
        created_at=o.created_at,
        expires_at=o.expires_at,
        paid_at=o.paid_at,
        shipped_at=o.shipped_at,
        received_at=o.received_at,
        cancelled_at=o.cancelled_at,
        cancel_reason=o.cancel_reason,
        lines=[OrderLineOut.model_validate(line, from_attributes=True) for line in o.lines],
    )


def payment_out(p: Payment, request: Request) -> PaymentOut:
    base = request.app.state.settings.base_url
    return PaymentOut(
        id=p.id,
        order_id=p.order_id,
        provider=p.provider,
        provider_ref=p.provider_ref,
        amount_minor=p.amount_minor,
        currency=p.currency,
        status=p.status,
        created_at=p.created_at,
        confirmed_at=p.confirmed_at,
        callback_url=f"{base}/api/v1/payments/callbacks/{p.provider}",
    )


def refund_out(r: Refund) -> RefundOut:
    return RefundOut(
        id=r.id,
        order_id=r.order_id,
        amount_minor=r.amount_minor,
        currency=r.currency,
        reason=r.reason,
        restocked=r.restocked,
        created_at=r.created_at,
        lines=[
            {
                "order_line_id": x.order_line_id,
                "quantity": x.quantity,
                "amount_minor": x.amount_minor,
                "restocked_quantity": x.restocked_quantity,
            }
            for x in r.lines
        ],
    )


def coupon_out(c: Coupon) -> CouponOut:
    return CouponOut(
        id=c.id,
        code=c.code,
        title=c.title,
        festival_id=c.festival_id,
        merchant_id=c.merchant_id,
        kind=c.kind,
        amount_off_minor=c.amount_off_minor,
        percent_off=c.percent_off,
        max_discount_minor=c.max_discount_minor,
        min_spend_minor=c.min_spend_minor,
        currency=c.currency,
        valid_from=c.valid_from,
        valid_until=c.valid_until,
        per_shopper_cap=c.per_shopper_cap,
        budget_minor=c.budget_minor,
        budget_used_minor=c.budget_used_minor,
        claimed_count=c.claimed_count,
        scan_url=f"/api/v1/coupons/scan/{c.code}",
    )


def claim_out(c: CouponClaim, coupon: Coupon | None = None) -> ClaimOut:
    return ClaimOut(
        id=c.id,
        coupon_id=c.coupon_id,
        status=c.status,
        via=c.via,
        claimed_at=c.claimed_at,
        used_at=c.used_at,
        order_id=c.order_id,
        discount_minor=c.discount_minor,
        coupon=coupon_out(coupon) if coupon else None,
    )


def group_out(g: GroupBuy, order_ids: list[int] | None = None) -> GroupOut:
    return GroupOut(
        id=g.id,
        code=g.code,
        deal_item_id=g.deal_item_id,
        size=g.size,
        member_count=g.member_count,
        paid_count=g.paid_count,
        status=g.status,
        expires_at=g.expires_at,
        share_url=f"/api/v1/groups/{g.code}",
        order_ids=order_ids or [],
    )


# --- festivals ----------------------------------------------------------------------------


@router.post("/festivals", status_code=201, response_model=FestivalOut)
def create_festival(body: FestivalCreate, user: OperatorUser, session: DbSession) -> FestivalOut:
    """Create a festival (operators)."""
    return festival_out(service.create_festival(session=session, user=user, **body.model_dump()))


@router.get("/festivals", response_model=list[FestivalOut])
def list_festivals(
    session: DbSession, current: Annotated[bool, Query()] = False
) -> list[FestivalOut]:
    """Festivals (public)."""
    return [festival_out(f) for f in service.list_festivals(session=session, current_only=current)]


@router.get("/festivals/{festival}", response_model=FestivalOut)
def get_festival(festival: str, session: DbSession) -> FestivalOut:
    """A festival by id or slug (public)."""
    return festival_out(service.get_festival(session=session, festival_id=festival))


@router.patch("/festivals/{festival_id}", response_model=FestivalOut)
def update_festival(
    festival_id: int, body: FestivalUpdate, _user: OperatorUser, session: DbSession
) -> FestivalOut:
    """Change a festival (operators)."""
    return festival_out(
        service.update_festival(
            session=session, festival_id=festival_id, **body.model_dump(exclude_unset=True)
        )
    )


@router.get("/festivals/{festival}/deals")
def festival_deals(festival: str, request: Request, session: DbSession) -> list[dict[str, object]]:
    """The festival page: its deal cards, live first (public)."""
    f = service.get_festival(session=session, festival_id=festival)
    return service.festival_deals(
        session=session, festival_id=f.id, redis_client=request.app.state.redis
    )


@router.get("/festivals/{festival}/coupons", response_model=list[CouponOut])
def festival_coupons(festival: str, session: DbSession) -> list[CouponOut]:
    """Coupons to claim on the festival page (public)."""
    f = service.get_festival(session=session, festival_id=festival)
    return [coupon_out(c) for c in coupons.list_coupons(session=session, festival_id=f.id)]


# --- campaigns ----------------------------------------------------------------------------


@router.post("/campaigns", status_code=201, response_model=CampaignOut)
def create_campaign(
    body: CampaignCreate, user: MerchantOrOperator, session: DbSession
) -> CampaignOut:
    """Sign a shop up for a festival (draft)."""
    c = service.create_campaign(session=session, user=user, **body.model_dump())
    return campaign_out(service.get_campaign(session=session, campaign_id=c.id))


@router.get("/campaigns", response_model=Page[CampaignOut])
def list_campaigns(
    user: MerchantOrOperator,
    session: DbSession,
    limit: Limit = 50,
    offset: Offset = 0,
    festival_id: Annotated[int | None, Query()] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
) -> Page[CampaignOut]:
    """Campaigns: a merchant sees their shops', an operator all (the review queue with
    ``status=submitted``)."""
    merchant_ids = None
    if not user.has_role(Role.OPERATOR):
        from juxing.catalog import service as catalog

        merchant_ids = [
            m.id for m in catalog.list_merchants(session=session, owner_id=user.id, limit=200)[0]
        ]
    rows, total = service.list_campaigns(
        session=session,
        merchant_ids=merchant_ids,
        festival_id=festival_id,
        status=status,
        limit=limit,
        offset=offset,
    )
    return Page(items=[campaign_out(c) for c in rows], total=total, limit=limit, offset=offset)


@router.get("/campaigns/{campaign_id}", response_model=CampaignOut)
def get_campaign(campaign_id: int, user: MerchantOrOperator, session: DbSession) -> CampaignOut:
    """A campaign with its deal items (its merchant or operators)."""
    return campaign_out(service.owned_campaign(session=session, campaign_id=campaign_id, user=user))


@router.get("/campaigns/{campaign_id}/transitions", response_model=list[TransitionOut])
def campaign_transitions(
    campaign_id: int, user: MerchantOrOperator, session: DbSession
) -> list[TransitionOut]:
    """The recorded lifecycle of a campaign."""
    service.owned_campaign(session=session, campaign_id=campaign_id, user=user)
    return [
        TransitionOut(
            from_status=t.from_status,
            to_status=t.to_status,
            actor_id=t.actor_id,
            reason=t.reason,
            at=t.at,
        )
        for t in service.transitions(session=session, campaign_id=campaign_id)
    ]


@router.post("/campaigns/{campaign_id}/items", status_code=201, response_model=DealItemOut)
def add_deal_item(
    campaign_id: int, body: DealItemCreate, user: MerchantOrOperator, session: DbSession
) -> DealItemOut:
    """Add a SKU on deal to a draft campaign (rules are checked, with reasons)."""
    return item_out(
        service.add_deal_item(
            session=session, user=user, campaign_id=campaign_id, **body.model_dump()
        )
    )


@router.delete("/deal-items/{deal_item_id}", status_code=204)
def remove_deal_item(deal_item_id: int, user: MerchantOrOperator, session: DbSession) -> None:
    """Remove a deal item from a draft campaign."""
    service.remove_deal_item(session=session, user=user, deal_item_id=deal_item_id)


@router.post("/campaigns/{campaign_id}/submit", response_model=CampaignOut)
def submit_campaign(campaign_id: int, user: MerchantOrOperator, session: DbSession) -> CampaignOut:
    """Submit for review; the deal stock is taken out of the SKUs' stock."""
    return campaign_out(
        service.submit_campaign(session=session, user=user, campaign_id=campaign_id)
    )


@router.post("/campaigns/{campaign_id}/revise", response_model=CampaignOut)
def revise_campaign(campaign_id: int, user: MerchantOrOperator, session: DbSession) -> CampaignOut:
    """Take a rejected campaign back to draft."""
    service.revise_campaign(session=session, user=user, campaign_id=campaign_id)
    return campaign_out(service.get_campaign(session=session, campaign_id=campaign_id))


@router.post("/campaigns/{campaign_id}/approve", response_model=CampaignOut)
def approve_campaign(
    campaign_id: int, request: Request, user: OperatorUser, session: DbSession
) -> CampaignOut:
    """Approve (operators): the campaign is scheduled and goes live on time."""
    backend = deals_settings(request).stock_backend
    if backend == "redis" and request.app.state.redis is None:
        backend = "sql"
    return campaign_out(
        service.approve_campaign(
            session=session, user=user, campaign_id=campaign_id, stock_backend=backend
        )
    )


@router.post("/campaigns/{campaign_id}/reject", response_model=CampaignOut)
def reject_campaign(
    campaign_id: int, body: RejectIn, user: OperatorUser, session: DbSession
) -> CampaignOut:
    """Reject with a reason (operators); the deal stock goes back to the SKUs."""
    return campaign_out(
        service.reject_campaign(
            session=session, user=user, campaign_id=campaign_id, reason=body.reason
        )
    )


# --- deal cards ---------------------------------------------------------------------------


@router.get("/deal-items/{deal_item_id}")
def get_deal_card(deal_item_id: int, request: Request, session: DbSession) -> dict[str, object]:
    """A deal's live card: prices, status, countdown, stock left (public)."""
    cards = service.card_states(
        session=session, deal_item_ids=[deal_item_id], redis_client=request.app.state.redis
    )["deal_items"]
    if deal_item_id not in cards:
        raise NotFound("No such deal item.")
    return cards[deal_item_id]


@router.get("/cards")
def cards(
    request: Request,
    session: DbSession,
    sku_ids: Annotated[list[int], Query(max_length=200)] = [],  # noqa: B006
    deal_item_ids: Annotated[list[int], Query(max_length=200)] = [],  # noqa: B006
) -> dict[str, dict[int, dict[str, object]]]:
    """Live cards for many SKUs / deal items at once (public)."""
    return service.card_states(
        session=session,
        sku_ids=sku_ids,
        deal_item_ids=deal_item_ids,
        redis_client=request.app.state.redis,
    )


@router.get("/deal-items/{deal_item_id}/stock", response_model=StockReport)
def stock_report(
    deal_item_id: int, request: Request, _user: OperatorUser, session: DbSession
) -> StockReport:
    """Check a deal item's counters against its orders (operators)."""
    from juxing.deals.reconcile import check_item

    return StockReport(
        **check_item(
            session=session, deal_item_id=deal_item_id, redis_client=request.app.state.redis
        )
    )


@router.post("/deal-items/{deal_item_id}/reconcile", response_model=StockReport)
def reconcile_item(
    deal_item_id: int, request: Request, _user: OperatorUser, session: DbSession
) -> StockReport:
    """Rebuild a deal item's Redis counters from SQL and sync its SQL counters (operators)."""
    from juxing.deals.reconcile import check_item, repair_item

    repair_item(session=session, deal_item_id=deal_item_id, redis_client=request.app.state.redis)
    return StockReport(
        **check_item(
            session=session, deal_item_id=deal_item_id, redis_client=request.app.state.redis
        )
    )


# --- orders -------------------------------------------------------------------------------


@router.post(
    "/orders",
    status_code=201,
    response_model=OrderOut,
    dependencies=[Depends(rate_limit("buy"))],
)
def reserve(
    body: ReserveIn,
    request: Request,
    user: ShopperUser,
    session: DbSession,
    ctx: Ctx,
    idem: Idempotent,
) -> JSONResponse:
    """Buy: hold the stock and lock the deal price; pay before ``expires_at``.
    Send ``Idempotency-Key`` so a retry never buys twice."""
    visitor = request.cookies.get(VISITOR_COOKIE)
    return idem.run(
        lambda: order_out(
            orders.reserve(
                session=session,
                ctx=ctx,
                shopper=user,
                deal_item_id=body.deal_item_id,
                quantity=body.quantity,
                coupon_claim_id=body.coupon_claim_id,
                start_group=body.start_group,
                group_code=body.group_code,
                live_room_id=body.live_room_id,
                visitor_id=visitor[:64] if visitor else None,
                take_at_commit=True,
            )
        ),
        status_code=201,
    )


@router.get("/orders", response_model=Page[OrderOut])
def list_orders(
    user: CurrentUser,
    session: DbSession,
    limit: Limit = 50,
    offset: Offset = 0,
    merchant_id: Annotated[int | None, Query()] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
) -> Page[OrderOut]:
    """Order history: yours, or a shop's (``merchant_id``, its owner or operators)."""
    if merchant_id is not None:
        orders.check_merchant(session, user, merchant_id)
        rows, total = orders.list_orders(
            session=session, merchant_ids=[merchant_id], status=status, limit=limit, offset=offset
        )
    else:
        rows, total = orders.list_orders(
            session=session, shopper_id=user.id, status=status, limit=limit, offset=offset
        )
    return Page(items=[order_out(o) for o in rows], total=total, limit=limit, offset=offset)


@router.get("/orders/{order_id}", response_model=OrderOut)
def get_order(order_id: int, user: CurrentUser, session: DbSession) -> OrderOut:
    """One order (its shopper, its shop's owner or operators)."""
    return order_out(orders.visible_order(session=session, order_id=order_id, user=user))


@router.post("/orders/{order_id}/cancel", response_model=OrderOut)
def cancel_order(order_id: int, user: CurrentUser, session: DbSession, ctx: Ctx) -> OrderOut:
    """Cancel an unpaid order; its stock goes back on sale."""
    return order_out(
        orders.cancel(
            session=session, ctx=ctx, order_id=order_id, reason="shopper_cancelled", user=user
        )
    )


@router.post(
    "/orders/{order_id}/pay",
    status_code=201,
    response_model=PaymentOut,
    dependencies=[Depends(rate_limit("pay"))],
)
def pay_order(
    order_id: int,
    request: Request,
    user: ShopperUser,
    session: DbSession,
    provider: Provider,
    idem: Idempotent,
) -> JSONResponse:
    """Open the payment of an order (confirmed later by the provider's signed callback)."""
    return idem.run(
        lambda: payment_out(
            orders.start_payment(session=session, provider=provider, user=user, order_id=order_id),
            request,
        ),
        status_code=201,
    )


@router.post("/orders/{order_id}/ship", response_model=OrderOut)
def ship_order(order_id: int, user: MerchantOrOperator, session: DbSession) -> OrderOut:
    """Mark a paid order shipped (its shop's owner)."""
    return order_out(orders.ship(session=session, user=user, order_id=order_id))


@router.post("/orders/{order_id}/receive", response_model=OrderOut)
def receive_order(order_id: int, user: CurrentUser, session: DbSession) -> OrderOut:
    """Confirm receipt (the shopper)."""
    return order_out(orders.confirm_receipt(session=session, order_id=order_id, user=user))


@router.post("/orders/{order_id}/refunds", status_code=201, response_model=RefundOut)
def refund_order(
    order_id: int,
    body: RefundIn,
    user: MerchantOrOperator,
    session: DbSession,
    ctx: Ctx,
    provider: Provider,
    idem: Idempotent,
) -> JSONResponse:
    """Refund all or some units (its shop's owner or operators)."""
    lines = [(x.order_line_id, x.quantity) for x in body.lines] if body.lines else None

    def work() -> RefundOut:
        r = orders.refund(
            session=session,
            ctx=ctx,
            provider=provider,
            order_id=order_id,
            user=user,
            lines=lines,
            reason=body.reason,
            restock=body.restock,
        )
        return refund_out(
            next(x for x in orders.refunds_of(session=session, order_id=order_id) if x.id == r.id)
        )

    return idem.run(work, status_code=201)


@router.get("/orders/{order_id}/refunds", response_model=list[RefundOut])
def list_refunds(order_id: int, user: CurrentUser, session: DbSession) -> list[RefundOut]:
    """An order's refunds."""
    orders.visible_order(session=session, order_id=order_id, user=user)
    return [refund_out(r) for r in orders.refunds_of(session=session, order_id=order_id)]


# --- payments -----------------------------------------------------------------------------


async def _raw_body(request: Request) -> bytes:
    """The request body as sent (the provider signs these exact bytes)."""
    return await request.body()


@router.post("/payments/callbacks/{provider_name}", include_in_schema=True)
def payment_callback(
    provider_name: str,
    request: Request,
    session: DbSession,
    ctx: Ctx,
    provider: Provider,
    body: Annotated[bytes, Depends(_raw_body)],
) -> dict[str, str]:
    """The provider's signed asynchronous confirmation (public; the signature is checked).

    A plain ``def``: its database work (which may wait on a row lock) runs in a worker
    thread, never on the event loop.
    """
    if provider_name != provider.name:
        raise NotFound("No such payment provider.")
    outcome = orders.handle_callback(
        session=session,
        ctx=ctx,
        provider=provider,
        body=body,
        signature=request.headers.get(SIGNATURE_HEADER),
    )
    return {"outcome": outcome}


@router.get("/payments/{payment_id}", response_model=PaymentOut)
def get_payment(
    payment_id: int, request: Request, user: CurrentUser, session: DbSession
) -> PaymentOut:
    """A payment's status."""
    return payment_out(
        orders.get_payment(session=session, payment_id=payment_id, user=user), request
    )


@router.post("/payments/{payment_id}/simulate")
def simulate_payment(
    payment_id: int,
    body: SimulateIn,
    request: Request,
    user: CurrentUser,
    session: DbSession,
    ctx: Ctx,
    provider: Provider,
) -> dict[str, object]:
    """Sandbox: make the simulated provider confirm (or fail) a payment, now, twice, or
    later (a late callback posted to this server)."""
    payment = orders.get_payment(session=session, payment_id=payment_id, user=user)
    signed = provider.callback(
        provider_ref=payment.provider_ref,
        outcome=body.outcome,
        amount_minor=payment.amount_minor,
        currency=payment.currency,
    )
    if body.deliver == "later":
        url = f"{request.app.state.settings.base_url}/api/v1/payments/callbacks/{provider.name}"
        provider.deliver_later(url=url, body=signed[0], signature=signed[1], delay_s=body.delay_s)
        return {"outcomes": ["scheduled"]}
    outcomes = [
        orders.handle_callback(
            session=session, ctx=ctx, provider=provider, body=signed[0], signature=signed[1]
        )
    ]
    if body.deliver == "twice":
        again = provider.callback(
            provider_ref=payment.provider_ref,
            outcome=body.outcome,
            amount_minor=payment.amount_minor,
            currency=payment.currency,
        )
        outcomes.append(
            orders.handle_callback(
                session=session, ctx=ctx, provider=provider, body=signed[0], signature=signed[1]
            )
        )
        outcomes.append(
            orders.handle_callback(
                session=session, ctx=ctx, provider=provider, body=again[0], signature=again[1]
            )
        )
    return {"outcomes": outcomes}


# --- groups -------------------------------------------------------------------------------


@router.get("/groups/{code}", response_model=GroupOut)
def get_group(code: str, session: DbSession) -> GroupOut:
    """A group deal by its share code (public): join it with POST /orders group_code."""
    group, members = orders.get_group(session=session, code=code)
    return group_out(group, [o.id for o in members])


# --- coupons ------------------------------------------------------------------------------


@router.post("/coupons", status_code=201, response_model=CouponOut)
def create_coupon(body: CouponCreate, user: MerchantOrOperator, session: DbSession) -> CouponOut:
    """Issue a coupon (operators: platform-wide; merchants: for their shop)."""
    return coupon_out(coupons.create_coupon(session=session, user=user, **body.model_dump()))


@router.get("/coupons", response_model=list[CouponOut])
def list_coupons(
    session: DbSession,
    festival_id: Annotated[int | None, Query()] = None,
    merchant_id: Annotated[int | None, Query()] = None,
) -> list[CouponOut]:
    """Coupons valid now (public)."""
    return [
        coupon_out(c)
        for c in coupons.list_coupons(
            session=session, festival_id=festival_id, merchant_id=merchant_id
        )
    ]


@router.post("/coupons/claim", status_code=201, response_model=ClaimOut)
def claim_coupon(body: ClaimIn, user: ShopperUser, session: DbSession) -> ClaimOut:
    """Claim a coupon on a festival page."""
    claim = coupons.claim_coupon(
        session=session, shopper=user, coupon_id=body.coupon_id, code=body.code, via="page"
    )
    return claim_out(claim)


@router.post("/coupons/scan/{code}", status_code=201, response_model=ClaimOut)
def scan_coupon(code: str, user: ShopperUser, session: DbSession) -> ClaimOut:
    """扫Logo: scanning a brand's QR code opens this URL and claims its coupon."""
    return claim_out(coupons.claim_coupon(session=session, shopper=user, code=code, via="scan"))


@router.get("/me/coupons", response_model=list[ClaimOut])
def my_coupons(user: CurrentUser, session: DbSession) -> list[ClaimOut]:
    """Your claimed coupons."""
    return [claim_out(c, k) for c, k in coupons.my_claims(session=session, shopper=user)]
