"""Shopper pages (mobile first): the festival's deals with countdowns and stock bars."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from juxing.deals import service as deals
from juxing.kit.db import DbSession
from juxing.kit.errors import NotFound
from juxing.web.pages import MaybeUser, render

router = APIRouter(include_in_schema=False)


def _redis(request: Request):  # type: ignore[no-untyped-def]
    return request.app.state.redis


@router.get("/", response_class=HTMLResponse)
def home(request: Request, user: MaybeUser, session: DbSession) -> HTMLResponse:
    """The current festival (聚星节) and its deals, live first."""
    festival = next(iter(deals.list_festivals(session=session, current_only=True)), None)
    cards = (
        deals.festival_deals(session=session, festival_id=festival.id, redis_client=_redis(request))
        if festival
        else []
    )
    return render(request, "shopper/home.html", {"festival": festival, "cards": cards})


@router.get("/deals/{deal_item_id}", response_class=HTMLResponse)
def deal_page(
    deal_item_id: int, request: Request, user: MaybeUser, session: DbSession
) -> HTMLResponse:
    """One deal with its countdown and stock bar."""
    cards = deals.card_states(
        session=session, deal_item_ids=[deal_item_id], redis_client=_redis(request)
    )["deal_items"]
    card = cards.get(deal_item_id)
    if card is None or card["status"] == "not_on_sale":
        raise NotFound("No such deal.")
    return render(request, "shopper/deal.html", {"card": card})
