"""Merchant console: products, SKUs and stock, festival sign-up (campaigns), their status."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from juxing.analytics import dashboards
from juxing.catalog import service as catalog
from juxing.commission import statements
from juxing.deals import orders, refund_requests
from juxing.deals import service as deals
from juxing.deals.endpoints import Ctx, payment_provider
from juxing.kit.db import DbSession
from juxing.kit.errors import Unprocessable
from juxing.kit.time import utcnow
from juxing.marketplace import service as marketplace
from juxing.models.accounts import User
from juxing.models.catalog import Merchant
from juxing.web.forms import local_input, money_minor, utc_datetime
from juxing.web.i18n import N_
from juxing.web.pages import MerchantPage, redirect, render

router = APIRouter(include_in_schema=False)


def my_merchants(session: Session, user: User) -> list[Merchant]:
    merchants, _total = catalog.list_merchants(session=session, owner_id=user.id, limit=200)
    return merchants


def _merchant_names(merchants: list[Merchant]) -> dict[int, str]:
    return {m.id: m.name for m in merchants}


@router.get("/merchant", response_class=HTMLResponse)
def console(request: Request, user: MerchantPage, session: DbSession) -> HTMLResponse:
    """The merchant's dashboard: shops, products, campaigns by status."""
    merchants = my_merchants(session, user)
    ids = [m.id for m in merchants]
    campaigns, _ = deals.list_campaigns(session=session, merchant_ids=ids, limit=200)
    products = []
    for m in merchants:
        rows, _ = catalog.list_products(session=session, merchant_id=m.id, include_hidden=True)
        products.extend(rows)
    by_status: dict[str, int] = {}
    for c in campaigns:
        by_status[c.status] = by_status.get(c.status, 0) + 1
    sold = sum(i.sold for c in campaigns for i in c.items)
    charts = merchant_charts(session, merchants)
    return render(
        request,
        "merchant/main.html",
        {
            "merchants": merchants,
            "campaigns": campaigns[:8],
            "names": _merchant_names(merchants),
            "product_count": len(products),
            "sku_count": sum(len(p.skus) for p in products),
            "by_status": by_status,
            "sold": sold,
            **charts,
            "stock_chart": {
                "labels": [p.title[:18] for p in products[:10]],
                "datasets": [
                    {
                        "label": N_("Stock"),
                        "data": [sum(s.stock for s in p.skus) for p in products[:10]],
                    }
                ],
            },
        },
    )


@router.get("/merchant/products", response_class=HTMLResponse)
def products(request: Request, user: MerchantPage, session: DbSession) -> HTMLResponse:
    merchants = my_merchants(session, user)
    rows = []
    for m in merchants:
        found, _ = catalog.list_products(
            session=session, merchant_id=m.id, include_hidden=True, limit=200
        )
        rows.extend(found)
    return render(
        request,
        "merchant/products.html",
        {"merchants": merchants, "products": rows, "names": _merchant_names(merchants)},
    )


@router.post("/merchant/products")
def create_product(
    user: MerchantPage,
    session: DbSession,
    merchant_id: Annotated[int, Form()],
    title: Annotated[str, Form(min_length=1, max_length=200)],
    sku_name: Annotated[str, Form(min_length=1, max_length=120)],
    price: Annotated[str, Form(max_length=20)],
    stock: Annotated[int, Form(ge=0, le=10_000_000)],
    description: Annotated[str, Form(max_length=5000)] = "",
) -> Response:
    catalog.create_product(
        session=session,
        user=user,
        merchant_id=merchant_id,
        title=title,
        description=description,
        skus=[
            {
                "name": sku_name,
                "list_price_minor": money_minor(price, field="price"),
                "stock": stock,
            }
        ],
    )
    return redirect("/merchant/products")


@router.post("/merchant/skus/{sku_id}/stock")
def set_stock(
    sku_id: int,
    user: MerchantPage,
    session: DbSession,
    stock: Annotated[int, Form(ge=0, le=10_000_000)],
) -> Response:
    catalog.update_sku(session=session, user=user, sku_id=sku_id, stock=stock)
    return redirect("/merchant/products")


