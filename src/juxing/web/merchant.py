"""Merchant console: products, SKUs and stock, festival sign-up (campaigns), their status."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from juxing.catalog import service as catalog
from juxing.deals import service as deals
from juxing.kit.db import DbSession
from juxing.models.accounts import User
from juxing.models.catalog import Merchant
from juxing.web.forms import local_input, money_minor, utc_datetime
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
            "stock_chart": {
                "labels": [p.title[:18] for p in products[:10]],
                "datasets": [
                    {
                        "label": "Stock",
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
