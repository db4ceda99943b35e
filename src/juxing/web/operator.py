"""Operator console: festivals, approvals, moderation, traffic policy, fraud, payouts."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from juxing.web.pages import OperatorPage, render

router = APIRouter(include_in_schema=False)


@router.get("/ops", response_class=HTMLResponse)
def main_page(request: Request, user: OperatorPage) -> HTMLResponse:
    return render(request, "ops/main.html", {})