@router.get("/merchant/campaigns", response_class=HTMLResponse)
def campaigns(request: Request, user: MerchantPage, session: DbSession) -> HTMLResponse:
    merchants = my_merchants(session, user)
    rows, _ = deals.list_campaigns(
        session=session, merchant_ids=[m.id for m in merchants], limit=200
    )
    festivals = deals.list_festivals(session=session, current_only=True)
    return render(
        request,
        "merchant/campaigns.html",
        {
            "merchants": merchants,
            "campaigns": rows,
            "festivals": festivals,
            "names": _merchant_names(merchants),
            "festival_names": {f.id: f.name for f in deals.list_festivals(session=session)},
        },
    )


@router.post("/merchant/campaigns")
def sign_up(
    user: MerchantPage,
    session: DbSession,
    festival_id: Annotated[int, Form()],
    merchant_id: Annotated[int, Form()],
    title: Annotated[str, Form(min_length=1, max_length=200)],
) -> Response:
    """Sign a shop up for a festival: a draft campaign."""
    campaign = deals.create_campaign(
        session=session, user=user, festival_id=festival_id, merchant_id=merchant_id, title=title
    )
    return redirect(f"/merchant/campaigns/{campaign.id}")


@router.get("/merchant/campaigns/{campaign_id}", response_class=HTMLResponse)
def campaign_page(
    campaign_id: int, request: Request, user: MerchantPage, session: DbSession
) -> HTMLResponse:
    campaign = deals.owned_campaign(session=session, campaign_id=campaign_id, user=user)
    festival = deals.get_festival(session=session, festival_id=campaign.festival_id)
    products, _ = catalog.list_products(
        session=session, merchant_id=campaign.merchant_id, include_hidden=False, limit=200
    )
    sku_titles = {s.id: f"{p.title} · {s.name}" for p in products for s in p.skus}
    return render(
        request,
        "merchant/campaign.html",
        {
            "campaign": campaign,
            "festival": festival,
            "products": products,
            "sku_titles": sku_titles,
            "history": deals.transitions(session=session, campaign_id=campaign.id),
            "default_start": local_input(festival.starts_at, round_up=True),
            "default_end": local_input(festival.ends_at),
        },
    )


@router.post("/merchant/campaigns/{campaign_id}/items")
def add_item(
    campaign_id: int,
    user: MerchantPage,
    session: DbSession,
    sku_id: Annotated[int, Form()],
    deal_price: Annotated[str, Form(max_length=20)],
    deal_stock: Annotated[int, Form(ge=1, le=1_000_000)],
    per_user_limit: Annotated[int, Form(ge=1, le=100)],
    starts_at: Annotated[str, Form(max_length=30)],
    ends_at: Annotated[str, Form(max_length=30)],
) -> Response:
    deals.add_deal_item(
        session=session,
        user=user,
        campaign_id=campaign_id,
        sku_id=sku_id,
        deal_price_minor=money_minor(deal_price, field="deal_price"),
        deal_stock=deal_stock,
        per_user_limit=per_user_limit,
        starts_at=utc_datetime(starts_at, field="starts_at"),
        ends_at=utc_datetime(ends_at, field="ends_at"),
    )
    return redirect(f"/merchant/campaigns/{campaign_id}")


@router.post("/merchant/campaigns/{campaign_id}/submit")
def submit(campaign_id: int, user: MerchantPage, session: DbSession) -> Response:
    """Send the campaign to the operators for review."""
    deals.submit_campaign(session=session, user=user, campaign_id=campaign_id)
    return redirect(f"/merchant/campaigns/{campaign_id}")


# --- dashboards, orders, commission statements, briefs -------------------------------------


def merchant_charts(session: Session, merchants: list[Merchant]) -> dict[str, Any]:
    """Sales of the last 7 days (per hour) and GMV by campaign, from the analytics rollups."""
    now = utcnow()
    totals = {"gmv_minor": 0, "paid_orders": 0, "commission_cost_minor": 0, "refunds_minor": 0}
    series: dict[str, dict[str, int]] = {}
    by_campaign: dict[str, int] = {}
    for m in merchants:
        board = dashboards.merchant_dashboard(
            session=session, merchant_id=m.id, start=now - timedelta(days=7), end=now
        )
        for key in totals:
            totals[key] += int(board["totals"].get(key) or 0)
        for row in board["tables"]["series"]:
            point = series.setdefault(row["bucket"], {"gmv": 0, "paid_orders": 0})
            point["gmv"] += row["gmv"]
            point["paid_orders"] += row["paid_orders"]
        for row in board["tables"]["gmv_by_campaign"]:
            title = row["title"] or f"#{row['campaign_id']}"
            by_campaign[title] = by_campaign.get(title, 0) + row["gmv_minor"]
    buckets = sorted(series)
    top = sorted(by_campaign.items(), key=lambda kv: -kv[1])[:8]
    return {
        "totals": totals,
        "sales_chart": {
            "labels": [b[5:13].replace("T", " ") + "h" for b in buckets],
            "datasets": [
                {"label": N_("GMV (¥)"), "data": [series[b]["gmv"] / 100 for b in buckets]},
            ],
        },
        "campaign_chart": {
            "labels": [t[:24] for t, _v in top],
            "datasets": [{"label": N_("GMV (¥)"), "data": [v / 100 for _t, v in top]}],
        },
    }


