"""Shopper pages (mobile first): the home feed, posts, deals, the festival, orders, inbox."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from juxing.web.pages import MaybeUser, render

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, user: MaybeUser) -> HTMLResponse:
    """The personalized home feed (千人千面), each item with its reason."""
    return render(request, "shopper/home.html", {"items": [], "next_cursor": None})
