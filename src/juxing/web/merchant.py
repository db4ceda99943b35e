"""Merchant console: products and stock, campaigns, briefs, dashboards, statements."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from juxing.web.pages import MerchantPage, render

router = APIRouter(include_in_schema=False)


@router.get("/merchant", response_class=HTMLResponse)
def main_page(request: Request, user: MerchantPage) -> HTMLResponse:
    return render(request, "merchant/main.html", {})