@router.get("/merchant/orders", response_class=HTMLResponse)
def orders_page(
    request: Request,
    user: MerchantPage,
    session: DbSession,
    status: Annotated[str | None, Query(max_length=20)] = None,
) -> HTMLResponse:
    """The shops' orders, newest first: ship paid ones, refund when needed."""
    merchants = my_merchants(session, user)
    rows, total = orders.list_orders(
        session=session,
        merchant_ids=[m.id for m in merchants],
        status=status or None,
        limit=100,
    )
    from juxing.models.refund_requests import RefundRequest

    asked = (
        set(
            session.scalars(
                select(RefundRequest.open_order_id).where(
                    RefundRequest.open_order_id.in_([o.id for o in rows])
                )
            ).all()
        )
        if rows
        else set()
    )
    return render(
        request,
        "merchant/orders.html",
        {
            "orders": rows,
            "total": total,
            "status": status or "",
            "names": _merchant_names(merchants),
            "refund_asked": asked,
        },
    )


@router.post("/merchant/orders/{order_id}/ship")
def ship(order_id: int, user: MerchantPage, session: DbSession) -> Response:
    orders.ship(session=session, user=user, order_id=order_id)
    return redirect("/merchant/orders")


@router.post("/merchant/orders/{order_id}/refund")
def refund(
    order_id: int,
    request: Request,
    user: MerchantPage,
    session: DbSession,
    ctx: Ctx,
    reason: Annotated[str, Form(min_length=1, max_length=200)],
) -> Response:
    """Refund the whole order (the money goes back through the payment provider)."""
    orders.refund(
        session=session,
        ctx=ctx,
        provider=payment_provider(request),
        order_id=order_id,
        user=user,
        reason=reason,
    )
    return redirect("/merchant/orders")


@router.get("/merchant/refund-requests", response_class=HTMLResponse)
def refund_requests_page(
    request: Request,
    user: MerchantPage,
    session: DbSession,
    status: Annotated[str | None, Query(pattern="^(open|approved|rejected|cancelled)?$")] = "open",
) -> HTMLResponse:
    """Shoppers' refund requests (退款申请) to the shops: approve or reject the open ones."""
    from juxing.models.orders import Order
    from juxing.web.shopper import REFUND_REASONS, REFUND_STATUSES

    merchants = my_merchants(session, user)
    rows: list[Any] = []
    total = 0
    if merchants:
        # One listing per shop keeps an operator who also owns shops to their own shops here.
        for m in merchants:
            shop_rows, shop_total = refund_requests.list_for(
                session=session, user=user, status=status or None, merchant_id=m.id, limit=100
            )
            rows.extend(shop_rows)
            total += shop_total
        rows.sort(key=lambda r: r.id, reverse=True)
    order_ids = {r.order_id for r in rows}
    by_order = (
        {
            o.id: o
            for o in session.scalars(
                select(Order).where(Order.id.in_(order_ids)).options(selectinload(Order.lines))
            ).all()
        }
        if order_ids
        else {}
    )
    return render(
        request,
        "merchant/refund_requests.html",
        {
            "requests": rows,
            "total": total,
            "status": status or "",
            "orders": by_order,
            "names": _merchant_names(merchants),
            "reasons": REFUND_REASONS,
            "statuses": REFUND_STATUSES,
        },
    )


@router.post("/merchant/refund-requests/{request_id}/approve")
def approve_refund_request(
    request_id: int, request: Request, user: MerchantPage, session: DbSession, ctx: Ctx
) -> Response:
    """Approve: the refund is made (stock back by the deal's policy, commission clawed back)."""
    refund_requests.approve(
        session=session,
        ctx=ctx,
        provider=payment_provider(request),
        request_id=request_id,
        user=user,
    )
    return redirect("/merchant/refund-requests")


