"""Creator studio (达人): posts, live rooms, tracking links, earnings, briefs."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from juxing.web.pages import CreatorPage, render

router = APIRouter(include_in_schema=False)


@router.get("/studio", response_class=HTMLResponse)
def main_page(request: Request, user: CreatorPage) -> HTMLResponse:
    return render(request, "studio/main.html", {})