@router.post("/merchant/refund-requests/{request_id}/reject")
def reject_refund_request(
    request_id: int,
    user: MerchantPage,
    session: DbSession,
    reason: Annotated[str, Form(min_length=1, max_length=200)],
) -> Response:
    """Reject with a reason the shopper sees."""
    refund_requests.reject(session=session, request_id=request_id, user=user, reason=reason)
    return redirect("/merchant/refund-requests")


@router.get("/merchant/commission", response_class=HTMLResponse)
def commission_page(request: Request, user: MerchantPage, session: DbSession) -> HTMLResponse:
    """What each shop was charged in creator commission, line by line."""
    merchants = my_merchants(session, user)
    rows = []
    for m in merchants:
        rows.extend(
            statements.merchant_statement(session, merchant_id=m.id, since=None, until=None)
        )
    rows.sort(key=lambda r: r.placed_at, reverse=True)
    return render(
        request,
        "merchant/commission.html",
        {
            "merchants": merchants,
            "rows": rows,
            "names": _merchant_names(merchants),
            "charged": sum(r.commission_minor for r in rows),
            "sales": sum(r.amount_minor - r.refunded_minor for r in rows),
        },
    )


@router.get("/merchant/briefs", response_class=HTMLResponse)
def briefs_page(request: Request, user: MerchantPage, session: DbSession) -> HTMLResponse:
    """The shops' briefs for creators, with their applicants."""
    merchants = my_merchants(session, user)
    briefs, _ = marketplace.list_briefs(session=session, user=user, mine=True, limit=50)
    applicants = {
        b.id: marketplace.list_applications(session=session, user=user, brief_id=b.id, limit=50)[0]
        for b in briefs
    }
    creator_ids = {a.creator_id for apps in applicants.values() for a in apps}
    names = (
        {
            u.id: u.display_name
            for u in session.scalars(select(User).where(User.id.in_(creator_ids)))
        }
        if creator_ids
        else {}
    )
    products = []
    for m in merchants:
        found, _ = catalog.list_products(session=session, merchant_id=m.id, limit=100)
        products.extend(found)
    return render(
        request,
        "merchant/briefs.html",
        {
            "merchants": merchants,
            "briefs": briefs,
            "applicants": applicants,
            "creator_names": names,
            "products": products,
            "default_deadline": local_input(utcnow() + timedelta(days=7)),
        },
    )


@router.post("/merchant/briefs")
def create_brief(
    user: MerchantPage,
    session: DbSession,
    merchant_id: Annotated[int, Form()],
    title: Annotated[str, Form(min_length=1, max_length=200)],
    product_id: Annotated[list[int], Form()],
    deadline: Annotated[str, Form(max_length=30)],
    description: Annotated[str, Form(max_length=5000)] = "",
    commission_rate: Annotated[str, Form(max_length=10)] = "0",
    fixed_fee: Annotated[str, Form(max_length=20)] = "0",
    budget: Annotated[str, Form(max_length=20)] = "0",
) -> Response:
    """Post a brief: what to promote, the fee and/or commission rate, the deadline."""
    rate = money_minor(commission_rate or "0", field="commission_rate")  # percent, 2 decimals
    marketplace.create_brief(
        session=session,
        user=user,
        merchant_id=merchant_id,
        title=title,
        description=description,
        deliverable="post",
        post_type=None,
        commission_rate_bp=rate,
        fixed_fee_minor=money_minor(fixed_fee or "0", field="fixed_fee"),
        budget_minor=money_minor(budget or "0", field="budget"),
        currency="CNY",
        deadline=utc_datetime(deadline, field="deadline"),
        wanted_segments=[],
        items=[marketplace.ItemSpec(product_id=p) for p in product_id],
    )
    return redirect("/merchant/briefs")


@router.post("/merchant/applications/{application_id}/{decision}")
def decide_application(
    application_id: int, decision: str, user: MerchantPage, session: DbSession
) -> Response:
    """Accept or decline an applicant, or approve a delivered post (pays the fee)."""
    actions = {
        "accept": marketplace.accept,
        "decline": marketplace.decline,
        "approve": marketplace.approve,
    }
    action = actions.get(decision)
    if action is None:
        raise Unprocessable("Accept, decline or approve.", details={"field": "path.decision"})
    action(session=session, user=user, application_id=application_id)
    return redirect("/merchant/briefs")
